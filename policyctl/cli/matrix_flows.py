"""The matrix as a list of allowed flows grouped by source, for terminals too narrow for the table.

A table whose columns do not fit is shrunk by the terminal library until its cells are empty
or an ellipsis, which says nothing. The list has the same content as the table (the grouped
:class:`~cli.truthtable.TruthTable`, so still classes, never pairs), one line per allowed
destination of each source group, and lines that are too long wrap instead of being cut.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from policyctl.cli.truthtable import Cell, Group, TruthTable

NOTHING = "(nothing allowed)"


@dataclass(frozen=True, slots=True)
class Flow:
    """An allowed destination of a source group: ``ports`` is the table's cell in words
    (``TCP 8080``, ``all``, ``mixed``) or None for a yes to the one port asked."""

    destination: str
    ports: str | None


def allowed(value: Cell) -> bool:
    """Whether a cell allows something: ``True`` for one port, any words but ``none`` for the
    port sets (``mixed``, some member pairs only, included)."""
    return value is True or (isinstance(value, str) and value != "none")


def flows_from(table: TruthTable, source: Group, label: Callable[[Group], str]) -> tuple[Flow, ...]:
    """Allowed destinations of ``source`` in table order. The group's own cell is the answer
    between two different members; a single unit reaching itself is always allowed and left
    to the legend."""
    found = []
    row = table.cells[source.name]
    candidates = (
        ((d, row[d.name]) for d in table.groups)
        if allowed(row.default)
        else ((table.by_name[name], value) for name, value in row.differing())
    )
    for destination, value in candidates:
        if not allowed(value):
            continue
        if destination is source:
            if len(source.members) == 1:
                continue
            name = f"other members of {source.name}"
        else:
            name = label(destination)
        found.append(Flow(name, None if value is True else str(value)))
    return tuple(found)


def flow_lines(table: TruthTable, label: Callable[[Group], str]) -> list[str]:
    """One heading per source group and one indented line per allowed destination."""
    lines: list[str] = []
    for source in table.groups:
        lines.append(label(source))
        flows = flows_from(table, source, label)
        if not flows:
            lines.append(f"  {NOTHING}")
        for flow in flows:
            lines.append(f"  → {flow.destination}" + ("" if flow.ports is None else f": {flow.ports}"))
    return lines


def switch_note(needed: int, width: int) -> str:
    """The one line on stderr that says why the table became a list."""
    return (
        f"matrix: the table needs {needed} columns and the terminal has {width}; "
        "listing allowed flows by source instead (-o markdown, or widen the terminal, for the table)"
    )
