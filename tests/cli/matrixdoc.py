"""Reading ``policyctl matrix -o json`` as a reader of its documented schema would: the answer
for one unit pair, expanded from the groups (written apart from the code under test)."""

from __future__ import annotations

from typing import Any


def row_cell(row: dict[str, Any], name: str) -> Any:
    """A cell of a sparse row: listed in ``cells``, else the row's ``default``."""
    return row["cells"].get(name, row["default"])


def expanded_cell(document: dict[str, Any], source: str, destination: str) -> Any:
    """``own`` of the unit's group for a unit to itself, else the group row's cell for the
    destination's group; an expanded document is read directly."""
    if document["expanded"]:
        return row_cell(document["allowed"][source], destination)
    group = {u["name"]: u["group"] for u in document["units"]}
    if source == destination:
        return next(g["own"] for g in document["groups"] if g["name"] == group[source])
    return row_cell(document["allowed"][group[source]], group[destination])


def expanded_table(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = [u["name"] for u in document["units"]]
    return {s: {d: expanded_cell(document, s, d) for d in names} for s in names}
