"""Lateral movement: can one pod reach another through a chain of allowed connections?

A pod that an attacker controls may open any connection policy allows it, and so may every pod
it reaches. The hop graph has one node per class of the relation (pods policies treat alike
are interchangeable as stepping stones) and an edge where some member may connect to some other
member on a port of interest; a hostNetwork pod is its own node, since the own-node bypass
depends on where it runs. The shortest path (networkx) is then turned into concrete pods and
the ports of each hop.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from policyctl.policy.model import Family, Pod

from .portsets import ALL, PortSet
from .relation import Relation


@dataclass(frozen=True, slots=True)
class Hop:
    source: Pod
    destination: Pod
    ports: PortSet

    def __str__(self) -> str:
        return f"{self.source.key} -> {self.destination.key} on {self.ports}"


def _groups(relation: Relation, family: Family) -> dict[str, tuple[Pod, ...]]:
    classes = relation.of(family)
    groups: dict[str, tuple[Pod, ...]] = {}
    for i, members in enumerate(classes.members):
        ordinary = tuple(p for p in members if not p.host_network)
        if ordinary:
            groups[f"class:{i}"] = ordinary
        for pod in members:
            if pod.host_network:
                groups[f"pod:{pod.key}"] = (pod,)
    return groups


def hop_graph(relation: Relation, *, family: Family = Family.IPV4, ports: PortSet = ALL) -> tuple[nx.DiGraph, dict[str, tuple[Pod, ...]]]:
    """The hop graph and its nodes' member pods; an edge's ``pair`` is one concrete hop."""
    groups = _groups(relation, family)
    graph = nx.DiGraph()
    graph.add_nodes_from(sorted(groups))
    for a in sorted(groups):
        for b in sorted(groups):
            pair = _pair(relation, groups[a], groups[b], family, ports)
            if pair is not None:
                graph.add_edge(a, b, pair=pair)
    return graph, groups


def _pair(relation: Relation, sources: tuple[Pod, ...], destinations: tuple[Pod, ...], family: Family, ports: PortSet) -> Hop | None:
    for s in sources[:2]:
        for d in destinations if s.host_network else destinations[:3]:
            if s.key != d.key:
                allowed = relation.ports(s, d, family=family) & ports
                if allowed:
                    return Hop(s, d, allowed)
    return None


def lateral_path(relation: Relation, source: Pod, destination: Pod, *, family: Family = Family.IPV4, ports: PortSet = ALL) -> tuple[Hop, ...] | None:
    """The shortest chain of allowed hops from ``source`` to ``destination`` (None when there
    is none). Every hop is re-decided on the concrete pods it names."""
    direct = relation.ports(source, destination, family=family) & ports
    if direct and source.key != destination.key:
        return (Hop(source, destination, direct),)
    graph, groups = hop_graph(relation, family=family, ports=ports)
    graph.add_node("source")
    graph.add_node("target")
    for node, members in groups.items():
        hop = next((Hop(source, m, allowed) for m in members if m.key not in (source.key, destination.key) and (allowed := relation.ports(source, m, family=family) & ports)), None)
        if hop is not None:
            graph.add_edge("source", node, pair=hop)
        hop = next((Hop(m, destination, allowed) for m in members if m.key not in (source.key, destination.key) and (allowed := relation.ports(m, destination, family=family) & ports)), None)
        if hop is not None:
            graph.add_edge(node, "target", pair=hop)
    try:
        nodes = nx.shortest_path(graph, "source", "target")
    except nx.NetworkXNoPath:
        return None
    return _concrete(relation, nodes, graph, source, destination, family, ports)


def _concrete(relation: Relation, nodes: list[str], graph: nx.DiGraph, source: Pod, destination: Pod, family: Family, ports: PortSet) -> tuple[Hop, ...]:
    """Concrete pods for a path of classes: the first hop's pod, then for each next class a
    member the previous pod may reach."""
    hops = [graph.edges[nodes[0], nodes[1]]["pair"]]
    current = hops[0].destination
    for a, b in zip(nodes[1:-1], nodes[2:]):
        if b == "target":
            allowed = relation.ports(current, destination, family=family) & ports
            hops.append(Hop(current, destination, allowed) if allowed else graph.edges[a, b]["pair"])
            break
        members = [m for m in _members(graph, b, relation, family) if m.key != current.key]
        step = next((Hop(current, m, allowed) for m in members if (allowed := relation.ports(current, m, family=family) & ports)), None)
        hops.append(step or graph.edges[a, b]["pair"])
        current = hops[-1].destination
    return tuple(hops)


def _members(graph: nx.DiGraph, node: str, relation: Relation, family: Family) -> tuple[Pod, ...]:
    return _groups(relation, family).get(node, ())
