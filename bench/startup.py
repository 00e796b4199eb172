"""Whole-process start-up of the calls paid on every kubectl-plugin call and every Tab press.

``policyctl --version`` and shell completion must stay under 0.2 s whole process: each figure
is the median of repeated runs of the installed ``policyctl`` script, beside the baseline of the
same Python starting and doing nothing (``python -c pass``), measured in the same run, and the
machine's load (a loaded two-core machine stretches both alike, so the ratio is what compares
across runs). Which modules these calls import is asserted by tests/cli/test_lazy_imports.py;
this measures time.

Usage: ``.venv/bin/python -m bench.startup [--runs N] [--repo DIR]`` prints JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from policyctl.bench.figures import Figure, Target, machine, median

TARGET = Target(0.2)
CALLS: dict[str, tuple[list[str], list[str], dict[str, str]]] = {
    "version": ([], ["--version"], {}),
    "complete_command_name": ([], [], {"_POLICYCTL_COMPLETE": "bash_complete", "COMP_WORDS": "policyctl ex",
                                       "COMP_CWORD": "1"}),
    "complete_pod_name": ([], [], {"_POLICYCTL_COMPLETE": "bash_complete",
                                   "COMP_WORDS": "policyctl explain -f examples/webshop shop/f", "COMP_CWORD": "4"}),
}  # fmt: skip


def _median_seconds(command: list[str], env: dict[str, str], cwd: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return median(times)


def figures(*, runs: int, repo: Path) -> list[Figure]:
    script = Path(sys.executable).with_name("policyctl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("_POLICYCTL") and not k.startswith("COMP_")}
    baseline = _median_seconds([sys.executable, "-c", "pass"], env, repo, runs)
    found = []
    for name, (_, args, extra) in CALLS.items():
        value = _median_seconds([str(script), *args], {**env, **extra}, repo, runs)
        found.append(Figure(f"startup.{name}", "s", value, baseline, "python -c pass", TARGET,
                            detail=f"median of {runs} whole processes"))  # fmt: skip
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    options = parser.parse_args()
    document: dict[str, object] = {f.name: f.to_json() for f in figures(runs=options.runs, repo=options.repo)}
    document["machine"] = machine()
    print(json.dumps(document, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
