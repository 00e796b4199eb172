"""What the help promises: only formats that exist, and the name the user typed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.helpexamples import command_paths, help_text

PLUGIN = Path(sys.executable).with_name("kubectl-policyctl")
HELPS = {path: help_text(path) for path in command_paths()}
OUTPUT = re.compile(r"-o, --output \[([a-z|]+)\]\s+(.*?)(?=\n  -|\Z)", re.DOTALL)


@pytest.mark.parametrize("path", [p for p, text in HELPS.items() if OUTPUT.search(text)], ids=" ".join)
def test_output_help_names_only_formats_the_command_has(path: tuple[str, ...]) -> None:
    match = OUTPUT.search(HELPS[path])
    assert match is not None
    choices, text = match.group(1).split("|"), " ".join(match.group(2).split())
    for name in ("JSON", "YAML", "CSV"):
        assert (name in text.split("[default")[0]) <= (name.lower() in choices), (name, text)


@pytest.mark.skipif(not PLUGIN.exists(), reason="kubectl-policyctl is not installed beside this Python")
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--help"], "Usage: kubectl policyctl [OPTIONS] COMMAND", id="top-level"),
        pytest.param(["explain", "--help"], "Usage: kubectl policyctl explain [OPTIONS] SRC DST", id="a-command"),
        pytest.param(["explian"], "Try 'kubectl policyctl --help' for help.", id="a-usage-error"),
    ],
)
def test_the_kubectl_plugin_says_kubectl_policyctl(args: list[str], expected: str) -> None:
    done = subprocess.run([str(PLUGIN), *args], capture_output=True, text=True, timeout=60)
    assert expected in done.stdout + done.stderr
    assert "kubectl-policyctl" not in done.stdout + done.stderr
