"""``kubectl policyctl <Tab>``: kubectl runs ``kubectl_complete-policyctl`` and reads Cobra's answer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from policyctl.cli.kubectlcomplete import answer
from policyctl.cli.main import COMMANDS
from tests.cli.conftest import REPO

SHOP = ["shop/cart", "shop/checkout", "shop/frontend", "shop/payments", "shop/postgres", "shop/redis"]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        pytest.param(["ex"], ["explain", ":4"], id="commands"),
        pytest.param(["explain", "-f", "examples/webshop", "sh"], [*SHOP, ":4"], id="pods-of-the-input"),
        pytest.param(["matrix", "-f", "examples/webshop", "--port", "https"], ["https", ":4"], id="named-ports"),
        pytest.param(["explain", "-f", "exa"], [":0"], id="paths-are-left-to-the-shell"),
        pytest.param([""], [*sorted(COMMANDS), ":4"], id="after-a-space-every-command"),
    ],
)
def test_cobra_answer(words: list[str], expected: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert answer(words).splitlines() == expected


def test_the_completion_executable_is_installed_with_the_plugin() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["kubectl_complete-policyctl"] == "policyctl.cli.kubectlcomplete:main"
    assert scripts["kubectl-policyctl"] == scripts["policyctl"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_completes_the_plugin_through_it(tmp_path: Path) -> None:
    executable = tmp_path / "kubectl_complete-policyctl"
    executable.write_text(f'#!/bin/sh\nexec {sys.executable} -m policyctl.cli.kubectlcomplete "$@"\n')
    executable.chmod(0o755)
    path = os.pathsep.join([str(tmp_path), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    words = ["explain", "-f", "examples/webshop", "shop/c"]
    done = subprocess.run(["kubectl", "__complete", "policyctl", *words], cwd=REPO, env={**os.environ, "PATH": path},
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.stdout.splitlines() == ["shop/cart", "shop/checkout", ":4"], done.stderr
