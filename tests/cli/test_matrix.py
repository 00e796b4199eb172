"""``policyctl matrix``: truth tables, grouping, formats."""

from __future__ import annotations

import csv
import io
import json

import pytest

from policyctl.cli.truthtable import Unit, group_units
from tests.cli.conftest import WEBSHOP
from tests.cli.matrixdoc import expanded_cell, expanded_table, row_cell

SHOP = str(WEBSHOP)


@pytest.fixture
def webshop_8080(run) -> dict:
    result = run("matrix", "-f", SHOP, "--port", "8080/TCP", "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("source", "destination", "allowed"),
    [
        pytest.param(
            "ingress-nginx/ingress-nginx-controller", "shop/frontend", True, id="ingress-to-frontend-named-port"
        ),
        pytest.param("shop/frontend", "shop/cart", True, id="frontend-to-cart"),
        pytest.param("shop/checkout", "shop/cart", True, id="checkout-to-cart"),
        pytest.param("shop/cart", "shop/checkout", False, id="cart-not-to-checkout"),
        pytest.param("shop/cart", "shop/frontend", False, id="frontend-only-from-ingress"),
        pytest.param("shop/frontend", "kube-system/coredns", False, id="dns-only-on-53"),
        pytest.param("kube-system/coredns", "ingress-nginx/ingress-nginx-controller", True, id="unisolated-namespaces"),
    ],
)
def test_webshop_cells(webshop_8080, source, destination, allowed) -> None:
    assert expanded_cell(webshop_8080, source, destination) is allowed


@pytest.mark.parametrize("args", [("--port", "8080/TCP"), ("--all-ports",), ("--port", "53/UDP", "--workloads")])
def test_expanded_json_is_the_grouped_json_expanded(run, args) -> None:
    grouped = json.loads(run("matrix", "-f", SHOP, *args, "-o", "json").stdout)
    expanded = json.loads(run("matrix", "-f", SHOP, *args, "-o", "json", "--expand").stdout)
    assert expanded["expanded"] is True and grouped["expanded"] is False
    assert expanded_table(expanded) == expanded_table(grouped)
    assert {k: v for k, v in expanded.items() if k not in ("allowed", "expanded")} == {
        k: v for k, v in grouped.items() if k not in ("allowed", "expanded")
    }


@pytest.mark.parametrize(
    ("row", "default", "cells"),
    [
        pytest.param("shop/cart", False, {"shop/cart": True}, id="isolated-pod-lists-only-itself"),
        pytest.param("shop/checkout", False, {"shop/cart": True, "shop/checkout": True}, id="caller-lists-callee"),
        pytest.param(
            "shop/frontend",
            False,
            {"shop/cart": True, "shop/checkout": True, "shop/frontend": True},
            id="frontend-lists-both-backends",
        ),
    ],
)
def test_json_rows_are_a_default_and_the_cells_that_differ(webshop_8080, row, default, cells) -> None:
    assert webshop_8080["allowed"][row] == {"default": default, "cells": cells}


def test_expanded_json_rows_are_sparse_per_pod(run) -> None:
    document = json.loads(run("matrix", "-f", SHOP, "--port", "8080/TCP", "-o", "json", "--expand").stdout)
    assert document["allowed"]["shop/checkout"] == {
        "default": False,
        "cells": {"shop/cart": True, "shop/checkout": True},
    }
    assert document["allowed"]["shop/redis"] == {"default": False, "cells": {"shop/redis": True}}
    assert list(document["allowed"]) == sorted(u["name"] for u in document["units"])


def test_interchangeable_pods_are_grouped(webshop_8080) -> None:
    groups = {tuple(g["members"]): g for g in webshop_8080["groups"]}
    data = groups[("shop/payments", "shop/postgres", "shop/redis")]
    assert (data["inner"], data["own"]) == (False, True)
    assert row_cell(webshop_8080["allowed"][data["name"]], data["name"]) is False
    units = {u["name"]: u for u in webshop_8080["units"]}
    assert units["monitoring/node-exporter"]["host_network"] is True
    assert units["shop/redis"]["group"] == data["name"]
    assert webshop_8080["schema_version"] == 3


def test_json_is_byte_stable_and_parses(run) -> None:
    first = run("matrix", "-f", SHOP, "-o", "json")
    assert first.stdout == run("matrix", "-f", SHOP, "-o", "json").stdout
    assert json.loads(first.stdout)["port"] is None


def test_table_lists_groups_and_host_network(run) -> None:
    result = run("matrix", "-f", SHOP, "--port", "8080/TCP")
    assert "shop/payments, shop/postgres, shop/redis" in result.stdout
    assert "hostNetwork (never selected by policies): monitoring/node-exporter" in result.stdout


