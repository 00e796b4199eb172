"""``policyctl graph``'s connectivity view: nodes, edges and their explanations say what
``matrix`` and ``explain`` say."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from policyctl.cli.flowexplain import asked_ports, command, explain_edges
from policyctl.cli.flowgraph import build_flow_graph
from policyctl.cli.inputs import load_cluster
from policyctl.cli.truthtable import build_truth_table
from policyctl.policy.model import Family, Protocol
from tests.cli.conftest import WEBSHOP

SHOP = str(WEBSHOP)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A generated cluster of four namespaces whose nodes group several pods."""
    from click.testing import CliRunner

    from policyctl.cli.main import main

    path = tmp_path_factory.mktemp("gen") / "tiny.yaml"
    path.write_text(CliRunner().invoke(main, ["gen", "--scale", "tiny"], catch_exceptions=False).stdout)
    return str(path)


def _flows(run, *args: str) -> dict:
    result = run("graph", "-f", *args, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("source", "target", "ports"),
    [
        pytest.param("shop/deploy/frontend", "shop/deploy/cart", "TCP 8080", id="frontend-to-cart"),
        pytest.param("shop/deploy/checkout", "shop/sts/postgres", "TCP 5432", id="checkout-to-postgres"),
        pytest.param("ingress-nginx/deploy/ingress-nginx-controller", "shop/deploy/frontend", "TCP 8080",
                     id="ingress-to-frontend-named-port"),
        pytest.param("shop/deploy/cart", "kube-system/deploy/coredns", "TCP 53, UDP 53", id="dns"),
        pytest.param("kube-system/deploy/coredns", "ingress-nginx/deploy/ingress-nginx-controller", "all",
                     id="unisolated"),
        pytest.param("shop/deploy/cart", "shop/deploy/checkout", None, id="cart-not-to-checkout"),
        pytest.param("shop/deploy/payments", "shop/sts/postgres", None, id="payments-not-to-postgres"),
    ],
)  # fmt: skip
def test_webshop_edges_are_the_allowed_flows(run, source, target, ports) -> None:
    document = _flows(run, SHOP)
    node_of = {m: n["id"] for n in document["nodes"] for m in n["members"]}
    found = [e["ports"] for e in document["edges"] if (e["source"], e["target"]) == (node_of[source], node_of[target])]
    assert found == ([] if ports is None else [ports])


def test_webshop_nodes_are_its_workloads_in_their_namespaces(run) -> None:
    document = _flows(run, SHOP)
    assert {(n["namespace"], tuple(n["members"])) for n in document["nodes"]} == {
        ("ingress-nginx", ("ingress-nginx/deploy/ingress-nginx-controller",)),
        ("kube-system", ("kube-system/deploy/coredns",)),
        ("monitoring", ("monitoring/ds/node-exporter",)),
        *(("shop", (f"shop/{w}",)) for w in ("deploy/cart", "deploy/checkout", "deploy/frontend", "deploy/payments",
                                              "sts/postgres", "sts/redis")),
    }  # fmt: skip
    assert document["namespaces"] == ["ingress-nginx", "kube-system", "monitoring", "shop"]


@pytest.mark.parametrize(
    ("cluster", "args"),
    [
        pytest.param("webshop", (), id="webshop-all-ports"),
        pytest.param("webshop", ("--port", "8080/TCP"), id="webshop-8080"),
        pytest.param("tiny", (), id="generated-all-ports"),
        pytest.param("tiny", ("--port", "53/UDP"), id="generated-53-udp"),
    ],
)
def test_edges_are_exactly_the_matrix_of_workloads(run, tiny, cluster, args) -> None:
    """Every ordered pair of different workloads: an edge between their nodes with the matrix's
    cell, or the node's ``inner`` when both are members of one node; none where it says no."""
    path = SHOP if cluster == "webshop" else tiny
    document = _flows(run, path, *args)
    port = (int(args[1].split("/")[0]), Protocol(args[1].split("/")[1])) if args else None
    table = build_truth_table(load_cluster((path,), namespace="default"), port=port, family=Family.IPV4,
                              workloads=True)  # fmt: skip
    names = [u.name for u in table.units]
    nodes = {m: n for n in document["nodes"] for m in n["members"]}
    edges = {(e["source"], e["target"]): e["ports"] for e in document["edges"]}
    words = {True: "allowed", False: "denied"}
    assert len(edges) == len(document["edges"]) and len(nodes) == len(names) > 1
    for source in names:
        for target in names:
            if source == target:
                continue
            cell = table.cell(source, target)
            expected = None if cell in (False, "none") else words.get(cell, cell)
            s, t = nodes[source], nodes[target]
            found = s["inner"] if s is t else edges.get((s["id"], t["id"]))
            assert (found if found not in ("denied", "none") else None) == expected, (source, target)


