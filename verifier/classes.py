"""Pods grouped so that every member has the same ports to and from every other pod.

A :class:`~verifier.relation.FamilyRelation` already groups pods by what policies see of them
and stores one port set per (row, column) of sides. Two facts depend on which pods meet and
are not in those cells: a pod reaching its own address, and ingress from the destination's own
node, which for a pod source means a hostNetwork pod on the destination's node ("agents on a
node ... can communicate with all pods on that node"). :class:`PodGroups` refines the classes
just enough for those facts to be the same for every member:

* pods sharing a row and a column of the relation (and their ``impossible`` flag) are one
  group, which is coarser than one group per view;
* a hostNetwork pod's group is also keyed by its node, and so is the group of a pod on a node
  where some hostNetwork pod runs; elsewhere the node cannot change an answer.

So ``between(a, b)`` is the answer for *any* pod of ``a`` to any *different* pod of ``b``, and
``own(a)`` for a pod to itself. The cost is one entry per pod and, for a table, one entry per
group pair that differs from its row's default (:meth:`PodGroups.sparse_row`): the number of
groups grows with the policies' distinctions (and the nodes that run hostNetwork pods), not
with the pods.
"""

from __future__ import annotations

from dataclasses import dataclass

from policyctl.policy.model import Family, Pod

from .portsets import ALL, NONE, PortSet
from .relation import FamilyRelation, Relation
from .sparserows import SparseRow


@dataclass(frozen=True, slots=True)
class PodGroup:
    """Pods (in key order) that no connection between pods tells apart in one family.
    ``node`` is set only where it can change an answer (see the module docstring)."""

    pods: tuple[Pod, ...]
    row: int
    column: int
    impossible: bool
    host_network: bool
    node: str | None


class PodGroups:
    """The pods of ``relation`` in :class:`PodGroup` values for ``family``, ordered by their
    first pod's key."""

    def __init__(self, relation: Relation, family: Family) -> None:
        self.family = family
        self.matrix: FamilyRelation = relation.of(family)
        matrix = self.matrix
        host_nodes = {p.node for p in relation.pods if p.host_network and p.node is not None}
        grouped: dict[tuple[object, ...], list[Pod]] = {}
        for pod in relation.pods:
            index = matrix.class_of[pod.key]
            node = pod.node if pod.node in host_nodes else None
            view = matrix.views[index]
            key = (matrix.row_of[index], matrix.column_of[index], view.impossible, pod.host_network, node)
            grouped.setdefault(key, []).append(pod)
        self.groups: tuple[PodGroup, ...] = tuple(
            PodGroup(tuple(pods), row, column, impossible, host, node)  # type: ignore[arg-type]
            for (row, column, impossible, host, node), pods in grouped.items()
        )
        self.group_of: dict[str, int] = {p.key: i for i, g in enumerate(self.groups) for p in g.pods}
        self._of_column: dict[int, list[int]] = {}
        self._of_node: dict[str, list[int]] = {}
        for index, group in enumerate(self.groups):
            self._of_column.setdefault(group.column, []).append(index)
            if group.node is not None:
                self._of_node.setdefault(group.node, []).append(index)

    def __len__(self) -> int:
        return len(self.groups)

    def own(self, index: int) -> PortSet:
        """A pod of the group reaching its own address: always allowed, when it can have an
        address in the family at all."""
        return NONE if self.groups[index].impossible else ALL

    def between(self, source: int, destination: int) -> PortSet:
        """Ports a pod of ``source`` may open on a different pod of ``destination``."""
        s, d = self.groups[source], self.groups[destination]
        if s.host_network and s.node is not None and s.node == d.node:
            return NONE if s.impossible or d.impossible else ALL
        return self.matrix.cells[s.row][d.column]

    def row(self, source: int) -> list[PortSet]:
        """``between(source, d)`` for every group ``d``, in order."""
        return list(self.sparse_row(source))

    def sparse_row(self, source: int) -> SparseRow[PortSet]:
        """``between(source, d)`` for every group ``d``: the relation row's default and the
        groups of its differing columns, so the cost is that of the differences."""
        s = self.groups[source]
        cells = self.matrix.cells[s.row]
        found = {d: ports for column, ports in cells.exceptions.items() for d in self._of_column.get(column, ())}
        if s.host_network and s.node is not None:
            for d in self._of_node.get(s.node, ()):
                found[d] = NONE if s.impossible or self.groups[d].impossible else ALL
        return SparseRow.of(len(self.groups), cells.default, found.items())

    def ports(self, source: Pod, destination: Pod) -> PortSet:
        """The answer for one pod pair, from the groups (the same as ``Relation.ports``)."""
        if source.key == destination.key:
            return self.own(self.group_of[source.key])
        return self.between(self.group_of[source.key], self.group_of[destination.key])
