"""The truth table behind ``policyctl matrix``, computed over groups and never over pod pairs.

A cell is the answer for one ordered pair: a boolean for one port, or the allowed ports in
words (``TCP 80-81``, ``all``, ``none``) when no port was given. Rows and columns are pods, or
workloads with ``--workloads`` (pods of one workload merged; a cell whose member pairs disagree
is ``mixed``).

The table is built from the verifier's class relation (:class:`~verifier.classes.PodGroups`):

1. units (pods or workloads) with the same multiset of pod groups are one *block*: they are
   interchangeable by construction, so one block stands for all of them;
2. block cells come from group cells (one lookup per pair of groups a block pair covers,
   only where a group row differs from its default);
3. blocks are merged when they are interchangeable in the table (:func:`merge_blocks`): the
   same answer to and from every other unit, the same answer to each other in both
   directions and the same answer to themselves. Swapping two such units leaves the table
   unchanged, so this is an equivalence and the grouped table says exactly what the full one
   says; the answer ``inner`` between two members and ``own`` of a member to itself are kept.

Every row, of groups, blocks and the result, is sparse (:class:`~verifier.sparserows.SparseRow`):
its most common answer and the cells that differ. Under default-deny policies most pairs
answer "nothing", so the cost grows with the groups and the allowed pairs between them, not
with groups squared, and never with units squared; the per-unit table is only ever produced
row by row (:meth:`TruthTable.rows`, :meth:`TruthTable.sparse_rows`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from policyctl.policy.endpoints import workload_label
from policyctl.policy.model import Family, Pod, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.verifier.classes import PodGroups
from policyctl.verifier.portsets import PortSet
from policyctl.verifier.relation import connectivity
from policyctl.verifier.sparserows import SparseRow

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


class GroupRow(Mapping[str, Cell]):
    """One group's answers to every group by name, stored sparse: :attr:`default` and
    :attr:`exceptions` (the groups answered otherwise)."""

    __slots__ = ("_row", "_names", "_at")

    def __init__(self, row: SparseRow[Cell], names: Sequence[str], at: Mapping[str, int]) -> None:
        self._row, self._names, self._at = row, names, at

    @property
    def default(self) -> Cell:
        return self._row.default

    @property
    def exceptions(self) -> dict[str, Cell]:
        return {self._names[i]: cell for i, cell in self._row.exceptions.items()}

    def differing(self) -> list[tuple[str, Cell]]:
        """The groups answered otherwise than :attr:`default`, in table order."""
        return [(self._names[i], cell) for i, cell in sorted(self._row.exceptions.items())]

    def __getitem__(self, name: str) -> Cell:
        return self._row[self._at[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@dataclass(frozen=True, slots=True)
class TruthTable:
    """Groups and the answers between them: ``cells[g][h]`` for a member of ``g`` and a
    different member of ``h`` (so ``cells[g][g]`` is ``inner``, or ``own`` for one member)."""

    units: tuple[Unit, ...]
    groups: tuple[Group, ...]
    cells: Mapping[str, GroupRow]
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
        for unit, default, exceptions in self.sparse_rows():
            cells = [default] * len(self.units)
            for column, cell in exceptions.items():
                cells[column] = cell
            yield unit, cells

    def sparse_rows(self) -> Iterator[tuple[Unit, Cell, dict[int, Cell]]]:
        """The per-unit table one source row at a time (in ``units`` order), as the row's
        default and the cells (by position in ``units``) that differ: the members of the
        groups its group row lists, and the unit itself (``own``). Work per row is the size of
        those groups."""
        at = {u.name: i for i, u in enumerate(self.units)}
        positions = {g.name: [at[u.name] for u in g.members] for g in self.groups}
        for position, unit in enumerate(self.units):
            group = self.by_name[self.group_of[unit.name]]
            row = self.cells[group.name]
            cells = {i: cell for name, cell in row.exceptions.items() for i in positions[name]}
            assert group.own is not None
            if group.own != row.default:
                cells[position] = group.own
            else:
                cells.pop(position, None)
            yield unit, row.default, cells


def units_of(cluster: Cluster, *, workloads: bool) -> tuple[Unit, ...]:
    """Pods, or workloads, in name order (so rows streamed in unit order are sorted)."""
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


def _sparse_cells(rows: Sequence[SparseRow[PortSet]], value: Callable[[PortSet], Cell]) -> list[SparseRow[Cell]]:
    """Port sets to cells, each distinct object converted once: the relation shares port set
    objects between cells, so the work is one lookup per stored (non-default) cell."""
    converted: dict[int, Cell] = {}

    def get(ports: PortSet) -> Cell:
        found = converted.get(id(ports))
        if found is None:
            found = converted[id(ports)] = value(ports)
        return found

    return [SparseRow.of(row.width, get(row.default), ((i, get(p)) for i, p in row.exceptions.items())) for row in rows]


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
    blocks: dict[tuple[tuple[int, ...], tuple[int, ...], bool], list[Unit]] = {}
    for unit in units:
        counts: dict[int, int] = {}
        for pod in unit.pods:
            index = groups.group_of[pod.key]
            counts[index] = counts.get(index, 0) + 1
        signature = (tuple(sorted(counts)), tuple(sorted(g for g, n in counts.items() if n > 1)), len(unit.pods) == 1)
        blocks.setdefault(signature, []).append(unit)
    signatures = list(blocks)
    between = _sparse_cells([groups.sparse_row(g) for g in range(len(groups))], value)
    table = _block_rows([s[0] for s in signatures], between)
    own: list[Cell] = []
    for members, multi, single in signatures:
        if single:
            own.append(value(groups.own(members[0])))
        else:
            own.append(_combine({between[g][h] for g in members for h in members if g != h or g in multi}))
    sizes = [len(blocks[s]) for s in signatures]
    inner = [table[i][i] for i in range(len(signatures))]
    merged = merge_blocks(sizes, own, inner, table)
    return _table(units, [blocks[s] for s in signatures], merged, own, inner, table)


def _block_rows(members: Sequence[Sequence[int]], between: Sequence[SparseRow[Cell]]) -> list[SparseRow[Cell]]:
    """Cells between blocks (a block: the pod groups its units' pods fall in), from the group
    rows: a block pair is visited only where some group row of the source has an exception
    in a group of the destination; elsewhere it is the combined defaults."""
    of_group: dict[int, list[int]] = {}
    for block, groups in enumerate(members):
        for g in groups:
            of_group.setdefault(g, []).append(block)
    rows = []
    for mine in members:
        default = _combine({between[g].default for g in mine})
        touched = {b for g in mine for h in between[g].exceptions for b in of_group.get(h, ())}
        cells = ((b, _combine({between[g][h] for g in mine for h in members[b]})) for b in sorted(touched))
        rows.append(SparseRow.of(len(members), default, cells))
    return rows


def merge_blocks(
    sizes: Sequence[int], own: Sequence[Cell], inner: Sequence[Cell], table: Sequence[SparseRow[Cell]]
) -> list[list[int]]:
    """Blocks (``sizes[b]`` interchangeable units each; ``inner[b]`` between two of them,
    ``own[b]`` of one to itself, ``table[b][c]`` between units of two blocks) merged into the
    classes of interchangeable units, each class in block order, classes by first block.

    Rows are read against one common value ``D`` (the most common row default), and a block
    is keyed by its own answer and the off-diagonal cells of its row and column that are not
    ``D``. Two interchangeable blocks ``b``, ``c`` either answer each other ``D``, and then
    their keys are equal, or not, and then ``c`` is among the cells of ``b``'s row. So a block
    is checked exactly against the classes of its row's cells and of its key, and
    interchangeability being an equivalence, against one member of each: the work is that of
    the cells that are not ``D``, not blocks squared."""
    count = len(sizes)
    common: Cell = Counter(row.default for row in table).most_common(1)[0][0] if count else MIXED
    rows: list[dict[int, Cell]] = []
    for row in table:
        if row.default == common:
            rows.append(dict(row.exceptions))
        else:
            rows.append({k: v for k, v in enumerate(row) if v != common})
    columns: list[dict[int, Cell]] = [{} for _ in range(count)]
    for r, cells in enumerate(rows):
        for c, cell in cells.items():
            columns[c][r] = cell

    def at(b: int, c: int) -> Cell:
        return rows[b].get(c, common)

    def off_diagonal(cells: dict[int, Cell], b: int) -> frozenset[tuple[int, Cell]]:
        found = frozenset(cells.items())
        return found - {(b, cells[b])} if b in cells else found

    def key(b: int) -> tuple[object, ...]:
        return own[b], off_diagonal(rows[b], b), off_diagonal(columns[b], b)

    def equal_elsewhere(x: dict[int, Cell], y: dict[int, Cell], b: int, c: int) -> bool:
        return all(x.get(k, common) == y.get(k, common) for k in (x.keys() | y.keys()) - {b, c})

    def swappable(c: int, b: int) -> bool:
        if own[b] != own[c] or at(b, c) != at(c, b):
            return False
        if (sizes[b] > 1 and inner[b] != at(c, b)) or (sizes[c] > 1 and inner[c] != at(b, c)):
            return False
        return equal_elsewhere(rows[b], rows[c], b, c) and equal_elsewhere(columns[b], columns[c], b, c)

    by_key: dict[tuple[object, ...], list[int]] = {}
    class_of: list[int] = []
    classes: list[list[int]] = []
    for b in range(count):
        mine = key(b)
        seen = dict.fromkeys(class_of[c] for c in sorted(rows[b].keys() | columns[b].keys()) if c < b)
        seen.update(dict.fromkeys(by_key.get(mine, ())))
        found = next((k for k in seen if swappable(classes[k][0], b)), None)
        if found is None:
            found = len(classes)
            classes.append([])
        classes[found].append(b)
        class_of.append(found)
        listed = by_key.setdefault(mine, [])
        if found not in listed:
            listed.append(found)
    return classes


def _table(
    units: Sequence[Unit],
    blocks: Sequence[Sequence[Unit]],
    merged: Sequence[Sequence[int]],
    own: Sequence[Cell],
    inner: Sequence[Cell],
    table: Sequence[SparseRow[Cell]],
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
    group_at = {members[0]: g for g, members in enumerate(merged)}
    names = tuple(g.name for g in found)
    at = {name: g for g, name in enumerate(names)}
    cells: dict[str, GroupRow] = {}
    for g, (source, s_members) in enumerate(zip(found, merged)):
        row = table[s_members[0]]
        listed = ((group_at[b], cell) for b, cell in row.exceptions.items() if b in group_at and group_at[b] != g)
        exceptions = dict(listed)
        exceptions[g] = source.inner if source.inner is not None else source.own  # type: ignore[assignment]
        cells[source.name] = GroupRow(SparseRow.of(len(found), row.default, exceptions.items()), names, at)
    group_of = {u.name: g.name for g in found for u in g.members}
    return TruthTable(tuple(units), tuple(found), cells, group_of, {g.name: g for g in found})


def group_units(units: Sequence[Unit], cells: Mapping[str, Mapping[str, Cell]]) -> tuple[Group, ...]:
    """Interchangeable units of a per-unit table grouped (one unit per block)."""
    names = [u.name for u in units]
    table = [SparseRow.dense([cells[s][d] for d in names]) for s in names]
    own = [table[i][i] for i in range(len(names))]
    merged = merge_blocks([1] * len(names), own, own, table)
    return _table(units, [[u] for u in units], merged, own, own, table).groups
