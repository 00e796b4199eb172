"""Progress on stderr: shown for slow phases on a terminal, never in pipes or with ``-q``."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from policyctl.cli.progress import Progress
from tests.cli.conftest import WEBSHOP


def _terminal() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=80), buffer


@pytest.mark.parametrize(
    ("enabled", "delay", "seconds", "shown"),
    [
        pytest.param(True, 0.05, 0.3, ["relation"], id="slow-phase-on-a-terminal-is-shown"),
        pytest.param(True, 5.0, 0.0, [], id="quick-phase-prints-nothing"),
        pytest.param(False, 0.0, 0.2, [], id="disabled-prints-nothing"),
    ],
)
def test_a_phase_is_shown_only_when_enabled_and_slow(
    enabled: bool, delay: float, seconds: float, shown: list[str]
) -> None:
    out, buffer = _terminal()
    progress = Progress(enabled=enabled, delay=delay, console=out)
    with progress.phase("relation"):
        time.sleep(seconds)
    assert progress.shown == shown
    assert ("relation" in buffer.getvalue()) is bool(shown)


def test_not_a_terminal_means_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert Progress.for_terminal(quiet=False).enabled is False


def test_quiet_means_disabled_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Terminal())
    assert Progress.for_terminal(quiet=True).enabled is False
    assert Progress.for_terminal(quiet=False).enabled is True


@pytest.mark.parametrize("command", [("matrix", "--all-ports", "-q"), ("explain", "shop/frontend", "0.0.0.0/0", "-q")])
def test_commands_accept_quiet_and_keep_stderr_clean(run, command: tuple[str, ...]) -> None:
    result = run(*command, "-f", str(WEBSHOP))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
