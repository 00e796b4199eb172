"""Presentation of ``policyctl matrix``: grouped rich/markdown tables, JSON and CSV.

Every format shows groups of interchangeable units (``cli.truthtable``). JSON
(``schema_version`` 3, docs/matrix-json.md): ``units`` (each with its ``group``), ``groups``
(``members``, ``inner``: the answer between two different members, ``own``: a member to
itself) and ``allowed[g]``, the row of group ``g`` stored sparse: ``default``, the answer from
any member of ``g`` to any different member of every group not in ``cells``, and ``cells[h]``
where it differs; expanding it to unit pairs is exact. CSV is the same group table, dense, with
a ``members`` column. With ``--expand`` JSON's ``allowed`` rows (same sparse shape) and the CSV
are per unit instead, written one source row at a time so memory stays that of the groups.
Output is byte-stable: keys sorted, rows in unit or group order.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any, TextIO

import click
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from policyctl.cli.inputs import console, skipped_kinds
from policyctl.cli.matrix_flows import flow_lines, switch_note
from policyctl.cli.truthtable import Cell, Group, TruthTable
from policyctl.policy.model import Family, Protocol

SCHEMA_VERSION = 3


def render_matrix(
    table: TruthTable, *, output: str, port: tuple[int | str, Protocol] | None, family: Family, expand: bool = False
) -> None:
    out = sys.stdout
    if output == "json":
        write_json(table, out, port=port, family=family, expand=expand)
    elif output == "csv":
        write_csv(table, out, expand=expand)
    elif output == "markdown":
        out.write(matrix_markdown(table, port=port, family=family))
    else:
        _render_rich(table, port=port, family=family)
    out.flush()


def matrix_document(table: TruthTable, *, port: tuple[int | str, Protocol] | None, family: Family) -> dict[str, Any]:
    """The grouped JSON document as a value (what :func:`write_json` writes without --expand)."""
    return {
        **_header(table, port=port, family=family, expand=False),
        "allowed": dict(_allowed_rows(table, expand=False)),
    }


def _header(
    table: TruthTable, *, port: tuple[int | str, Protocol] | None, family: Family, expand: bool
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "port": None if port is None else {"port": port[0], "protocol": port[1].value},
        "family": family.value,
        "expanded": expand,
        "units": [
            {
                "name": u.name,
                "pods": [p.key for p in u.pods],
                "workloads": sorted({p.workload for p in u.pods if p.workload}),
                "host_network": u.host_network,
                "group": table.group_of[u.name],
            }
            for u in table.units
        ],
        "groups": [
            {"name": g.name, "members": [u.name for u in g.members], "inner": g.inner, "own": g.own}
            for g in table.groups
        ],
    }


def write_json(
    table: TruthTable, out: TextIO, *, port: tuple[int | str, Protocol] | None, family: Family, expand: bool
) -> None:
    """The document with sorted keys, indented like ``emit_document`` except that each row of
    ``allowed`` is one line, written as it is made."""
    header = _header(table, port=port, family=family, expand=expand)
    skipped = skipped_kinds()
    if skipped:
        header["skipped_kinds"] = dict(sorted(skipped.items()))
    out.write('{\n  "allowed": {')
    first = True
    for name, row in _allowed_rows(table, expand=expand):
        out.write(("\n    " if first else ",\n    ") + json.dumps(name, ensure_ascii=False) + ": ")
        out.write(json.dumps(row, ensure_ascii=False))
        first = False
    out.write("\n  }" if not first else "}")
    for key in sorted(header):
        text = json.dumps(header[key], indent=2, sort_keys=True, ensure_ascii=False).replace("\n", "\n  ")
        out.write(f",\n  {json.dumps(key)}: {text}")
    out.write("\n}\n")


def _allowed_rows(table: TruthTable, *, expand: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows as ``{"default": cell, "cells": {name: cell}}`` (only the cells that differ),
    sorted by name: per group, or per unit with ``expand``."""
    if not expand:
        for name in sorted(table.cells):
            row = table.cells[name]
            yield name, {"cells": dict(sorted(row.exceptions.items())), "default": row.default}
        return
    names = [u.name for u in table.units]
    for unit, default, cells in table.sparse_rows():
        yield unit.name, {"cells": {names[c]: cells[c] for c in sorted(cells)}, "default": default}


