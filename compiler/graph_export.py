"""Exports of the label-selector graph: JSON (node-link), Graphviz DOT, GraphML, and an HTML page
around an SVG drawing. Pure text out; drawing the SVG with Graphviz is the CLI's job.

Only scalar attributes are exported (model objects kept on nodes for the compiler are left
out); nodes and edges are sorted, so equal graphs export to equal bytes.
"""

from __future__ import annotations

import html
import json
from typing import Any

import networkx as nx

from .graph import PolicyGraph

SCHEMA_VERSION = 1
COLOURS = {
    "namespace": "lightgrey",
    "node": "grey90",
    "pod": "lightyellow",
    "identity": "khaki",
    "selector": "lightblue",
    "policy": "salmon",
    "rule": "mistyrose",
    "ipblock": "palegreen",
    "any": "white",
}


def _scalars(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(attributes.items()) if isinstance(v, (str, int, float, bool))}


def plain_graph(graph: PolicyGraph) -> nx.MultiDiGraph[str]:
    """A copy with only scalar attributes, nodes and edges in sorted order."""
    out: nx.MultiDiGraph[str] = nx.MultiDiGraph()
    for name in sorted(graph.graph.nodes):
        out.add_node(name, **_scalars(graph.graph.nodes[name]))
    for source, target, key, data in sorted(graph.graph.edges(keys=True, data=True), key=lambda e: (e[0], e[1], e[2])):
        out.add_edge(source, target, key=key, **_scalars(data))
    return out


def to_json(graph: PolicyGraph) -> str:
    g = plain_graph(graph)
    document = {
        "schema_version": SCHEMA_VERSION,
        "nodes": [{"id": n, **g.nodes[n]} for n in g.nodes],
        "edges": [{"source": s, "target": t, "key": k, **d} for s, t, k, d in g.edges(keys=True, data=True)],
    }
    return json.dumps(document, indent=2, sort_keys=True)


def to_graphml(graph: PolicyGraph) -> str:
    return "\n".join(nx.generate_graphml(plain_graph(graph))) + "\n"


def _dot_id(text: str) -> str:
    return json.dumps(text)


def to_dot(graph: PolicyGraph) -> str:
    """Graphviz DOT: policies on the left, peers and identities to the right."""
    g = plain_graph(graph)
    lines = [
        "digraph policyctl {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="sans-serif"];',
    ]
    for name in g.nodes:
        data = g.nodes[name]
        label = f"{data.get('kind', '')}\\n{data.get('label', name)}"
        shown = _dot_id(label).replace(chr(92) * 2, chr(92))
        fill = _dot_id(COLOURS.get(data.get("kind", ""), "white"))
        lines.append(f"  {_dot_id(name)} [label={shown}, fillcolor={fill}];")
    for source, target, _key, data in g.edges(keys=True, data=True):
        label = data.get("relation", "")
        if data.get("ports"):
            label += f" {data['ports']}"
        lines.append(f"  {_dot_id(source)} -> {_dot_id(target)} [label={_dot_id(label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_html(svg: str, *, title: str) -> str:
    """A self-contained page: the SVG inline, no scripts or network fetches."""
    body = svg[svg.find("<svg"):] if "<svg" in svg else svg
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n"
        "<style>body{font-family:sans-serif;margin:1em}svg{max-width:100%;height:auto}</style>\n"
        f"</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )
