"""The truth table behind ``policyctl matrix``, computed over groups and never over pod pairs.

A cell is the answer for one ordered pair: a boolean for one port, or the allowed ports in
words (``TCP 80-81``, ``all``, ``none``) when no port was given. Rows and columns are pods, or
workloads with ``--workloads`` (pods of one workload merged; a cell whose member pairs disagree
is ``mixed``).

The table is built from the verifier's class relation (:class:`~verifier.classes.PodGroups`):

1. units (pods or workloads) with the same multiset of pod groups are one *block*: they are
   interchangeable by construction, so one block stands for all of them;
2. block cells come from group cells (one lookup per pair of groups a block pair covers);
3. blocks are merged when they are interchangeable in the table (:func:`merge_blocks`): the
   same answer to and from every other unit, the same answer to each other in both
   directions and the same answer to themselves. Swapping two such units leaves the table
   unchanged, so this is an equivalence and the grouped table says exactly what the full one
   says; the answer ``inner`` between two members and ``own`` of a member to itself are kept.

Cost grows with the number of groups squared (and the members of each unit), not with units
squared; the per-unit table is only ever produced row by row (:meth:`TruthTable.rows`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

from policyctl.policy.endpoints import workload_label
from policyctl.policy.model import Cluster, Family, Pod, Protocol
from policyctl.verifier.classes import PodGroups
from policyctl.verifier.portsets import PortSet
from policyctl.verifier.relation import connectivity

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
    single member), ``own`` the answer of a member to itself."""

    name: str
    members: tuple[Unit, ...]
    inner: Cell | None = None
    own: Cell | None = None


@dataclass(frozen=True, slots=True)
class TruthTable:
    """Groups and the answers between them: ``cells[g][h]`` for a member of ``g`` and a
    different member of ``h`` (so ``cells[g][g]`` is ``inner``, or ``own`` for one member)."""

    units: tuple[Unit, ...]
    groups: tuple[Group, ...]
    cells: Mapping[str, Mapping[str, Cell]]
    group_of: Mapping[str, str]
    by_name: Mapping[str, Group]

    def group_cell(self, source: Group, destination: Group) -> Cell:
        return self.cells[source.name][destination.name]

    def cell(self, source: str, destination: str) -> Cell:
        """The answer for two units, expanded from the groups."""
        group = self.group_of[source]
        if source == destination:
            own = self.by_name[group].own
            assert own is not None
            return own
        return self.cells[group][self.group_of[destination]]

    def rows(self) -> Iterator[tuple[Unit, list[Cell]]]:
        """The per-unit table, one source row at a time (columns in ``units`` order)."""
        names = {g.name: i for i, g in enumerate(self.groups)}
        column_group = [names[self.group_of[u.name]] for u in self.units]
        grid = [[self.cells[g.name][h.name] for h in self.groups] for g in self.groups]
        for position, unit in enumerate(self.units):
            group = column_group[position]
            row = grid[group]
            cells = [row[g] for g in column_group]
            own = self.groups[group].own
            assert own is not None
            cells[position] = own
            yield unit, cells


def units_of(cluster: Cluster, *, workloads: bool) -> tuple[Unit, ...]:
    pods = sorted(cluster.pods, key=lambda p: p.key)
    if not workloads:
        return tuple(Unit(p.key, (p,)) for p in pods)
    by_name: dict[str, list[Pod]] = {}
    for pod in pods:
        by_name.setdefault(workload_label(pod), []).append(pod)
    return tuple(Unit(name, tuple(members)) for name, members in sorted(by_name.items()))


def cell_words(ports: PortSet) -> str:
    """The words a table without a port uses: ``all``, ``none`` or ``TCP 80, TCP 443-444``."""
    if ports.is_all:
        return "all"
    if not ports:
        return "none"
    return ", ".join(
        f"{p.value} {low}" if low == high else f"{p.value} {low}-{high}" for p, low, high in ports.ranges()
    )


def _valuer(port: tuple[int, Protocol] | None) -> Callable[[PortSet], Cell]:
    def value(ports: PortSet) -> Cell:
        return cell_words(ports) if port is None else ports.contains(port[1], port[0])

    return value


def _cells(rows: Sequence[Sequence[PortSet]], value: Callable[[PortSet], Cell]) -> list[list[Cell]]:
    """Port sets to cells, each distinct object converted once: the relation shares port set
    objects between cells, so the per-cell work is two lookups done in C."""
    objects: dict[int, PortSet] = {}
    for row in rows:
        objects.update(zip(map(id, row), row))
    get = {key: value(ports) for key, ports in objects.items()}.__getitem__
    return [list(map(get, map(id, row))) for row in rows]


def _combine(values: set[Cell]) -> Cell:
    return values.pop() if len(values) == 1 else MIXED


