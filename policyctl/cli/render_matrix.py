"""Presentation of ``policyctl matrix``: grouped rich/markdown tables, per-pod JSON and CSV.

JSON (``schema_version`` 1) carries the full per-unit table plus the groups; CSV is the full
table only (one row per source, ``true``/``false`` or the allowed ports), for spreadsheets and
diffs. Table and markdown show groups, with their members listed below.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from policyctl.cli.inputs import console, emit_document
from policyctl.cli.truthtable import Cell, Group, TruthTable
from policyctl.policy.model import Family, Protocol

SCHEMA_VERSION = 1


def render_matrix(table: TruthTable, *, output: str, port: tuple[int, Protocol] | None, family: Family) -> None:
    if output == "json":
        emit_document(matrix_document(table, port=port, family=family), "json")
    elif output == "csv":
        click.echo(matrix_csv(table), nl=False)
    elif output == "markdown":
        click.echo(matrix_markdown(table, port=port, family=family), nl=False)
    else:
        _render_rich(table, port=port, family=family)


def matrix_document(table: TruthTable, *, port: tuple[int, Protocol] | None, family: Family) -> dict[str, Any]:
    group_of = {u.name: g.name for g in table.groups for u in g.members}
    return {
        "schema_version": SCHEMA_VERSION,
        "port": None if port is None else {"port": port[0], "protocol": port[1].value},
        "family": family.value,
        "units": [
            {
                "name": u.name,
                "pods": [p.key for p in u.pods],
                "workloads": sorted({p.workload for p in u.pods if p.workload}),
                "host_network": u.host_network,
                "group": group_of[u.name],
            }
            for u in table.units
        ],
        "groups": [{"name": g.name, "members": [u.name for u in g.members]} for g in table.groups],
        "allowed": {s: {d: table.cells[s][d] for d in sorted(table.cells[s])} for s in sorted(table.cells)},
    }


def matrix_csv(table: TruthTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = [u.name for u in table.units]
    writer.writerow(["from\\to", *names])
    for source in names:
        writer.writerow([source, *(_plain(table.cell(source, d)) for d in names)])
    return buffer.getvalue()


def matrix_markdown(table: TruthTable, *, port: tuple[int, Protocol] | None, family: Family) -> str:
    groups = table.groups
    lines = [
        f"Connections {_asked(port)} {family.value} (rows: from, columns: to)",
        "",
        "| from \\ to | " + " | ".join(_heading(g) for g in groups) + " |",
        "| --- |" + " :---: |" * len(groups),
    ]
    for source in groups:
        cells = [_mark(table.group_cell(source, d)) for d in groups]
        lines.append(f"| {_heading(source)} | " + " | ".join(cells) + " |")
    lines.extend(_legend(table))
    return "\n".join(lines) + "\n"


def _render_rich(table: TruthTable, *, port: tuple[int, Protocol] | None, family: Family) -> None:
    """Rows carry the names, numbered; columns only the numbers, so many columns still fit."""
    out = console()
    out.print(f"connections {_asked(port)} {family.value} (rows: from, columns: to)")
    grid = Table()
    grid.add_column("from \\ to", no_wrap=True)
    for number, _ in enumerate(table.groups, start=1):
        grid.add_column(str(number), justify="center")
    for number, source in enumerate(table.groups, start=1):
        cells: list[Text | str] = [f"{number:>2} {_heading(source)}"]
        for destination in table.groups:
            value = table.group_cell(source, destination)
            style = "green" if value is True else "red" if value is False else ""
            cells.append(Text(_mark(value), style=style))
        grid.add_row(*cells)
    out.print(grid)
    for line in _legend(table):
        out.print(line)


def _legend(table: TruthTable) -> list[str]:
    lines = []
    for group in table.groups:
        if len(group.members) > 1:
            members = ", ".join(_unit_label(u.name, u.host_network) for u in group.members)
            lines.append(f"{group.name}: {members}")
    host = [u.name for u in table.units if u.host_network]
    if host:
        lines.append(f"hostNetwork (never selected by policies): {', '.join(host)}")
    lines.append("A pod reaching its own address is always allowed; a group's own cell is between its members.")
    return [""] + lines


def _heading(group: Group) -> str:
    if len(group.members) == 1:
        unit = group.members[0]
        return _unit_label(unit.name, unit.host_network)
    return f"{group.name} ({len(group.members)})"


def _unit_label(name: str, host_network: bool) -> str:
    return f"{name} (hostNetwork)" if host_network else name


def _asked(port: tuple[int, Protocol] | None) -> str:
    return "on any port" if port is None else f"to {port[0]}/{port[1].value}"


def _mark(value: Cell) -> str:
    if value is True:
        return "✔"
    if value is False:
        return "✘"
    return str(value)


def _plain(value: Cell) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