def test_csv_lists_groups_with_their_members(run) -> None:
    rows = list(csv.reader(io.StringIO(run("matrix", "-f", SHOP, "--port", "8080/TCP", "-o", "csv").stdout)))
    assert rows[0][:2] == ["from\\to", "members"] and len(rows) == len(rows[0]) - 1
    header = rows[0]
    stores = next(r for r in rows if r[1] == "shop/payments shop/postgres shop/redis")
    assert stores[header.index(stores[0])] == "false"
    frontend = next(r for r in rows if r[0] == "shop/frontend")
    assert frontend[header.index(stores[0])] == "false" and frontend[header.index("shop/cart")] == "true"


def test_expanded_csv_is_the_full_table(run) -> None:
    result = run("matrix", "-f", SHOP, "--port", "8080/TCP", "-o", "csv", "--expand")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0][0] == "from\\to" and len(rows) == len(rows[0]) == 10
    header = rows[0]
    frontend = next(r for r in rows if r[0] == "shop/frontend")
    assert frontend[header.index("shop/cart")] == "true"
    assert frontend[header.index("shop/payments")] == "false"


def test_markdown_without_port_lists_allowed_ports(run) -> None:
    result = run("matrix", "-f", SHOP, "-o", "markdown")
    line = next(row for row in result.stdout.splitlines() if row.startswith("| shop/frontend |"))
    assert "TCP 8443" in line and "TCP 53, UDP 53" in line


def test_workloads_name_rows_by_kind(run) -> None:
    document = json.loads(run("matrix", "-f", SHOP, "--port", "8080", "--workloads", "-o", "json").stdout)
    names = [u["name"] for u in document["units"]]
    assert "shop/deploy/frontend" in names and "shop/sts/postgres" in names and "monitoring/ds/node-exporter" in names


def test_expand_is_refused_for_tables(run) -> None:
    result = run("matrix", "-f", SHOP, "--expand")
    assert result.exit_code == 2 and "--expand is for -o json and -o csv" in result.stderr


def test_invalid_input_exits_2(run, tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: 3}\n"
    )
    result = run("matrix", "-f", str(path))
    assert result.exit_code == 2
    assert f"{path}:4: error: spec.podSelector" in result.stderr


def _units(*names: str) -> list[Unit]:
    return [Unit(n, ()) for n in names]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(
            {"a": "TTF", "b": "TTF", "c": "FFT"}, [("a", "b"), ("c",)], id="equal-rows-and-columns-group"
        ),
        pytest.param(
            {"a": "TFF", "b": "FTF", "c": "FFT"}, [("a", "b", "c")], id="isolated-pods-group-with-denied-inner-cells"
        ),
        pytest.param(
            {"a": "TTF", "b": "FTF", "c": "FFT"}, [("a",), ("b",), ("c",)], id="asymmetric-pair-stays-apart"
        ),
        pytest.param(
            {"a": "TTT", "b": "TTT", "c": "FFT"}, [("a", "b"), ("c",)], id="same-row-different-column-from-c"
        ),
        pytest.param(
            {"a": "TFFT", "b": "FTFT", "c": "FFTF", "d": "FFFT"},
            [("a", "b"), ("c",), ("d",)],
            id="rows-with-different-defaults-group",
        ),
        pytest.param(
            {"a": "TFT", "b": "FTT", "c": "TTT"}, [("a", "b"), ("c",)], id="pair-answering-each-other-apart-groups"
        ),
    ],
)
def test_group_units(rows: dict[str, str], expected: list[tuple[str, ...]]) -> None:
    names = list(rows)
    cells = {s: {d: rows[s][i] == "T" for i, d in enumerate(names)} for s in names}
    groups = group_units(_units(*names), cells)
    assert [tuple(u.name for u in g.members) for g in groups] == expected


@pytest.mark.parametrize("output", ["json", "csv", "markdown", "table"])
def test_a_cluster_without_pods_is_an_empty_table(run, tmp_path, output) -> None:
    path = tmp_path / "ns.yaml"
    path.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: empty}\n")
    result = run("matrix", "-f", str(path), "-o", output)
    assert result.exit_code == 0, result.stderr
    if output == "json":
        document = json.loads(result.stdout)
        assert (document["units"], document["groups"], document["allowed"]) == ([], [], {})


def test_a_single_pod_is_its_own_group(run, tmp_path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nspec: {containers: [{name: c}]}")
    document = json.loads(run("matrix", "-f", str(path), "--port", "80", "-o", "json").stdout)
    assert document["groups"] == [{"name": "x/a", "members": ["x/a"], "inner": None, "own": True}]
    assert document["allowed"] == {"x/a": {"default": True, "cells": {}}}
