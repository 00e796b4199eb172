"""Diagnostics: what loading, validation and lint report, always with a place.

The core never prints or logs; it returns these and the edges (CLI, agent) decide how to
show them. Every diagnostic names the file, the line and the field path
(``spec.ingress[0].from[1].ipBlock.except[0]``) so a user can go straight to it.

Error tree (raised only where a caller cannot go on with diagnostics alone)::

    PolicyctlError
    └── InputError          bad input: carries the diagnostics, exit code 2 at the CLI
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


def format_path(path: Iterable[str | int]) -> str:
    """``("spec", "ingress", 0, "from", 1)`` -> ``spec.ingress[0].from[1]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """One finding. ``code`` is a stable identifier (``invalid-cidr``, ``duplicate-key``, ...)
    that scripts and SARIF rules key on; ``object`` names the object (``NetworkPolicy
    x/deny``) when there is one."""

    file: str
    line: int
    severity: Severity
    code: str
    message: str
    field: str = ""
    object: str = ""
    column: int = 0
    hint: str = ""
    """How to fix it, when there is a likely fix (lint findings carry one)."""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        what = f" {self.field}:" if self.field else ""
        obj = f" ({self.object})" if self.object else ""
        return f"{where}: {self.severity.value}:{what} {self.message}{obj} [{self.code}]"


class PolicyctlError(Exception):
    """Base of every error policyctl raises on purpose."""


class InputError(PolicyctlError):
    """Input that cannot be used: the diagnostics say where and why."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted(diagnostics))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)