def write_csv(table: TruthTable, out: TextIO, *, expand: bool) -> None:
    """Groups with a ``members`` column (space-separated), or with ``--expand`` one row per
    unit, ``true``/``false`` or the allowed ports."""
    writer = csv.writer(out, lineterminator="\n")
    if expand:
        writer.writerow(["from\\to", *(u.name for u in table.units)])
        for unit, cells in table.rows():
            writer.writerow([unit.name, *(_plain(c) for c in cells)])
        return
    writer.writerow(["from\\to", "members", *(g.name for g in table.groups)])
    for source in table.groups:
        members = " ".join(u.name for u in source.members)
        writer.writerow([source.name, members, *(_plain(table.group_cell(source, d)) for d in table.groups)])


def matrix_markdown(table: TruthTable, *, port: tuple[int | str, Protocol] | None, family: Family) -> str:
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


def _render_rich(table: TruthTable, *, port: tuple[int | str, Protocol] | None, family: Family) -> None:
    """Rows carry the names, numbered; columns only the numbers, so many columns still fit. A table
    wider than the terminal would be shrunk to empty cells: it becomes a list (``cli.matrix_flows``)."""
    out = console()
    grid = Table()
    grid.add_column("from \\ to", no_wrap=True)
    for number, _ in enumerate(table.groups, start=1):
        grid.add_column(str(number), justify="center")
    labels = (f"{number:>2} {_heading(source)}" for number, source in enumerate(table.groups, start=1))
    grid.add_row(max(labels, key=cell_len, default=""), *(Text(_mark(v)) for v in _widest_cells(table)))
    needed = Measurement.get(out, out.options.update_width(sys.maxsize), grid).minimum
    if needed > out.width:
        _render_flows(table, out, needed=needed, port=port, family=family)
        return
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
    out.print(f"connections {_asked(port)} {family.value} (rows: from, columns: to)")
    out.print(grid)
    for line in _legend(table):
        out.print(line)


def _widest_cells(table: TruthTable) -> list[Cell]:
    """Per column, the cell with the widest word: a table's narrowest width is each column's
    widest unbreakable word, so the headings and these cells measure as the whole table does,
    from the sparse rows (a row's default is in every column where it lists no exception)."""
    rows = [table.cells[g.name] for g in table.groups]
    defaults = Counter(row.default for row in rows)
    listed: list[list[tuple[Cell, Cell]]] = [[] for _ in table.groups]
    at = {g.name: i for i, g in enumerate(table.groups)}
    for row in rows:
        for name, value in row.exceptions.items():
            listed[at[name]].append((row.default, value))
    found: list[Cell] = []
    for cells in listed:
        present = defaults.copy()
        present.subtract(default for default, _ in cells)
        candidates = [value for value, n in present.items() if n > 0] + [value for _, value in cells]
        found.append(max(candidates, key=_word_width, default=""))
    return found


def _word_width(value: Cell) -> int:
    return max((cell_len(word) for word in _mark(value).split()), default=0)


def _render_flows(
    table: TruthTable, out: Console, *, needed: int, port: tuple[int | str, Protocol] | None, family: Family
) -> None:
    """The list of allowed flows, for a table ``needed`` columns wide that does not fit. Whether
    it fits is measured on one row of the widest label and each column's widest cell
    (:func:`_widest_cells`), so a table of thousands of groups is never built cell by cell only
    to be measured."""
    click.echo(switch_note(needed, out.width), err=True)
    out.print(f"connections {_asked(port)} {family.value}: allowed flows by source", soft_wrap=True)
    for line in flow_lines(table, _heading):
        out.print(line, soft_wrap=True)
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


def _asked(port: tuple[int | str, Protocol] | None) -> str:
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
