"""How a command ends when something other than its answer happens.

Exit codes beside the commands' own (0 yes, 1 no, 2 bad input):

* **130** on Ctrl-C (SIGINT), as a shell reports a process that SIGINT ended, so scripts can
  tell an interrupted run from a "no";
* **3** for an internal error, a bug in policyctl rather than in the input: one line on
  stderr that names the exception and asks for a report, never a traceback and never 1,
  which would read as "denied". ``POLICYCTL_DEBUG=1`` prints the traceback as well.

Click's own ends are left as they are: usage errors (2), ``Exit``, a closed pipe on stdout.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import Any

import click

EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
DEBUG_VARIABLE = "POLICYCTL_DEBUG"
REPORT_URL = "https://github.com/policyctl/policyctl/issues"


def internal_error_line(error: BaseException) -> str:
    """One line: what failed and what to do about it."""
    detail = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {detail[0][:200]}" if detail else type(error).__name__
    return (
        f"policyctl: internal error ({text}). This is a bug in policyctl, not in your input; please "
        f"report it with the command you ran at {REPORT_URL} (set {DEBUG_VARIABLE}=1 for the traceback)"
    )


def _debug() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


class GuardedGroup(click.Group):
    """A command group whose commands end with the exit codes above, whatever they raise."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except click.exceptions.Abort as abort:
            if isinstance(abort.__context__, KeyboardInterrupt):
                raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
            raise
        except KeyboardInterrupt:
            click.echo("policyctl: interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except OSError as error:
            if error.errno == errno.EPIPE:
                raise
            self._internal(error)
        except Exception as error:  # noqa: BLE001 - the one place every other error is turned into exit 3
            self._internal(error)

    @staticmethod
    def _internal(error: BaseException) -> None:
        if _debug():
            traceback.print_exception(error, file=sys.stderr)
        click.echo(internal_error_line(error), err=True)
        raise click.exceptions.Exit(EXIT_INTERNAL) from None
