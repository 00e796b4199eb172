"""``matrix --port http``: each destination decided on the number its own container gives the name.

A named port means a different number on different pods, so the pod groups of the relation
(:class:`~policyctl.verifier.classes.PodGroups`, pods with the same ports to and from everyone)
are refined by the number the name resolves to on each pod
(:func:`policyctl.cli.namedports.resolved_number`, the semantics' own resolution). A cell
is then whether the source group's ports to the destination group contain the destination's
number; a pod that declares no such port can receive no connection "to port http", so its
column is false and a note says how many such pods there are. The cost stays one lookup per
pair of refined groups, never per pod pair.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from policyctl.cli.namedports import NamedPort, require_declared, resolved_number
from policyctl.policy.model import Pod, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.verifier.classes import PodGroups
from policyctl.verifier.portsets import ALL, NONE, PortSet

if TYPE_CHECKING:
    from policyctl.verifier.sparserows import SparseRow


class NamedPortGroups(PodGroups):
    """``groups`` refined by the number ``port`` names on each pod (None: it names none);
    its port sets are ALL or NONE: whether the destination's own number is allowed."""

    def __init__(self, groups: PodGroups, port: NamedPort, pods_by_key: dict[str, Pod]) -> None:
        self.base = groups
        self.family = groups.family
        self.protocol = port.protocol
        refined: dict[tuple[int, int | None], int] = {}
        self.parts: list[tuple[int, int | None]] = []
        self.group_of = {}
        for key, index in groups.group_of.items():
            part = (index, resolved_number(port, pods_by_key[key]))
            if part not in refined:
                refined[part] = len(self.parts)
                self.parts.append(part)
            self.group_of[key] = refined[part]

    def __len__(self) -> int:
        return len(self.parts)

    def _decided(self, ports: PortSet, number: int | None) -> PortSet:
        return ALL if number is not None and ports.contains(self.protocol, number) else NONE

    def own(self, index: int) -> PortSet:
        group, number = self.parts[index]
        return self._decided(self.base.own(group), number)

    def between(self, source: int, destination: int) -> PortSet:
        (s, _), (d, number) = self.parts[source], self.parts[destination]
        return self._decided(self.base.between(s, d), number)

    def row(self, source: int) -> list[PortSet]:
        base = self.base.row(self.parts[source][0])
        return [self._decided(base[d], number) for d, number in self.parts]

    def sparse_row(self, source: int) -> SparseRow[PortSet]:
        """The row in the sparse form tables are built from, every cell given: a named port
        decides each destination on its own number, so there is no shared default to keep."""
        from policyctl.verifier.sparserows import SparseRow

        return SparseRow.dense(self.row(source))

    @property
    def decided(self) -> tuple[int, Protocol]:
        """A port to ask the refined sets about: each is all ports or none, so any will do."""
        return 1, self.protocol


def resolve_for_matrix(port: NamedPort, cluster: Cluster, groups: PodGroups) -> NamedPortGroups:
    """The refined groups, after checking that some pod declares the name (exit 2 with the
    closest names otherwise); a note on stderr gives the numbers and the pods without one."""
    require_declared(port, cluster)
    refined = NamedPortGroups(groups, port, {p.key: p for p in cluster.pods})
    numbers: dict[int, int] = {}
    missing = 0
    for pod in cluster.pods:
        found = resolved_number(port, pod)
        if found is not None:
            numbers[found] = numbers.get(found, 0) + 1
        else:
            missing += 1
    listed = ", ".join(f"{n}/{port.protocol.value} on {c} pod(s)" for n, c in sorted(numbers.items()))
    click.echo(f"note: port {port.name!r} is {listed}"
               + (f"; {missing} pod(s) declare no such port: their columns are false" if missing else ""),
               err=True)  # fmt: skip
    return refined
