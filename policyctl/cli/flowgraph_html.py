"""The connectivity view as one self-contained interactive HTML page.

The page inlines the vendored Cytoscape.js (``vendor/cytoscape``, MIT, with its licence), the
view's script and style (``flowview/``), the graph as JSON and the explanation of every edge,
gzip-compressed (the explanations are most of the bytes and compress well; the page inflates
them with the browser's ``DecompressionStream``, a chunk of edges at a time, on a click). Nothing is
fetched, so the file can be mailed or attached to a CI run.

Positions are computed here, not by a layout in the browser: namespaces are boxes packed in
rows, their workloads on a grid inside, so a hundred namespaces open at once and a namespace
is always in one place.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import math
from collections.abc import Iterable
from importlib import resources
from typing import Any

from policyctl.cli.flowgraph import FlowGraph, FlowNode
from policyctl.cli.flowgraph_export import node_document

SLOT_WIDTH = 250
SLOT_HEIGHT = 90
NAMESPACE_GAP = 120
NODE_WIDTH = (110, 230)
CHUNK = 100
ASPECT = 1.8


def layout(graph: FlowGraph) -> dict[str, tuple[int, int]]:
    """Node centres: each namespace a near-square grid of slots; namespaces packed in rows
    so that the drawing is about ``ASPECT`` times as wide as tall, like the page's canvas. Odd
    columns are shifted down and odd rows right, so an edge between two nodes of a row or
    column does not run under the node between them."""
    by_namespace: dict[str, list[FlowNode]] = {}
    for node in graph.nodes:
        by_namespace.setdefault(node.namespace, []).append(node)
    sizes = {}
    for namespace, members in by_namespace.items():
        columns = math.ceil(math.sqrt(len(members)))
        rows = math.ceil(len(members) / columns)
        sizes[namespace] = (columns, rows)
    boxes = {
        ns: (columns * SLOT_WIDTH + SLOT_WIDTH // 3, rows * SLOT_HEIGHT + SLOT_HEIGHT // 2)
        for ns, (columns, rows) in sizes.items()
    }
    order = list(graph.namespaces)
    widest = max((w for w, _ in boxes.values()), default=0)
    row_width = min(
        ((widest + NAMESPACE_GAP) * k for k in range(1, len(order) + 1)),
        key=lambda limit: abs(math.log(_aspect(_shelves(order, boxes, limit), boxes) / ASPECT)),
        default=0,
    )
    positions: dict[str, tuple[int, int]] = {}
    for namespace, (x, y) in _shelves(order, boxes, row_width).items():
        columns, _ = sizes[namespace]
        for index, node in enumerate(by_namespace[namespace]):
            row, column = divmod(index, columns)
            shift_x, shift_y = (row % 2) * SLOT_WIDTH // 3, (column % 2) * SLOT_HEIGHT * 4 // 9
            positions[node.id] = (x + column * SLOT_WIDTH + SLOT_WIDTH // 2 + shift_x,
                                  y + row * SLOT_HEIGHT + SLOT_HEIGHT // 2 + shift_y)  # fmt: skip
    return positions


def _shelves(order: list[str], boxes: dict[str, tuple[int, int]], limit: int) -> dict[str, tuple[int, int]]:
    """Top-left corners of ``boxes`` placed left to right in rows no wider than ``limit``."""
    corners: dict[str, tuple[int, int]] = {}
    x = y = row_height = 0
    for name in order:
        width, height = boxes[name]
        if x > 0 and x + width > limit:
            x, y, row_height = 0, y + row_height + NAMESPACE_GAP, 0
        corners[name] = (x, y)
        x += width + NAMESPACE_GAP
        row_height = max(row_height, height)
    return corners


def _aspect(corners: dict[str, tuple[int, int]], boxes: dict[str, tuple[int, int]]) -> float:
    """Width over height of the drawing."""
    width = max(x + boxes[name][0] for name, (x, _) in corners.items())
    height = max(y + boxes[name][1] for name, (_, y) in corners.items())
    return width / height


def _width(label: str) -> int:
    """About the width the label takes at the page's 15 px font, within ``NODE_WIDTH``."""
    return max(NODE_WIDTH[0], min(NODE_WIDTH[1], round(len(label) * 8.8) + 24))


def _asset(*path: str) -> str:
    return resources.files("policyctl.cli").joinpath(*path).read_text(encoding="utf-8")


def _script_json(document: Any) -> str:
    """JSON safe inside a ``<script>`` element: ``</`` can never close it."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).replace("</", "<\\/")


def pack_explanations(graph: FlowGraph, texts: Iterable[tuple[str, str]]) -> list[str]:
    """``{edge id: text}`` in chunks of ``CHUNK`` edges (edge ``i`` in chunk ``i // CHUNK``), each
    base64 of gzip (mtime 0, so equal input gives equal bytes): a click inflates one chunk."""
    found = dict(texts)
    chunks = []
    for start in range(0, len(graph.edges), CHUNK):
        part = {e.id: found[e.id] for e in graph.edges[start : start + CHUNK] if e.id in found}
        raw = json.dumps(part, ensure_ascii=False, sort_keys=True).encode("utf-8")
        chunks.append(base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii"))
    return chunks


def page_document(graph: FlowGraph) -> dict[str, Any]:
    positions = layout(graph)
    return {
        "family": graph.family.value,
        "asked": graph.asked,
        "namespaces": list(graph.namespaces),
        "nodes": [
            {**node_document(n), "x": positions[n.id][0], "y": positions[n.id][1], "width": _width(n.label)}
            for n in graph.nodes
        ],
        "edges": [
            {"id": e.id, "source": e.source, "target": e.target, "ports": e.ports, "chunk": i // CHUNK}
            for i, e in enumerate(graph.edges)
        ],
    }


def to_page(graph: FlowGraph, explanations: Iterable[tuple[str, str]], *, title: str) -> str:
    """The whole page; ``explanations`` are ``(edge id, text)`` pairs (possibly none)."""
    packed = _script_json(pack_explanations(graph, explanations))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{_asset('flowview', 'app.css')}</style>\n</head>\n<body>\n"
        f"<header><h1>{html.escape(title)}</h1>"
        '<input id="search" type="search" placeholder="search a workload, pod or namespace" autocomplete="off">'
        '<span id="found"></span><button id="fit" type="button">fit</button>'
        '<label><input id="all-flows" type="checkbox"> all flows</label><span id="status"></span></header>\n'
        '<main><div id="cy"></div><aside><ul id="results"></ul><div id="details">'
        "<p>Click a workload to see its flows, or a flow to see why it is allowed.</p></div></aside></main>\n"
        f'<script type="application/json" id="flow-data">{_script_json(page_document(graph))}</script>\n'
        f'<script type="application/json" id="flow-explain">{packed}</script>\n'
        f"<script>\n{_asset('vendor', 'cytoscape', 'cytoscape.min.js')}\n</script>\n"
        f"<script>\n{_asset('flowview', 'app.js')}</script>\n"
        "</body>\n</html>\n"
    )
