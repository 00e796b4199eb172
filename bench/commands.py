"""What users run, timed as they run it: whole ``policyctl`` processes beside NCA's.

Each figure is one process from start to exit (interpreter start, imports, reading the
manifests, the computation, rendering the output to a file), with its peak resident memory
from the kernel's accounting of that child (``os.wait4``'s ``ru_maxrss``), on the suite's
generated cluster as a directory of manifests. Baselines are measured in the same run:

* ``matrix --all-ports -o json`` against network-config-analyzer's ``--connectivity`` (its
  whole process, on the same pods, namespaces and policies, as
  ``tests/differential/nca.py`` runs it), the same for peak memory;
* every other command against the same process reading and validating the manifests only
  (``check`` with every lint rule skipped): what is left is the command's own work.

The headline is these processes; internal-function figures (``verifier.*``) are the breakdown.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from policyctl.bench.figures import Figure, Target, unavailable

POLICYCTL = (sys.executable, "-m", "policyctl")
TARGET_SECONDS = 15.0
TARGET_REDUNDANT_SECONDS = 60.0
TARGET_RSS_MB = 2048.0
TARGET_EXPLAIN_SECONDS = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """One finished (or stopped) process: wall seconds, peak RSS, exit status, output size."""

    argv: tuple[str, ...]
    seconds: float
    rss_mb: float
    returncode: int | None
    output_bytes: int
    stderr_tail: str
    crashed: bool = False
    """A traceback on stderr: an exit status of 1 then means a crash, not "the answer is no"."""

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def ok(self, expected: tuple[int, ...]) -> bool:
        return not self.timed_out and not self.crashed and self.returncode in expected


TIME = "/usr/bin/time"


def _limit(megabytes: int | None) -> Any:
    if megabytes is None:
        return None

    def apply() -> None:
        size = megabytes * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    return apply


def run_process(
    argv: Sequence[str], *, timeout: float, cwd: Path | None = None, memory_limit_mb: int | None = None
) -> Run:
    """Run ``argv`` to completion with stdout and stderr in files (so a large output costs
    what writing it costs, as in a shell redirect); stop it after ``timeout`` seconds.

    Peak RSS comes from GNU time (``%M``) where it is installed: a child forked from this
    process would otherwise inherit this process's high-water mark in ``ru_maxrss`` (Linux
    records the forked copy's peak at ``exec``), so the figure would never fall below the
    suite's own size; ``time`` is small, so what it reports is the command's own peak.
    ``memory_limit_mb`` caps the child's address space (the huge scale must not take the
    machine's memory from everything else); a child that hits it fails like any other."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(prefix="pcb-rss-", mode="r") as peak,
    ):
        wrapped = [TIME, "-f", "%M", "-o", peak.name, *argv] if os.access(TIME, os.X_OK) else list(argv)
        started = time.perf_counter()
        process = subprocess.Popen(
            wrapped,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_limit(memory_limit_mb),
        )
        returncode: int | None = None
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid == process.pid:
                returncode = os.waitstatus_to_exitcode(status)
                break
            if time.perf_counter() - started > timeout:
                os.killpg(process.pid, signal.SIGKILL)
                _, _, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        process.returncode = returncode if returncode is not None else -9
        size = out.seek(0, os.SEEK_END)
        err.seek(0)
        text = err.read().decode(errors="replace").strip()
        reported = [line for line in peak.read().split() if line.isdigit()]
    rss_kb = int(reported[-1]) if reported else usage.ru_maxrss
    crashed = "Traceback (most recent call last)" in text
    return Run(tuple(argv), seconds, rss_kb / 1024, returncode, size, text[-400:], crashed)


def _log(message: str) -> None:
    print(f"bench: commands: {message}", file=sys.stderr, flush=True)