def test_members_of_a_node_share_a_namespace_and_a_label(run, tiny) -> None:
    document = _flows(run, tiny)
    grouped = [n for n in document["nodes"] if len(n["members"]) > 1]
    assert grouped
    for node in document["nodes"]:
        assert {m.split("/")[0] for m in node["members"]} == {node["namespace"]}
    assert {n["label"] for n in grouped} >= {"api-1-* ×10", "web-0-* ×10"}


@pytest.mark.parametrize(
    ("ports", "port", "expected"),
    [
        pytest.param("TCP 8080", None, [(8080, Protocol.TCP)], id="one-port"),
        pytest.param("TCP 53, UDP 53", None, [(53, Protocol.TCP), (53, Protocol.UDP)], id="two-protocols"),
        pytest.param("TCP 9002-9015, SCTP 7", None, [(9002, Protocol.TCP), (7, Protocol.SCTP)], id="range-first"),
        pytest.param("all", None, [None], id="all-ports-summary"),
        pytest.param("mixed", None, [None], id="mixed-summary"),
        pytest.param("allowed", (8080, Protocol.TCP), [(8080, Protocol.TCP)], id="asked-port"),
    ],
)
def test_an_edge_is_explained_at_the_first_port_of_each_range(ports, port, expected) -> None:
    from policyctl.cli.flowgraph import FlowEdge

    assert asked_ports(FlowEdge("e0", "n0", "n1", ports, ("a/x", "b/y")), port) == expected


@pytest.mark.parametrize(
    ("source", "target"),
    [
        pytest.param("shop/deploy/frontend", "shop/deploy/cart", id="frontend-to-cart"),
        pytest.param("shop/deploy/checkout", "kube-system/deploy/coredns", id="two-protocols"),
        pytest.param("kube-system/deploy/coredns", "monitoring/ds/node-exporter", id="every-port"),
    ],
)
def test_an_edge_explanation_is_what_policyctl_explain_prints(run, monkeypatch, source, target) -> None:
    cluster = load_cluster((SHOP,), namespace="default")
    graph = build_flow_graph(cluster, family=Family.IPV4, port=None)
    node_of = {m: n.id for n in graph.nodes for m in n.members}
    edge = next(e for e in graph.edges if (e.source, e.target) == (node_of[source], node_of[target]))
    text = dict(explain_edges(cluster, graph))[edge.id]
    monkeypatch.setenv("COLUMNS", "100")
    for port in asked_ports(edge, None):
        line = command(edge, port, "IPv4")
        printed = run(*line.split()[1:], "-f", SHOP)
        assert printed.exit_code == 0, printed.stderr
        assert f"$ {line}\n{printed.stdout}" in text
    assert "ALLOWED" in text or "everything allowed" in text


