"""The connectivity view of ``policyctl graph``: who may open connections to whom.

Nodes are workloads, or groups of them: the units of the matrix's grouped table
(:func:`~cli.truthtable.build_truth_table` with workloads, itself built from the verifier's class
relation) split by namespace, so a node never spans two namespaces and namespaces can be drawn
as clusters. An edge is an allowed cell of that table between two nodes, labelled with the
allowed ports (or the one port asked). Nothing here visits pod pairs: edges are found group
pair by group pair, and a node pair is visited only when its groups' cell allows something.

Two members of one node are interchangeable for every connection (the table's grouping), so
one node stands for all of them; what members may open to each other is the node's ``inner``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from policyctl.cli.matrix_flows import allowed
from policyctl.cli.truthtable import Cell, TruthTable, Unit, build_truth_table
from policyctl.policy.model import Family, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.verifier.classes import PodGroups
from policyctl.verifier.relation import connectivity


@dataclass(frozen=True, slots=True)
class FlowNode:
    """Interchangeable workloads of one namespace. ``inner`` is what two different members may
    open to each other (None for one member: a workload to itself is always allowed)."""

    id: str
    namespace: str
    label: str
    members: tuple[str, ...]
    pods: int
    host_network: bool
    inner: str | None


@dataclass(frozen=True, slots=True)
class FlowEdge:
    """An allowed flow between two nodes: ``ports`` in the matrix's words, ``representative``
    the pod pair whose explanation stands for the edge."""

    id: str
    source: str
    target: str
    ports: str
    representative: tuple[str, str]


@dataclass(frozen=True, slots=True)
class FlowGraph:
    nodes: tuple[FlowNode, ...]
    edges: tuple[FlowEdge, ...]
    family: Family
    port: tuple[int, Protocol] | None

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(sorted({n.namespace for n in self.nodes}))

    @property
    def asked(self) -> str:
        return "any port" if self.port is None else f"{self.port[0]}/{self.port[1].value}"


def build_flow_graph(cluster: Cluster, *, family: Family, port: tuple[int, Protocol] | None) -> FlowGraph:
    """Nodes and allowed edges of ``cluster`` from its class relation (see the module docstring)."""
    groups = PodGroups(connectivity(cluster, families=(family,)), family)
    table = build_truth_table(cluster, port=port, family=family, workloads=True, groups=groups)
    return flow_graph(table, family=family, port=port)


def flow_graph(table: TruthTable, *, family: Family, port: tuple[int, Protocol] | None) -> FlowGraph:
    """The graph of a grouped workload table: one node per (group, namespace)."""
    split: dict[str, dict[str, list[Unit]]] = {}
    for group in table.groups:
        by_namespace = split.setdefault(group.name, {})
        for unit in group.members:
            by_namespace.setdefault(unit.pods[0].namespace, []).append(unit)
    nodes: list[FlowNode] = []
    of_group: dict[str, list[tuple[FlowNode, Unit]]] = {}
    for namespace, group_name, units in sorted(
        (ns, g, units) for g, by_ns in split.items() for ns, units in by_ns.items()
    ):
        inner = table.group_cell(table.by_name[group_name], table.by_name[group_name]) if len(units) > 1 else None
        node = FlowNode(
            id=f"n{len(nodes)}",
            namespace=namespace,
            label=_label(namespace, [u.name for u in units]),
            members=tuple(u.name for u in units),
            pods=sum(len(u.pods) for u in units),
            host_network=all(u.host_network for u in units),
            inner=None if inner is None else _words(inner),
        )
        nodes.append(node)
        of_group.setdefault(group_name, []).append((node, units[0]))
    edges: list[FlowEdge] = []
    for source_group in table.groups:
        for destination_group in table.groups:
            value = table.group_cell(source_group, destination_group)
            if not allowed(value):
                continue
            for source, source_unit in of_group[source_group.name]:
                for target, target_unit in of_group[destination_group.name]:
                    if source is target:
                        continue
                    pair = (source_unit.pods[0].key, target_unit.pods[0].key)
                    edges.append(FlowEdge(f"e{len(edges)}", source.id, target.id, _words(value), pair))
    return FlowGraph(tuple(nodes), tuple(edges), family, port)


def _words(value: Cell) -> str:
    if value is True:
        return "allowed"
    if value is False:
        return "denied"
    return value


def _label(namespace: str, names: list[str]) -> str:
    """A member's name without its namespace; several members by their common prefix
    (``api-1-* ×3``) or, without one, the first name and the count."""
    short = [n.removeprefix(f"{namespace}/") for n in names]
    if len(short) == 1:
        return short[0]
    prefix = os.path.commonprefix(short)
    cut = max(prefix.rfind("-"), prefix.rfind("/"), prefix.rfind("."))
    if cut > 0:
        return f"{prefix[: cut + 1]}* ×{len(short)}"
    return f"{short[0]} +{len(short) - 1}"
