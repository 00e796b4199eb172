"""The command group: version, help of every command, usage errors."""

from __future__ import annotations

import pytest

from policyctl import __version__


def test_version(run) -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


@pytest.mark.parametrize("command", ["explain", "matrix", "probe"])
def test_every_command_has_complete_help(run, command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout
    assert "--output" in result.stdout
    if command != "probe":
        assert "--filename" in result.stdout and "--family" in result.stdout and "--port" in result.stdout


def test_unknown_command_is_a_usage_error(run) -> None:
    result = run("explian")
    assert result.exit_code == 2
