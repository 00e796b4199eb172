"""``lab`` and ``enforce`` on a machine that cannot program nftables: exit 2, saying what is
missing and how to get it, before touching anything.

nftables is made to look absent by an empty ``PATH`` (no ``nft``) and a binding that does not
import; root by replacing the uid check. Both commands are run with arguments that would
otherwise do real work, so only the check can stop them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from policyctl.enforcer import requirements
from tests.cli.conftest import WEBSHOP

COMMANDS = {
    "enforce": ("enforce", "--node", "node-1", "-f", str(WEBSHOP), "--dry-run"),
    "enforce-cleanup": ("enforce", "--node", "node-1", "--cleanup"),
    "lab-up": ("lab", "up", "-f", str(WEBSHOP), "--name", "never-built"),
    "lab-down": ("lab", "down", "--name", "never-built"),
}


@pytest.fixture
def no_nftables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "nftables" else real(name, *rest))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_without_nftables_the_command_names_the_packages_to_install(command: str, run, no_nftables: None) -> None:
    result = run(*COMMANDS[command])
    assert result.exit_code == 2
    assert "nftables is not installed" in result.stderr
    assert "apt-get install nftables python3-nftables" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_without_root_the_command_says_to_run_as_root(command: str, run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(requirements, "has_nft_command", lambda: True)
    monkeypatch.setattr(requirements, "is_root", lambda: False)
    result = run(*COMMANDS[command])
    assert result.exit_code == 2
    assert "needs root" in result.stderr and "run this command as root" in result.stderr


def test_the_enforcer_is_content_with_the_binding_alone_but_the_lab_needs_the_nft_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(requirements, "is_root", lambda: True)
    monkeypatch.setattr(requirements, "has_nft_command", lambda: False)
    monkeypatch.setattr(requirements, "has_binding", lambda: True)
    assert requirements.missing() is None
    assert "no nft command" in str(requirements.missing(nft_command=True))
