"""The truth table behind ``policyctl matrix``, and the grouping that keeps it readable.

A cell is the answer for one ordered pair: a boolean for one port, or the allowed ports in
words (``TCP 80-81``, ``all``, ``none``) when no port was given. Rows and columns are pods, or
workloads with ``--workloads`` (pods of one workload merged; a cell whose member pairs disagree
is ``mixed``).

Grouping: two units go in one group when they are interchangeable in the table - the same
answer to and from every other unit, the same answer to each other in both directions, and the
same answer to themselves - so the grouped table says exactly what the full one says. Groups
are formed greedily in unit order, so the result is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from policyctl.policy.endpoints import workload_label
from policyctl.policy.model import Cluster, Family, Pod, Protocol
from policyctl.policy.portsummary import summarize_ports
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection

Cell = bool | str
MIXED = "mixed"


@dataclass(frozen=True, slots=True)
class Unit:
    """A row/column: a pod or a workload, with the pods it stands for."""

    name: str
    pods: tuple[Pod, ...]

    @property
    def host_network(self) -> bool:
        return all(p.host_network for p in self.pods)


@dataclass(frozen=True, slots=True)
class Group:
    """Interchangeable units; ``inner`` is the answer between two different members (None for a
    single member)."""

    name: str
    members: tuple[Unit, ...]
    inner: Cell | None = None


@dataclass(frozen=True, slots=True)
class TruthTable:
    units: tuple[Unit, ...]
    cells: Mapping[str, Mapping[str, Cell]]
    groups: tuple[Group, ...]

    def cell(self, source: str, destination: str) -> Cell:
        return self.cells[source][destination]

    def group_cell(self, source: Group, destination: Group) -> Cell:
        if source is destination and source.inner is not None:
            return source.inner
        return self.cells[source.members[0].name][destination.members[0].name]


def units_of(cluster: Cluster, *, workloads: bool) -> tuple[Unit, ...]:
    pods = sorted(cluster.pods, key=lambda p: p.key)
    if not workloads:
        return tuple(Unit(p.key, (p,)) for p in pods)
    by_name: dict[str, list[Pod]] = {}
    for pod in pods:
        by_name.setdefault(workload_label(pod), []).append(pod)
    return tuple(Unit(name, tuple(members)) for name, members in sorted(by_name.items()))


def build_truth_table(
    cluster: Cluster,
    *,
    port: tuple[int, Protocol] | None,
    family: Family,
    workloads: bool = False,
) -> TruthTable:
    units = units_of(cluster, workloads=workloads)
    pod_cells: dict[tuple[str, str], Cell] = {}
    for source in cluster.pods:
        for destination in cluster.pods:
            pod_cells[(source.key, destination.key)] = _answer(cluster, source, destination, port=port, family=family)
    cells: dict[str, dict[str, Cell]] = {}
    for source in units:
        row = cells.setdefault(source.name, {})
        for destination in units:
            answers = {
                pod_cells[(s.key, d.key)]
                for s in source.pods
                for d in destination.pods
                if s.key != d.key or len(source.pods) == 1
            }
            row[destination.name] = answers.pop() if len(answers) == 1 else MIXED
    return TruthTable(units, cells, group_units(units, cells))


def group_units(units: Sequence[Unit], cells: Mapping[str, Mapping[str, Cell]]) -> tuple[Group, ...]:
    """Interchangeable units grouped, greedily in order (see the module docstring)."""
    groups: list[list[Unit]] = []
    for unit in units:
        for members in groups:
            if _fits(unit, members, units, cells):
                members.append(unit)
                break
        else:
            groups.append([unit])
    result = []
    for index, members in enumerate(groups, start=1):
        if len(members) == 1:
            result.append(Group(members[0].name, (members[0],)))
        else:
            inner = cells[members[0].name][members[1].name]
            result.append(Group(f"group-{index}", tuple(members), inner))
    return tuple(result)


def _fits(unit: Unit, members: list[Unit], units: Sequence[Unit], cells: Mapping[str, Mapping[str, Cell]]) -> bool:
    first = members[0]
    a, b = unit.name, first.name
    if cells[a][a] != cells[b][b] or cells[a][b] != cells[b][a]:
        return False
    if len(members) > 1 and cells[a][b] != cells[b][members[1].name]:
        return False
    return all(
        cells[a][x.name] == cells[b][x.name] and cells[x.name][a] == cells[x.name][b]
        for x in units
        if x.name not in (a, b)
    )


def _answer(
    cluster: Cluster, source: Pod, destination: Pod, *, port: tuple[int, Protocol] | None, family: Family
) -> Cell:
    if port is not None:
        number, protocol = port
        return evaluate(cluster, Connection(source, destination, protocol, number, family=family)).allowed
    summary = summarize_ports(cluster, source, destination, family=family)
    ranges = summary.ranges()
    if all(r.allowed for r in ranges):
        return "all"
    allowed = [r for r in ranges if r.allowed]
    if not allowed:
        return "none"
    return ", ".join(f"{r.protocol.value} {r.span}" for r in allowed)