def assertions_document(manifests: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Three assertions a team would write for the generated cluster: its first app
    namespace reaches DNS, nothing on the Internet reaches kube-system, and only monitoring
    scrapes its metrics port."""
    namespaces = sorted(m["metadata"]["name"] for m in manifests if m["kind"] == "Namespace")
    team = next(n for n in namespaces if n not in ("kube-system", "monitoring", "default"))
    return {
        "assertions": [
            {
                "name": "dns from the first team namespace",
                "expect": "can",
                "from": {"namespace": team},
                "to": {"namespace": "kube-system", "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}},
                "ports": ["53/UDP"],
            },
            {
                "name": "nothing from the internet to kube-system",
                "expect": "cannot",
                "from": "internet",
                "to": {"namespace": "kube-system"},
            },
            {
                "name": "only monitoring scrapes metrics",
                "expect": "only",
                "from": {"namespace": "monitoring"},
                "to": {"namespace": team},
                "ports": ["9100/TCP"],
            },
        ]
    }


def pair_for_explain(manifests: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """A web pod and an api pod of the same namespace (the first such namespace)."""
    pods = [m for m in manifests if m["kind"] == "Pod"]
    by_tier: dict[tuple[str, str], str] = {}
    for pod in pods:
        tier = pod["metadata"].get("labels", {}).get("tier")
        namespace = pod["metadata"]["namespace"]
        by_tier.setdefault((namespace, tier), f"{namespace}/{pod['metadata']['name']}")
    for (namespace, tier), key in sorted(by_tier.items()):
        if tier == "web" and (namespace, "api") in by_tier:
            return key, by_tier[(namespace, "api")]
    keys = sorted(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods)
    return keys[0], keys[-1]


def commands(
    directory: Path, changed: Path, assertions: Path, pair: tuple[str, str], skip: Sequence[str]
) -> dict[str, list[str]]:
    """Every command of the headline, by figure name (``POLICYCTL`` arguments)."""
    source = ["-f", str(directory)]
    skips = [a for code in skip for a in ("--skip", code)]
    return {
        "load_only": ["check", *source, "-o", "json", *skips, "--fail-level", "error"],
        "matrix_all_ports": ["matrix", *source, "--all-ports", "-o", "json"],
        "matrix_port": ["matrix", *source, "--port", "8080/TCP"],
        "diff": ["diff", str(directory), str(changed)],
        "check": ["check", *source, "-o", "json"],
        "verify_assert": ["verify", "assert", str(assertions), *source],
        "verify_redundant": ["verify", "redundant", *source],
        "explain": ["explain", *source, pair[0], pair[1], "--port", "8080/TCP"],
    }


_EXPECTED_EXIT = {
    "diff": (0, 1),
    "check": (0, 1),
    "verify_assert": (0, 1),
    "verify_redundant": (0, 1),
    "explain": (0, 1),
    "load_only": (0, 1),
}
_TITLES = {
    "matrix_all_ports": "policyctl matrix --all-ports -o json",
    "matrix_port": "policyctl matrix --port 8080/TCP",
    "diff": "policyctl diff OLD NEW (one policy removed)",
    "check": "policyctl check -o json",
    "verify_assert": "policyctl verify assert (3 assertions)",
    "verify_redundant": "policyctl verify redundant",
    "explain": "policyctl explain of one pod pair --port 8080/TCP",
}


def _targets(name: str, pods: int) -> tuple[Target | None, Target | None]:
    """(seconds target, RSS target) from the issue, for the 10k-pod scale and above."""
    if pods < 10_000:
        return None, None
    if name == "verify_redundant":
        return Target(TARGET_REDUNDANT_SECONDS), Target(TARGET_RSS_MB)
    if name == "explain":
        return None, Target(TARGET_RSS_MB)
    return Target(TARGET_SECONDS), Target(TARGET_RSS_MB)


def _speedup_target(pods: int) -> Target | None:
    if pods >= 5_000:
        return Target(20.0, below=False)
    if pods >= 2_000:
        return Target(10.0, below=False)
    return None


def section_commands(
    *,
    manifests: Sequence[dict[str, Any]],
    directory: Path,
    changed: Path,
    workdir: Path,
    pods: int,
    nca_argv: list[str] | None,
    nca_note: str,
    timeout: float,
    skip_codes: Sequence[str],
    memory_limit_mb: int | None = None,
) -> list[Figure]:
    """The headline figures (see the module docstring)."""
    assertions = workdir / "assertions.yaml"
    assertions.write_text(yaml.safe_dump(assertions_document(manifests), sort_keys=False))
    argvs = commands(directory, changed, assertions, pair_for_explain(manifests), skip_codes)
    runs = {}
    nca: Run | None = None
    for name, args in argvs.items():
        runs[name] = run_process([*POLICYCTL, *args], timeout=timeout, memory_limit_mb=memory_limit_mb)
        _log(f"{name}: {runs[name].seconds:.1f}s, {runs[name].rss_mb:.0f} MB, exit {runs[name].returncode}")
        if name == "matrix_all_ports" and nca_argv:
            # Right after the command it is compared with, so both see the machine's load alike.
            nca = run_process(nca_argv, timeout=timeout)
            _log(f"nca --connectivity: {nca.seconds:.1f}s, {nca.rss_mb:.0f} MB, exit {nca.returncode}")
    if nca is not None and not nca.ok((0,)):
        nca_note = (
            f"nca stopped after {timeout:.0f}s"
            if nca.timed_out
            else f"nca exited {nca.returncode}: {nca.stderr_tail[-200:]}"
        )
        nca = None
    base = runs.pop("load_only")
    figures: list[Figure] = []
    if not base.ok(_EXPECTED_EXIT["load_only"]):
        reason = f"the load-only process failed ({base.returncode}): {base.stderr_tail}"
        return [unavailable(f"command.{n}", "s", reason) for n in runs]
    figures.append(
        Figure(
            "command.load_only",
            "s",
            base.seconds,
            detail=(
                f"policyctl check with every lint rule skipped (reading and validating the manifests only); "
                f"peak RSS {base.rss_mb:.0f} MB"
            ),
        )
    )
    for name, done in runs.items():
        seconds_target, rss_target = _targets(name, pods)
        if not done.ok(_EXPECTED_EXIT.get(name, (0,))):
            reason = (
                f"stopped after {timeout:.0f}s"
                if done.timed_out
                else f"exited {done.returncode} after {done.seconds:.0f}s at {done.rss_mb:.0f} MB"
                f"{f' (address space limit {memory_limit_mb} MB)' if memory_limit_mb else ''}: "
                f"{done.stderr_tail[-300:]}"
            )
            figures.append(unavailable(f"command.{name}", "s", reason, target=seconds_target))
            figures.append(unavailable(f"command.{name}.rss", "MB", reason, target=rss_target))
            continue
        detail = f"{_TITLES[name]}; whole process, exit {done.returncode}, {done.output_bytes:,} bytes of output"
        if name == "matrix_all_ports":
            figures.append(
                Figure(
                    "command.matrix_all_ports",
                    "s",
                    done.seconds,
                    baseline=nca.seconds if nca else None,
                    baseline_name="network-config-analyzer --connectivity, whole process, same input" if nca else "",
                    target=seconds_target,
                    detail=detail if nca else f"{detail}; {nca_note}",
                )
            )
            figures.append(
                Figure(
                    "command.matrix_all_ports.rss",
                    "MB",
                    done.rss_mb,
                    baseline=nca.rss_mb if nca else None,
                    baseline_name="network-config-analyzer --connectivity peak RSS" if nca else "",
                    target=rss_target,
                    detail="peak resident memory of the process",
                )
            )
            if nca is not None:
                figures.append(
                    Figure(
                        "command.matrix_all_ports.speedup_vs_nca",
                        "x",
                        nca.seconds / done.seconds,
                        target=_speedup_target(pods),
                        detail="nca seconds / policyctl seconds, whole processes",
                    )
                )
            else:
                figures.append(
                    unavailable("command.matrix_all_ports.speedup_vs_nca", "x", nca_note, target=_speedup_target(pods))
                )
            continue
        figures.append(
            Figure(
                f"command.{name}",
                "s",
                done.seconds,
                baseline=base.seconds,
                baseline_name="the same input read and validated only (load_only)",
                target=seconds_target,
                detail=detail,
            )
        )
        figures.append(
            Figure(
                f"command.{name}.rss",
                "MB",
                done.rss_mb,
                baseline=base.rss_mb,
                baseline_name="load_only peak RSS",
                target=rss_target,
                detail="peak resident memory of the process",
            )
        )
    return figures


COMMAND_FIGURES: tuple[str, ...] = (
    "command.load_only",
    *(f"command.{n}{suffix}" for n in _TITLES for suffix in ("", ".rss")),
    "command.matrix_all_ports.speedup_vs_nca",
)
