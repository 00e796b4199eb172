"""What a quick call imports: ``--version``, help and completion never pay for the heavy libraries.

Every kubectl-plugin call and every Tab press starts a whole process, so what matters is which
modules that process imports, asserted here from Python's own import log
(``PYTHONPROFILEIMPORTTIME``) rather than from a timing, which a loaded machine would make flaky.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from policyctl.cli.main import COMMANDS
from tests.cli.conftest import REPO

POLICYCTL = Path(sys.executable).with_name("policyctl")

HEAVY = ("rich", "networkx", "yaml", "kubernetes", "prometheus_client", "pyroute2",
         "policyctl.compiler", "policyctl.verifier", "policyctl.enforcer", "policyctl.lab",
         "policyctl.manifests.loader")  # fmt: skip


def imported(args: list[str], **environment: str) -> set[str]:
    """The top-level names of every module the ``policyctl`` process imported."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", **environment}
    done = subprocess.run([str(POLICYCTL), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert names, "no import log: PYTHONPROFILEIMPORTTIME was not honoured"
    return names


def heavy(names: set[str]) -> set[str]:
    return {n for n in names for prefix in HEAVY if n == prefix or n.startswith(prefix + ".")}


@pytest.mark.skipif(not POLICYCTL.exists(), reason="policyctl is not installed beside this Python")
@pytest.mark.parametrize(
    ("args", "environment", "allowed"),
    [
        pytest.param(["--version"], {}, set(), id="version"),
        pytest.param([], {"_POLICYCTL_COMPLETE": "bash_complete", "COMP_WORDS": "policyctl ex", "COMP_CWORD": "1"},
                     set(), id="completing-a-command-name"),
        pytest.param([], {"_POLICYCTL_COMPLETE": "bash_complete", "COMP_WORDS": "policyctl explain --f",
                          "COMP_CWORD": "2"}, set(), id="completing-an-option"),
        pytest.param([], {"_POLICYCTL_COMPLETE": "bash_complete",
                          "COMP_WORDS": "policyctl explain -f examples/webshop shop/f", "COMP_CWORD": "4"},
                     {"yaml", "policyctl.manifests.loader"}, id="completing-a-pod-reads-the-manifests-only"),
        pytest.param([], {"_POLICYCTL_COMPLETE": "bash_complete",
                          "COMP_WORDS": "policyctl matrix -f examples/webshop --port h", "COMP_CWORD": "5"},
                     {"yaml", "policyctl.manifests.loader"}, id="completing-a-named-port-reads-the-manifests-only"),
        pytest.param([], {"_POLICYCTL_COMPLETE": "bash_source"}, set(), id="printing-the-completion-script"),
    ],
)  # fmt: skip
def test_quick_calls_import_no_heavy_library(args: list[str], environment: dict[str, str], allowed: set[str]) -> None:
    found = heavy(imported(args, **environment))
    unexpected = {n for n in found if not any(n == a or n.startswith(a + ".") for a in allowed)}
    assert not unexpected, f"imported: {sorted(unexpected)}"


@pytest.mark.skipif(not POLICYCTL.exists(), reason="policyctl is not installed beside this Python")
def test_a_command_still_imports_what_it_uses() -> None:
    """The import log does see heavy modules when a command needs them (the check above is not vacuous)."""
    names = imported(["explain", "-f", "examples/webshop", "shop/frontend", "shop/cart", "--port", "8080"])
    assert {"rich", "yaml", "policyctl.verifier", "policyctl.manifests.loader"} <= names


LIBRARIES = ("rich", "networkx", "yaml", "kubernetes", "prometheus_client", "pyroute2", "policyctl.verifier",
             "policyctl.manifests.loader")  # fmt: skip
LEFT = {
    "check": {"yaml", "policyctl.verifier", "policyctl.manifests.loader"},  # its linter and reader at module level
}
"""Commands whose module still imports a heavy library when loaded, and which ones."""


@pytest.mark.skipif(not POLICYCTL.exists(), reason="policyctl is not installed beside this Python")
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_completing_a_commands_options_loads_no_engine(command: str) -> None:
    names = imported([], _POLICYCTL_COMPLETE="bash_complete", COMP_WORDS=f"policyctl {command} --", COMP_CWORD="2")
    found = {n for n in names for prefix in LIBRARIES if n == prefix or n.startswith(prefix + ".")}
    allowed = LEFT.get(command, set())
    assert not {n for n in found if not any(n == a or n.startswith(a + ".") for a in allowed)}
