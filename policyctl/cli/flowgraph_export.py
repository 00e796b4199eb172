"""The connectivity view as data and as Graphviz DOT: nodes in namespace clusters, allowed flows
as edges labelled with their ports. Pure text out, sorted, so equal graphs give equal bytes."""

from __future__ import annotations

import json
from typing import Any

from policyctl.cli.flowgraph import FlowGraph, FlowNode

SCHEMA_VERSION = 1
LARGE = (500, 1000)
QUICK = "mclimit=0.05; nslimit=0.5; nslimit1=0.5; remincross=false;"


def node_document(node: FlowNode) -> dict[str, Any]:
    return {
        "id": node.id,
        "namespace": node.namespace,
        "label": node.label,
        "members": list(node.members),
        "pods": node.pods,
        "host_network": node.host_network,
        "inner": node.inner,
    }


def flow_document(graph: FlowGraph) -> dict[str, Any]:
    """``nodes`` (each with its namespace and members), ``edges`` (``source``/``target`` node
    ids, ``ports``, ``representative``: the pod pair ``policyctl explain`` explains)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "view": "flows",
        "family": graph.family.value,
        "port": None if graph.port is None else {"port": graph.port[0], "protocol": graph.port[1].value},
        "namespaces": list(graph.namespaces),
        "nodes": [node_document(n) for n in graph.nodes],
        "edges": [
            {
                "id": e.id,
                "source": e.source,
                "target": e.target,
                "ports": e.ports,
                "representative": list(e.representative),
            }
            for e in graph.edges
        ],
    }


def to_json(graph: FlowGraph) -> str:
    return json.dumps(flow_document(graph), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def to_dot(graph: FlowGraph) -> str:
    """Namespaces as ``cluster_`` subgraphs (Graphviz draws them as boxes), nodes labelled with
    their workloads, edges with the allowed ports. ``newrank``: with clusters and many edges
    between them dot's older ranking fails (``trouble in init_rank``). A graph of more than
    ``LARGE`` nodes or edges gets fewer crossing-reduction passes (``QUICK``): at 100 namespaces
    and 2,772 edges dot then takes seconds instead of minutes, for a few more crossings."""
    large = len(graph.nodes) > LARGE[0] or len(graph.edges) > LARGE[1]
    lines = [
        "digraph flows {",
        "  rankdir=LR; newrank=true;" + (f" {QUICK}" if large else ""),
        f"  label={_quote(f'allowed connections ({graph.asked}, {graph.family.value})')};",
        '  node [shape=box, style="rounded,filled", fillcolor="lightyellow", fontname="sans-serif"];',
        '  edge [fontname="sans-serif", fontsize=10];',
    ]
    by_namespace: dict[str, list[FlowNode]] = {}
    for node in graph.nodes:
        by_namespace.setdefault(node.namespace, []).append(node)
    for number, namespace in enumerate(graph.namespaces):
        lines.append(f"  subgraph cluster_{number} {{")
        lines.append(f'    label={_quote(namespace)}; style="rounded"; color="grey50";')
        for node in by_namespace[namespace]:
            label = node.label if node.pods == 1 else f"{node.label}\n{node.pods} pods"
            colour = "lightgrey" if node.host_network else "lightyellow"
            lines.append(f"    {node.id} [label={_quote(label)}, tooltip={_quote(', '.join(node.members))}, "
                         f"fillcolor={_quote(colour)}];")  # fmt: skip
        lines.append("  }")
    for edge in graph.edges:
        lines.append(f"  {edge.source} -> {edge.target} [label={_quote(edge.ports)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
