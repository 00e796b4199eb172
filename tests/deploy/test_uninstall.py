"""scripts/uninstall removes the install before the cleanup runs, waits for every node's cleanup,
and leaves the cleanup in place (non-zero exit) when a node was not cleaned. The kubectl here is a
recorder on PATH (no cluster in tests); the flags it is given are checked against the real
kubectl's help. The cleanup itself runs against the kernel in tests/deploy/test_image.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "uninstall"
FAKE_KUBECTL = """#!/bin/sh
echo "$*" >> "$KUBECTL_LOG"
case "$*" in *"rollout status"*) exit "${ROLLOUT_EXIT:-0}";; esac
"""


def uninstall(tmp_path: Path, *args: str, rollout_exit: int = 0) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    log = tmp_path / "kubectl.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "KUBECTL_LOG": str(log),
           "ROLLOUT_EXIT": str(rollout_exit)}  # fmt: skip
    result = subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=30, check=False)
    return result, log.read_text().splitlines() if log.exists() else []


def test_uninstall_deletes_the_agents_then_cleans_every_node_then_removes_the_cleanup(tmp_path: Path) -> None:
    result, calls = uninstall(tmp_path, "--context", "prod")
    assert result.returncode == 0, result.stderr
    deploy = ROOT / "deploy"
    assert calls == [
        f"--context prod delete -k {deploy} --ignore-not-found --cascade=foreground --wait --timeout=10m",
        f"--context prod apply -k {deploy}/uninstall",
        "--context prod -n kube-system rollout status daemonset/policyctl-cleanup --timeout=10m",
        f"--context prod delete -k {deploy}/uninstall --ignore-not-found --wait",
    ]


def test_uninstall_deletes_the_overlay_that_was_installed(tmp_path: Path) -> None:
    overlay = str(ROOT / "deploy" / "overlays" / "metrics")
    result, calls = uninstall(tmp_path, "-k", overlay)
    assert result.returncode == 0, result.stderr
    assert calls[0].startswith(f"delete -k {overlay} ")


def test_a_node_left_unclean_fails_and_keeps_the_cleanup_for_a_second_run(tmp_path: Path) -> None:
    result, calls = uninstall(tmp_path, rollout_exit=1)
    assert result.returncode == 1
    assert "some nodes were not cleaned" in result.stderr
    assert calls[-1] == "-n kube-system get pods -l app.kubernetes.io/name=policyctl-cleanup -o wide"
    assert not [c for c in calls if c.startswith("delete -k") and c.split()[2].endswith("uninstall")]


@pytest.mark.parametrize(
    ("verb", "flags"),
    [
        pytest.param(("delete",), ("--ignore-not-found", "--cascade", "--wait", "--timeout"), id="delete"),
        pytest.param(("apply",), ("--kustomize",), id="apply"),
        pytest.param(("rollout", "status"), ("--timeout",), id="rollout-status"),
    ],
)
def test_the_flags_it_passes_are_real_kubectl_flags(verb: tuple[str, ...], flags: tuple[str, ...]) -> None:
    kubectl = shutil.which("kubectl") or shutil.which("kubectl", path=str(ROOT / ".venv" / "tools"))
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    help_text = subprocess.run([kubectl, *verb, "--help"], capture_output=True, text=True, check=True).stdout
    for flag in flags:
        assert f"{flag}=" in help_text or f"{flag}:" in help_text or f"{flag} " in help_text, flag
    script = SCRIPT.read_text()
    assert all(flag in script or flag == "--kustomize" for flag in flags)
