"""Lateral movement: can one pod reach another through a chain of allowed connections?

A pod that an attacker controls may open any connection policy allows it, and so may every pod
it reaches. Pods of one class of the relation (equal views) are interchangeable as stepping
stones, so the search visits classes, not pods: a breadth-first search from the source whose
nodes are the classes' pods on the pod network (one node per class) and each hostNetwork pod
(its own node, since the own-node bypass depends on where it runs). Edges are found lazily,
from the concrete pod that reached a node to some other member of the next class, with the
ports between two views from the relation's decider and the pod-pair bypasses on top
(:mod:`verifier.viewclasses`); the search stops at the first pod that reaches the destination.
The cost is at most one decision per pair of nodes, and usually far less.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from policyctl.policy.model import Family, Pod

from .portsets import ALL, PortSet
from .relation import Relation
from .viewclasses import ViewClasses, ports_between, view_classes


@dataclass(frozen=True, slots=True)
class Hop:
    source: Pod
    destination: Pod
    ports: PortSet

    def __str__(self) -> str:
        return f"{self.source.key} -> {self.destination.key} on {self.ports}"


def _stones(classes: ViewClasses, excluded: set[str]) -> list[tuple[Pod, ...]]:
    """Stepping-stone nodes: each class's pods on the pod network, each hostNetwork pod."""
    found: list[tuple[Pod, ...]] = []
    for members in classes.members:
        kept = [p for p in members if p.key not in excluded]
        ordinary = tuple(p for p in kept if not p.host_network)
        if ordinary:
            found.append(ordinary)
        found.extend((p,) for p in kept if p.host_network)
    return found


def _step(
    relation: Relation, classes: ViewClasses, current: Pod, members: tuple[Pod, ...], ports: PortSet
) -> Hop | None:
    """A hop from ``current`` to some member: the first two members decide for a pod on the pod
    network (only the pod itself is special), every member for a hostNetwork pod."""
    tried = members if current.host_network else members[:2]
    for member in tried:
        if member.key != current.key:
            allowed = ports_between(relation, classes, current, member) & ports
            if allowed:
                return Hop(current, member, allowed)
    return None


def lateral_path(
    relation: Relation, source: Pod, destination: Pod, *, family: Family = Family.IPV4, ports: PortSet = ALL
) -> tuple[Hop, ...] | None:
    """The shortest chain of allowed hops from ``source`` to ``destination`` (None when there
    is none), every hop decided on the concrete pods it names."""
    classes = view_classes(relation, family)
    stones = _stones(classes, {source.key, destination.key})
    reached: dict[int, Hop] = {}
    parent: dict[int, int | None] = {}
    queue: deque[tuple[int | None, Pod]] = deque([(None, source)])
    while queue:
        node, current = queue.popleft()
        if current.key != destination.key:
            allowed = ports_between(relation, classes, current, destination) & ports
            if allowed:
                hops = [Hop(current, destination, allowed)]
                while node is not None:
                    hops.append(reached[node])
                    node = parent[node]
                return tuple(reversed(hops))
        for index, members in enumerate(stones):
            if index in reached:
                continue
            hop = _step(relation, classes, current, members, ports)
            if hop is not None:
                reached[index] = hop
                parent[index] = node
                queue.append((index, hop.destination))
    return None