def test_objects_keeps_the_label_selector_graph(run) -> None:
    result = run("graph", "-f", SHOP, "--objects", "-o", "json")
    assert result.exit_code == 0, result.stderr
    ids = {n["id"] for n in json.loads(result.stdout)["nodes"]}
    assert "policy:shop/default-deny" in ids and "pod:shop/cart" in ids


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("-o", "graphml"), "-o graphml is for the label-selector graph: add --objects", id="graphml"),
        pytest.param(("--objects", "--port", "80"), "--port and --family are for the connectivity view",
                     id="objects-port"),
        pytest.param(("-o", "json", "--no-explain"), "--no-explain is for -o html of the connectivity view",
                     id="no-explain-json"),
        pytest.param(("--objects", "-o", "html", "--no-explain"), "--no-explain is for -o html",
                     id="no-explain-objects"),
    ],
)  # fmt: skip
def test_options_of_the_other_view_are_refused(run, args, message) -> None:
    result = run("graph", "-f", SHOP, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_dot_has_a_cluster_per_namespace_and_port_labels(run) -> None:
    result = run("graph", "-f", SHOP, "-o", "dot")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("subgraph cluster_") == 4
    assert 'label="shop"' in result.stdout and '[label="TCP 5432"]' in result.stdout


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_svg_draws_namespaces_workloads_and_ports(run, tmp_path: Path) -> None:
    result = run("graph", "-f", SHOP, "-o", "svg", "--port", "8080/TCP")
    assert result.exit_code == 0, result.stderr
    svg = html.unescape(result.stdout)
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    document = _flows(run, SHOP, "--port", "8080/TCP")
    for text in (*document["namespaces"], *(n["label"] for n in document["nodes"]), "allowed"):
        assert f">{text}</text>" in svg
    assert svg.count('class="edge"') == len(document["edges"])
    checked = subprocess.run(["dot", "-Tsvg"], input=run("graph", "-f", SHOP, "-o", "dot").stdout, text=True,
                             capture_output=True, check=True)  # fmt: skip
    assert checked.stdout.count('class="cluster"') == 4


@pytest.mark.parametrize("cluster", ["webshop", "tiny"])
def test_page_layout_keeps_nodes_and_namespaces_apart(tiny, cluster) -> None:
    """No two node boxes overlap, and every namespace's nodes lie in a box no other
    namespace's nodes enter (the page draws the namespace around its nodes)."""
    from policyctl.cli.flowgraph_html import NODE_WIDTH, layout

    graph = build_flow_graph(load_cluster((SHOP if cluster == "webshop" else tiny,), namespace="default"),
                             family=Family.IPV4, port=None)  # fmt: skip
    positions = layout(graph)
    assert set(positions) == {n.id for n in graph.nodes}
    half_width, half_height = NODE_WIDTH[1] / 2, 22
    nodes = list(graph.nodes)
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            (ax, ay), (bx, by) = positions[a.id], positions[b.id]
            assert abs(ax - bx) >= 2 * half_width - 20 or abs(ay - by) >= 2 * half_height, (a.label, b.label)
    boxes = {}
    for namespace in graph.namespaces:
        points = [positions[n.id] for n in nodes if n.namespace == namespace]
        boxes[namespace] = (min(x for x, _ in points), min(y for _, y in points),
                            max(x for x, _ in points), max(y for _, y in points))  # fmt: skip
    for node in nodes:
        x, y = positions[node.id]
        for namespace, (x1, y1, x2, y2) in boxes.items():
            if namespace != node.namespace:
                assert not (x1 - half_width <= x <= x2 + half_width and y1 - half_height <= y <= y2 + half_height)


@pytest.mark.parametrize(("nodes", "edges", "quick"), [(9, 23, False), (501, 0, True), (20, 1001, True)])
def test_dot_of_a_large_graph_asks_for_fewer_crossing_passes(nodes, edges, quick) -> None:
    """At 100 namespaces dot's full crossing reduction takes minutes; a large graph asks for less."""
    from policyctl.cli.flowgraph import FlowEdge, FlowGraph, FlowNode
    from policyctl.cli.flowgraph_export import QUICK, to_dot

    made = tuple(FlowNode(f"n{i}", f"ns-{i % 7}", f"w{i}", (f"ns-{i % 7}/w{i}",), 1, False, None) for i in range(nodes))
    flows = tuple(
        FlowEdge(f"e{i}", f"n{i % nodes}", f"n{(i + 1) % nodes}", "TCP 80", ("a/b", "c/d")) for i in range(edges)
    )
    assert (QUICK in to_dot(FlowGraph(made, flows, Family.IPV4, None))) is quick
