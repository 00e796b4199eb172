"""``policyctl matrix`` on narrow terminals: a table that fits, or a list of flows by source, never
cells shrunk to nothing or to an ellipsis."""

from __future__ import annotations

import re

import pytest

from policyctl.cli.inputs import load_cluster
from policyctl.cli.truthtable import Group, build_truth_table
from policyctl.policy.model import Family, Protocol
from tests.cli.conftest import WEBSHOP

SHOP = str(WEBSHOP)

FRONTEND_8080 = "shop/frontend\n  → shop/cart\n  → shop/checkout\n"
FRONTEND_ALL = (
    "shop/frontend\n"
    "  → kube-system/coredns: TCP 53, UDP 53\n"
    "  → shop/cart: TCP 8080\n"
    "  → shop/checkout: TCP 8080\n"
    "  → shop/payments: TCP 8443\n"
)
INGRESS_ALL = (
    "ingress-nginx/ingress-nginx-controller\n"
    "  → kube-system/coredns: all\n"
    "  → monitoring/node-exporter (hostNetwork): all\n"
    "  → shop/frontend: TCP 8080\n"
)


@pytest.mark.parametrize(
    ("args", "columns", "note", "expected"),
    [
        pytest.param(
            ("--port", "8080/TCP"), 60, "needs 66 columns and the terminal has 60",
            [
                FRONTEND_8080,
                "shop/cart\n  (nothing allowed)\n",
                "group-2 (2)\n  → ingress-nginx/ingress-nginx-controller\n  → other members of group-2\n",
            ],
            id="port-60-lists",
        ),
        pytest.param(
            ("--port", "8080/TCP"), 80, None,
            [" 5 shop/frontend                          │ ✘ │ ✘ │ ✔ │ ✔ │ ✔ │ ✘ │\n",
             "┃ from \\ to                                 ┃ 1 ┃ 2 ┃ 3 ┃ 4 ┃ 5 ┃ 6 ┃\n"],
            id="port-80-table",
        ),
        pytest.param(
            ("--all-ports",), 60, "needs 104 columns and the terminal has 60", [FRONTEND_ALL, INGRESS_ALL],
            id="all-ports-60-lists",
        ),
        pytest.param(
            ("--all-ports",), 80, "needs 104 columns and the terminal has 80", [FRONTEND_ALL, INGRESS_ALL],
            id="all-ports-80-lists",
        ),
        pytest.param(
            ("--all-ports",), 120, None,
            ["│  6 shop/frontend                          │ none │  TCP   │ none │  TCP   │"],
            id="all-ports-120-table",
        ),
    ],
)
def test_matrix_fits_the_terminal(run, monkeypatch, args, columns, note, expected) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    result = run("matrix", "-f", SHOP, *args)
    assert result.exit_code == 0, result.stderr
    if note is None:
        assert "listing allowed flows" not in result.stderr
        assert "(rows: from, columns: to)" in result.stdout
    else:
        assert [line for line in result.stderr.splitlines() if "listing allowed flows by source" in line] == [
            f"matrix: the table needs {note.split()[1]} columns and the terminal has {columns}; listing allowed "
            "flows by source instead (-o markdown, or widen the terminal, for the table)"
        ]
        assert note in result.stderr
        assert ": allowed flows by source" in result.stdout
    for text in expected:
        assert text in result.stdout
    assert "…" not in result.stdout
    for line in result.stdout.splitlines():
        if re.match(r"│ +\d+ ", line):
            assert all(cell.strip() for cell in line.strip("│").split("│")), line


@pytest.mark.parametrize(
    "args", [("--port", "8080/TCP"), ("--all-ports",), ("--port", "53/UDP", "--workloads")], ids=str
)
def test_listed_flows_are_the_allowed_cells_of_the_table(run, monkeypatch, args) -> None:
    """The list says exactly what the grouped table says: one line per allowed cell, none else."""
    port = (int(args[1].split("/")[0]), Protocol(args[1].split("/")[1])) if args[0] == "--port" else None
    cluster = load_cluster((SHOP,), namespace="default")
    table = build_truth_table(cluster, port=port, family=Family.IPV4, workloads="--workloads" in args)
    monkeypatch.setenv("COLUMNS", "40")
    listed = run("matrix", "-f", SHOP, *args).stdout

    def label(group: Group) -> str:
        if len(group.members) > 1:
            return f"{group.name} ({len(group.members)})"
        unit = group.members[0]
        return f"{unit.name} (hostNetwork)" if unit.host_network else unit.name

    expected: set[tuple[str, str]] = set()
    for source in table.groups:
        for destination in table.groups:
            value = table.group_cell(source, destination)
            if value is False or value == "none" or (source is destination and len(source.members) == 1):
                continue
            shown = f"other members of {source.name}" if source is destination else label(destination)
            expected.add((label(source), shown if value is True else f"{shown}: {value}"))
    found: set[tuple[str, str]] = set()
    heading = ""
    body = listed.split(": allowed flows by source\n", 1)[1].split("\n\n", 1)[0]
    for line in body.splitlines():
        if line.startswith("  → "):
            found.add((heading, line[4:]))
        elif not line.startswith("  "):
            heading = line
    assert found == expected and found
