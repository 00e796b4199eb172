"""Progress on stderr for the phases of a long command (loading, classes, relation, rendering).

A phase shows a spinner with its name only once it has run for ``delay`` seconds, so quick
commands print nothing; the line is transient (erased when the phase ends) and goes to stderr,
so stdout stays the command's output. Nothing is shown when stderr is not a terminal (pipes,
CI logs) or with ``-q``: progress is for a person watching, never for a parser. rich is
imported only when a spinner is shown.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status

DELAY = 1.0

F = TypeVar("F", bound=Callable[..., Any])


def quiet_option(function: F) -> F:
    return click.option(
        "-q",
        "--quiet",
        is_flag=True,
        help="No progress on stderr (it is shown only on a terminal, for phases over a second).",
    )(function)


class Progress:
    """Phases of one command; ``enabled`` False makes every phase a no-op."""

    def __init__(self, *, enabled: bool, delay: float = DELAY, console: Console | None = None) -> None:
        self.enabled = enabled
        self.delay = delay
        self.console = console
        self.shown: list[str] = []

    @classmethod
    def for_terminal(cls, *, quiet: bool) -> Progress:
        """Enabled only when stderr is a terminal and ``-q`` was not given."""
        return cls(enabled=not quiet and sys.stderr.isatty())

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Run the body; after ``delay`` seconds a spinner named ``name`` appears until it ends."""
        if not self.enabled:
            yield
            return
        lock = threading.Lock()
        status: list[Status] = []
        done = False

        def show() -> None:
            with lock:
                if done:
                    return
                if self.console is None:
                    from rich.console import Console

                    self.console = Console(stderr=True)
                spinner = self.console.status(f"{name}…", spinner="dots")
                spinner.start()
                status.append(spinner)
                self.shown.append(name)

        timer = threading.Timer(self.delay, show)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            with lock:
                done = True
                for spinner in status:
                    spinner.stop()
