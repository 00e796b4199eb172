"""The explanation behind each edge of the connectivity view, as ``policyctl explain`` prints it.

An edge's explanation is the one of its representative pod pair, computed and rendered by the
same code as ``policyctl explain`` (:func:`~verifier.explanations.compute_findings`,
:func:`~cli.render_explain.render_explain_table`): every member pair of the two nodes has the
same answer (the nodes are classes of the table), so one pair stands for the edge. An edge
says which ports are allowed; its explanation is asked for the first port of each allowed
range (``--port``), which names the policies and rules that allow it. An edge whose every port
is allowed, or whose ports are ``mixed`` between member pairs, is explained over every port.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from rich.console import Console

from policyctl.verifier.explanations import Query, compute_findings
from policyctl.cli.flowgraph import FlowEdge, FlowGraph
from policyctl.cli.render_explain import render_explain_table
from policyctl.policy.endpoints import ResolvedEndpoint
from policyctl.policy.model import Protocol
from policyctl.policy.cluster import Cluster

WIDTH = 100
MAX_RANGES = 3


def asked_ports(edge: FlowEdge, port: tuple[int, Protocol] | None) -> list[tuple[int, Protocol] | None]:
    """The ``--port`` values an edge is explained with (None: every port)."""
    if port is not None:
        return [port]
    if edge.ports in ("all", "mixed"):
        return [None]
    found: list[tuple[int, Protocol] | None] = []
    for part in edge.ports.split(", "):
        protocol, _, numbers = part.partition(" ")
        found.append((int(numbers.split("-")[0]), Protocol(protocol)))
    return found


def command(edge: FlowEdge, asked: tuple[int, Protocol] | None, family: str) -> str:
    """The ``policyctl explain`` command that prints the same text."""
    port = "" if asked is None else f" --port {asked[0]}/{asked[1].value}"
    return f"policyctl explain {edge.representative[0]} {edge.representative[1]}{port} --family {family}"


def explain_edges(cluster: Cluster, graph: FlowGraph) -> Iterator[tuple[str, str]]:
    """(edge id, text) for every edge, in edge order."""
    pods = {p.key: p for p in cluster.pods}
    for edge in graph.edges:
        source, destination = (pods[k] for k in edge.representative)
        asked = asked_ports(edge, graph.port)
        parts = []
        for port in asked[:MAX_RANGES]:
            query = Query(ResolvedEndpoint(source.key, source), ResolvedEndpoint(destination.key, destination),
                          graph.family, port)  # fmt: skip
            buffer = io.StringIO()
            out = Console(file=buffer, width=WIDTH, no_color=True, highlight=False, soft_wrap=False)
            render_explain_table(query, compute_findings(cluster, query), out)
            parts.append(f"$ {command(edge, port, graph.family.value)}\n{buffer.getvalue()}")
        for port in asked[MAX_RANGES:]:
            parts.append(f"$ {command(edge, port, graph.family.value)}\n(not precomputed: run the command)\n")
        yield edge.id, "\n".join(parts)