def build_truth_table(
    cluster: Cluster,
    *,
    port: tuple[int, Protocol] | None,
    family: Family,
    workloads: bool = False,
    groups: PodGroups | None = None,
) -> TruthTable:
    """The grouped table of ``cluster`` from its class relation (see the module docstring)."""
    groups = groups or PodGroups(connectivity(cluster, families=(family,)), family)
    value = _valuer(port)
    units = units_of(cluster, workloads=workloads)
    blocks: dict[tuple[object, ...], list[Unit]] = {}
    for unit in units:
        counts: dict[int, int] = {}
        for pod in unit.pods:
            index = groups.group_of[pod.key]
            counts[index] = counts.get(index, 0) + 1
        signature = (tuple(sorted(counts)), tuple(sorted(g for g, n in counts.items() if n > 1)), len(unit.pods) == 1)
        blocks.setdefault(signature, []).append(unit)
    signatures = list(blocks)
    between = _cells([groups.row(g) for g in range(len(groups))], value)
    table: list[list[Cell]] = []
    if all(len(s[0]) == 1 for s in signatures):  # type: ignore[arg-type]
        positions = [s[0][0] for s in signatures]  # type: ignore[index]
        if len(positions) > 1:
            pick = itemgetter(*positions)
            table = [list(pick(between[p])) for p in positions]
        else:
            table = [[between[p][p]] for p in positions]
    else:
        for source in signatures:
            mine: Sequence[int] = source[0]  # type: ignore[assignment]
            table.append(
                [_combine({between[g][h] for g in mine for h in t[0]}) for t in signatures]  # type: ignore[union-attr]
            )
    own: list[Cell] = []
    for members, multi, single in signatures:  # type: ignore[misc]
        if single:
            own.append(value(groups.own(members[0])))
        else:
            own.append(_combine({between[g][h] for g in members for h in members if g != h or g in multi}))
    sizes = [len(blocks[s]) for s in signatures]
    inner = [table[i][i] for i in range(len(signatures))]
    merged = merge_blocks(sizes, own, inner, table)
    return _table(units, [blocks[s] for s in signatures], merged, own, inner, table)


def merge_blocks(
    sizes: Sequence[int], own: Sequence[Cell], inner: Sequence[Cell], table: Sequence[Sequence[Cell]]
) -> list[list[int]]:
    """Blocks (``sizes[b]`` interchangeable units each; ``inner[b]`` between two of them,
    ``own[b]`` of one to itself, ``table[b][c]`` between units of two blocks) merged into the
    classes of interchangeable units, each class in block order, classes by first block.

    Candidates are bucketed by a necessary condition (a unit's own answer and the multisets
    of its block's row and column without the diagonal), then checked exactly against one
    member of each class in the bucket: interchangeability is transitive, so one member
    suffices."""
    count = len(sizes)
    rows = [list(row) for row in table]
    columns = [list(column) for column in zip(*table)] if count else []

    def bucket(b: int) -> tuple[object, ...]:
        row, column = Counter(rows[b]), Counter(columns[b])
        row[rows[b][b]] -= 1
        column[rows[b][b]] -= 1
        return own[b], frozenset((+row).items()), frozenset((+column).items())

    def equal_elsewhere(x: list[Cell], y: list[Cell], b: int, c: int) -> bool:
        """``x == y`` except at positions ``b`` and ``c`` (compared in C, then restored)."""
        saved = x[b], x[c], y[b], y[c]
        x[b] = x[c] = y[b] = y[c] = MIXED
        try:
            return x == y
        finally:
            x[b], x[c], y[b], y[c] = saved

    def swappable(c: int, b: int) -> bool:
        if own[b] != own[c] or table[b][c] != table[c][b]:
            return False
        if (sizes[b] > 1 and inner[b] != table[c][b]) or (sizes[c] > 1 and inner[c] != table[b][c]):
            return False
        return equal_elsewhere(rows[b], rows[c], b, c) and equal_elsewhere(columns[b], columns[c], b, c)

    buckets: dict[tuple[object, ...], list[list[int]]] = {}
    classes: list[list[int]] = []
    for b in range(count):
        candidates = buckets.setdefault(bucket(b), [])
        for members in candidates:
            if swappable(members[0], b):
                members.append(b)
                break
        else:
            candidates.append([b])
            classes.append(candidates[-1])
    return classes


def _table(
    units: Sequence[Unit],
    blocks: Sequence[Sequence[Unit]],
    merged: Sequence[Sequence[int]],
    own: Sequence[Cell],
    inner: Sequence[Cell],
    table: Sequence[Sequence[Cell]],
) -> TruthTable:
    position = {u.name: i for i, u in enumerate(units)}
    found: list[Group] = []
    for number, members in enumerate(merged, start=1):
        chosen = sorted((u for b in members for u in blocks[b]), key=lambda u: position[u.name])
        first = members[0]
        if len(chosen) == 1:
            found.append(Group(chosen[0].name, tuple(chosen), None, own[first]))
            continue
        between = table[first][members[1]] if len(members) > 1 else inner[first]
        found.append(Group(f"group-{number}", tuple(chosen), between, own[first]))
    cells: dict[str, dict[str, Cell]] = {}
    for source, s_members in zip(found, merged):
        row = table[s_members[0]]
        cells[source.name] = {
            destination.name: (
                (source.inner if source.inner is not None else source.own)  # type: ignore[misc]
                if destination is source
                else row[d_members[0]]
            )
            for destination, d_members in zip(found, merged)
        }
    group_of = {u.name: g.name for g in found for u in g.members}
    return TruthTable(tuple(units), tuple(found), cells, group_of, {g.name: g for g in found})


def group_units(units: Sequence[Unit], cells: Mapping[str, Mapping[str, Cell]]) -> tuple[Group, ...]:
    """Interchangeable units of a per-unit table grouped (one unit per block)."""
    names = [u.name for u in units]
    table = [[cells[s][d] for d in names] for s in names]
    own = [table[i][i] for i in range(len(names))]
    merged = merge_blocks([1] * len(names), own, own, table)
    return _table(units, [[u] for u in units], merged, own, own, table).groups
