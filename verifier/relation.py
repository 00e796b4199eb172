"""The exact allowed relation of a cluster: every pod pair, every port, every family, at once.

Pods are grouped, per family, into classes of equal :class:`~verifier.index.View` (what every
policy sees of them); the relation is one port set per ordered pair of classes, computed once
by :class:`~verifier.decisions.Decider`. Two facts depend on which pods meet rather than on
their views, and are applied per pod pair on top of the class matrix:

* a pod reaching its own address is allowed (it never leaves its network namespace), when it
  can have an address in the family at all;
* ingress from the destination's own node is allowed ("agents on a node ... can communicate
  with all pods on that node"): for a pod source that is a hostNetwork pod on that node, whose
  egress half is bypassed too, so every port is allowed.

Addresses outside the pod network (the Internet, nodes, a CIDR in an assertion) are described
by address atoms (:meth:`PolicyIndex.atoms`) cut at every ipBlock boundary and at every pod and
node address, so that "outside" atoms contain no cluster address.

Cost: one port set per distinct (source side, destination side) pair that some rule can
allow, where a side is what the applying rules and the rules that could name it see
(:class:`FamilyRelation`); pairs no rule names share their row's default and are never
visited, so a default deny keeps the work near the allowed pairs rather than sides squared.
Nothing is enumerated per port or per address, and per-pod-pair work is limited to the two
bypasses (hostNetwork pods times the pods of their node). :meth:`Relation.materialise` forces the
whole relation and counts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

from policyctl.compiler.intervals import as_address
from policyctl.policy.model import Direction, Family, IPAddress, Pod
from policyctl.policy.cluster import Cluster

from .decisions import Decider
from .index import Atom, EndKind, IndexedClusterRule, IndexedRule, PolicyIndex, View
from .portsets import ALL, NONE, PortSet
from .sparserows import SparseRow


def cluster_families(cluster: Cluster) -> tuple[Family, ...]:
    """Families any pod or node has an address in; IPv4 when none has one."""
    found = {Family.of(a) for p in cluster.pods for a in p.ips} | {
        Family.of(a) for n in cluster.nodes for a in n.addresses
    }
    return tuple(f for f in Family if f in found) or (Family.IPV4,)


@dataclass(frozen=True, slots=True)
class PairPorts:
    """The ports ``source`` may open on ``destination`` in ``family`` (a listing row)."""

    source: Pod
    destination: Pod
    family: Family
    ports: PortSet


@dataclass(frozen=True, slots=True)
class ExternalClass:
    """Outside addresses every policy treats alike: ``atoms`` in order, ``view`` for all."""

    family: Family
    view: View
    atoms: tuple[Atom, ...]

    @property
    def witness(self) -> IPAddress:
        return as_address(self.atoms[0].low, self.family)


@dataclass(frozen=True, slots=True)
class FamilyRelation:
    """Classes of one family: ``views[i]`` shared by ``members[i]``. Ports between classes are
    ``cells[row_of[i]][column_of[j]]`` (pod-pair bypasses not included): classes that agree on
    everything the egress rules they apply and the ingress rules that could name them see
    share a row, and likewise for columns, so the stored table is far smaller than
    classes x classes. Each row is a :class:`~verifier.sparserows.SparseRow`: its most common
    port set (nothing, under a default deny) and the columns that differ."""

    family: Family
    views: tuple[View, ...]
    members: tuple[tuple[Pod, ...], ...]
    class_of: dict[str, int]
    row_of: tuple[int, ...]
    column_of: tuple[int, ...]
    cells: tuple[SparseRow[PortSet], ...]

    def cell(self, source: int, destination: int) -> PortSet:
        return self.cells[self.row_of[source]][self.column_of[destination]]


class Relation:
    """The allowed relation of one cluster (see the module docstring)."""

    def __init__(self, cluster: Cluster, *, families: Sequence[Family] | None = None) -> None:
        self.cluster = cluster
        self.index = PolicyIndex(cluster)
        self.decider = Decider(self.index)
        self.families: tuple[Family, ...] = tuple(families) if families else cluster_families(cluster)
        self._families: dict[Family, FamilyRelation] = {}
        self.pods: tuple[Pod, ...] = tuple(sorted(cluster.pods, key=lambda p: p.key))

    def of(self, family: Family) -> FamilyRelation:
        """The class matrix of ``family``, computed on first use."""
        found = self._families.get(family)
        if found is None:
            found = self._build(family)
            self._families[family] = found
        return found

    def _build(self, family: Family) -> FamilyRelation:
        grouped: dict[View, list[Pod]] = {}
        for pod in self.pods:
            grouped.setdefault(self.index.view_of_pod(pod, family), []).append(pod)
        views = tuple(grouped)
        members = tuple(tuple(grouped[v]) for v in views)
        class_of = {p.key: i for i, group in enumerate(members) for p in group}
        rows: dict[tuple[object, ...], int] = {}
        columns: dict[tuple[object, ...], int] = {}
        row_of = tuple(rows.setdefault(self._row_key(v), len(rows)) for v in views)
        column_of = tuple(columns.setdefault(self._column_key(v), len(columns)) for v in views)
        row_view = {r: views[i] for i, r in reversed(list(enumerate(row_of)))}
        column_view = {c: views[i] for i, c in reversed(list(enumerate(column_of)))}
        cells = self._cells([row_view[r] for r in range(len(rows))], [column_view[c] for c in range(len(columns))])
        return FamilyRelation(family, views, members, class_of, row_of, column_of, cells)

    def _cells(self, sources: Sequence[View], destinations: Sequence[View]) -> tuple[SparseRow[PortSet], ...]:
        """``Decider.ports`` for every (row, column), as sparse rows, with each half computed
        once per pair of what it depends on: the egress half per (egress side of the source,
        the destination as egress rules see it), the ingress half per (column, the source as
        ingress rules see it), only where the egress half allows something.

        A half reads the far end only through what the applying rules name
        (:meth:`Decider.seen`), so every far end that shares no selector, ipBlock or nodes
        peer with those rules gets the half of a *blank* end of the same kind, address
        presence and named ports. Those are decided once per blank; when a blank's half is
        empty, as under a default deny, a row visits only the columns its rules name."""
        half = self.decider.half
        far_out: dict[View, int] = {}
        out_of = [far_out.setdefault(self._far(v, Direction.EGRESS), len(far_out)) for v in destinations]
        far_in: dict[View, int] = {}
        in_of = [far_in.setdefault(self._far(v, Direction.INGRESS), len(far_in)) for v in sources]
        out_views, in_views = list(far_out), list(far_in)
        columns_of: list[list[int]] = [[] for _ in out_views]
        for c, far in enumerate(out_of):
            if not destinations[c].impossible:
                columns_of[far].append(c)
        blanks = _Blanks(out_views)
        sides: dict[tuple[object, ...], dict[int, PortSet]] = {}
        ingress: list[dict[int, PortSet]] = [{} for _ in destinations]
        meets: dict[tuple[int, int], PortSet] = {}
        same = _Interned()
        width = len(destinations)
        cells: list[SparseRow[PortSet]] = []
        for r, source in enumerate(sources):
            if source.impossible:
                cells.append(SparseRow(width, NONE, {}))
                continue
            side = self._egress_side(source)
            egress = sides.get(side)
            if egress is None:
                egress = sides[side] = {f: same(p) for f, p in self._egress_row(source, out_views, blanks).items()}
            seen = in_of[r]
            row: dict[int, PortSet] = {}
            for far, allowed_out in egress.items():
                for c in columns_of[far]:
                    allowed_in = ingress[c].get(seen)
                    if allowed_in is None:
                        allowed_in = ingress[c][seen] = same(half(Direction.INGRESS, destinations[c], in_views[seen]))
                    key = (id(allowed_out), id(allowed_in))
                    met = meets.get(key)
                    if met is None:
                        met = meets[key] = allowed_out & allowed_in
                    if met:
                        row[c] = met
            if 2 * len(row) > width:
                cells.append(SparseRow.dense([row.get(c, NONE) for c in range(width)]))
            else:
                cells.append(SparseRow(width, NONE, row))
        return tuple(cells)

    def _egress_row(self, source: View, out_views: Sequence[View], blanks: _Blanks) -> dict[int, PortSet]:
        """The non-empty egress halves of ``source`` by far end: the far ends its rules name,
        and every far end of a blank whose half is not empty."""
        half = self.decider.half
        if source.kind is not EndKind.POD:
            return {f: ALL for f in range(len(out_views))}
        named = self.decider.mentioned(Direction.EGRESS, source.selectors)
        touched = blanks.touched(named.selectors, named.blocks, named.nodes)
        found: dict[int, PortSet] = {}
        for far in touched:
            allowed = half(Direction.EGRESS, source, out_views[far])
            if allowed:
                found[far] = allowed
        for blank, members in blanks.members.items():
            allowed = half(Direction.EGRESS, source, blank)
            if allowed:
                found.update((f, allowed) for f in members if f not in touched)
        return {f: found[f] for f in sorted(found)}

    def _egress_side(self, view: View) -> tuple[object, ...]:
        """What the egress half depends on from the source: the rules that apply to it."""
        if view.kind is not EndKind.POD:
            return (view.kind,)
        tiers = self.index.tiered(view.selectors, Direction.EGRESS) if self.index.cluster_rules else None
        return (view.kind, self.index.applying(view.selectors, Direction.EGRESS), tiers)

    @cached_property
    def _far_ids(self) -> dict[Direction, tuple[frozenset[int], frozenset[int], frozenset[int]]]:
        """Per direction, the selector, ipBlock and nodes-peer ids some rule of that direction
        names, NetworkPolicy or cluster-scoped."""
        found = {}
        for direction in (Direction.INGRESS, Direction.EGRESS):
            rules = [r for r in self.index.rules if r.direction is direction]
            tiered = [r for r in self.index.cluster_rules if r.direction is direction]
            both: list[IndexedRule | IndexedClusterRule] = [*rules, *tiered]
            found[direction] = (
                frozenset(s for r in both for s in r.selectors),
                frozenset(b for r in both for b in r.blocks),
                frozenset(n for r in tiered for n in r.nodes),
            )
        return found

    def _far(self, view: View, direction: Direction) -> View:
        """``view`` as the far end of a half of ``direction``: only what its rules' peers can
        name, and the named ports when it is the destination (egress). Halves read nothing
        else of the far end, so equal projections get equal halves."""
        selectors, blocks, nodes = self._far_ids[direction]
        return View(
            view.kind,
            view.selectors & selectors if view.kind is EndKind.POD else frozenset(),
            None if view.blocks is None else view.blocks & blocks,
            view.named if direction is Direction.EGRESS else (),
            False,
            view.nodes & nodes,
        )

    @cached_property
    def _peer_ids(self) -> dict[Direction, tuple[frozenset[int], frozenset[int]]]:
        """Per direction, the selector and ipBlock ids some rule of that direction names."""
        found = {}
        for direction in (Direction.INGRESS, Direction.EGRESS):
            rules = [r for r in self.index.rules if r.direction is direction]
            found[direction] = (
                frozenset(s for r in rules for s in r.selectors),
                frozenset(b for r in rules for b in r.blocks),
            )
        return found

    def _seen(self, view: View, direction: Direction) -> tuple[frozenset[int], frozenset[int]]:
        """What rules of ``direction`` can see of ``view`` as their peer."""
        selectors, blocks = self._peer_ids[direction]
        chosen = view.selectors & selectors if view.kind is EndKind.POD else frozenset()
        return chosen, (view.blocks or frozenset()) & blocks

    def _row_key(self, view: View) -> tuple[object, ...]:
        """Everything the answer depends on from the source's side: the egress rules that
        apply to it and what ingress rules can see of it."""
        applying = self.index.applying(view.selectors, Direction.EGRESS) if view.kind is EndKind.POD else None
        return (view.kind, view.impossible, applying, self._seen(view, Direction.INGRESS),
                self.index.tier_side(view, Direction.EGRESS))

    def _column_key(self, view: View) -> tuple[object, ...]:
        """The destination's side: its ingress rules, its named ports and what egress rules
        can see of it."""
        applying = self.index.applying(view.selectors, Direction.INGRESS) if view.kind is EndKind.POD else None
        return (view.kind, view.impossible, applying, view.named, self._seen(view, Direction.EGRESS),
                self.index.tier_side(view, Direction.INGRESS))

    # pods ---------------------------------------------------------------------------------

    def view(self, pod: Pod, family: Family) -> View:
        relation = self.of(family)
        return relation.views[relation.class_of[pod.key]]

    def bypass(self, source: Pod, destination: Pod, family: Family) -> PortSet | None:
        """The answer when one of the pod-pair bypasses applies, else None."""
        if source.key == destination.key:
            return NONE if self.view(source, family).impossible else ALL
        if source.host_network and destination.node is not None and source.node == destination.node:
            possible = not (self.view(source, family).impossible or self.view(destination, family).impossible)
            return ALL if possible else NONE
        return None

    def ports(self, source: Pod, destination: Pod, *, family: Family = Family.IPV4) -> PortSet:
        """Every (protocol, port) on which ``source`` may open a new connection to
        ``destination`` in ``family``."""
        found = self.bypass(source, destination, family)
        if found is not None:
            return found
        relation = self.of(family)
        return relation.cell(relation.class_of[source.key], relation.class_of[destination.key])

    def pairs(self, family: Family | None = None) -> Iterator[PairPorts]:
        """Every ordered pod pair with at least one allowed port, sorted by source, destination
        and family. Per pod pair: meant for listings, not for large clusters (use
        :meth:`materialise` or :meth:`of` there)."""
        families = (family,) if family else self.families
        for source in self.pods:
            for destination in self.pods:
                for f in families:
                    found = self.ports(source, destination, family=f)
                    if found:
                        yield PairPorts(source, destination, f, found)

    def _bypass_pairs(self) -> Iterator[tuple[Pod, Pod]]:
        by_node: dict[str, list[Pod]] = {}
        for pod in self.pods:
            if pod.node is not None:
                by_node.setdefault(pod.node, []).append(pod)
        for pod in self.pods:
            yield pod, pod
            if pod.host_network and pod.node is not None:
                for other in by_node.get(pod.node, ()):
                    if other.key != pod.key:
                        yield pod, other

    def count(self, family: Family) -> int:
        """How many ordered pod pairs (a pod with itself included) may connect on some port in
        ``family``: class sizes times the class matrix, corrected for the bypasses."""
        relation = self.of(family)
        row_sizes = [0] * len(relation.cells)
        column_sizes = [0] * (len(relation.cells[0]) if relation.cells else 0)
        for i, group in enumerate(relation.members):
            row_sizes[relation.row_of[i]] += len(group)
            column_sizes[relation.column_of[i]] += len(group)
        total = 0
        every = sum(column_sizes)
        for r, row in enumerate(relation.cells):
            listed = sum(column_sizes[c] for c, cell in row.exceptions.items() if cell)
            rest = every - sum(column_sizes[c] for c in row.exceptions) if row.default else 0
            total += row_sizes[r] * (listed + rest)
        for source, destination in self._bypass_pairs():
            counted = bool(relation.cell(relation.class_of[source.key], relation.class_of[destination.key]))
            actual = bool(self.bypass(source, destination, family))
            total += int(actual) - int(counted)
        return total

    def materialise(self) -> int:
        """Compute the whole relation for every family; the number of allowed (ordered pod
        pair, family) combinations."""
        return sum(self.count(f) for f in self.families)

    # outside addresses --------------------------------------------------------------------

    @cached_property
    def cluster_addresses(self) -> frozenset[IPAddress]:
        return frozenset(a for p in self.cluster.pods for a in p.ips) | frozenset(
            a for n in self.cluster.nodes for a in n.addresses
        )

    def external(self, family: Family) -> tuple[ExternalClass, ...]:
        """Addresses of ``family`` outside the cluster (no pod or node has them), grouped by
        what policies see of them."""
        grouped: dict[View, list[Atom]] = {}
        points = sorted(a for a in self.cluster_addresses if Family.of(a) is family)
        for atom in self.index.atoms(family, points=points):
            if atom.low == atom.high and as_address(atom.low, family) in self.cluster_addresses:
                continue
            grouped.setdefault(self.index.view_of_atom(atom), []).append(atom)
        return tuple(ExternalClass(family, v, tuple(atoms)) for v, atoms in grouped.items())

    def to_address(self, source: Pod, address: IPAddress) -> PortSet:
        """Ports ``source`` may open on an address that no pod has (an external address or a
        node's): egress of the source; the far end has no policies."""
        family = Family.of(address)
        return self.decider.ports(self.index.view_of_pod(source, family), self.index.view_of_address(address))

    def from_address(self, address: IPAddress, destination: Pod) -> PortSet:
        """Ports an address that no pod has may open on ``destination``: its ingress, with the
        own-node bypass when the address is one of the destination's node's."""
        family = Family.of(address)
        view = self.index.view_of_pod(destination, family)
        node = self.cluster.node_by_name.get(destination.node) if destination.node else None
        if node is not None and address in node.addresses:
            return NONE if view.impossible else ALL
        return self.decider.ports(self.index.view_of_address(address), view)

    def is_node_address(self, address: IPAddress) -> bool:
        return any(address in n.addresses for n in self.cluster.nodes)


class _Interned:
    """Equal port sets as one object: halves are memoised per what they depend on, so equal
    answers arrive as many objects, and the meet of two halves is memoised by identity."""

    def __init__(self) -> None:
        self._by_id: dict[int, PortSet] = {}
        self._by_value: dict[PortSet, PortSet] = {}
        self._kept: list[PortSet] = []

    def __call__(self, ports: PortSet) -> PortSet:
        found = self._by_id.get(id(ports))
        if found is None:
            found = self._by_id[id(ports)] = self._by_value.setdefault(ports, ports)
            self._kept.append(ports)
        return found


class _Blanks:
    """Far ends of one direction by the ids they carry, and each far end's blank: the same
    end with every selector, ipBlock and nodes-peer id dropped (what a half whose rules
    name none of them sees)."""

    def __init__(self, views: Sequence[View]) -> None:
        self.by_selector: dict[int, list[int]] = {}
        self.by_block: dict[int, list[int]] = {}
        self.by_node: dict[int, list[int]] = {}
        self.members: dict[View, list[int]] = {}
        for position, view in enumerate(views):
            for s in view.selectors:
                self.by_selector.setdefault(s, []).append(position)
            for b in view.blocks or ():
                self.by_block.setdefault(b, []).append(position)
            for n in view.nodes:
                self.by_node.setdefault(n, []).append(position)
            blank = View(view.kind, frozenset(), None if view.blocks is None else frozenset(), view.named)
            self.members.setdefault(blank, []).append(position)

    def touched(self, selectors: Iterable[int], blocks: Iterable[int], nodes: Iterable[int]) -> set[int]:
        """Far ends carrying at least one of these ids."""
        found: set[int] = set()
        for ids, index in ((selectors, self.by_selector), (blocks, self.by_block), (nodes, self.by_node)):
            for key in ids:
                found.update(index.get(key, ()))
        return found


def connectivity(cluster: Cluster, *, families: Sequence[Family] | None = None) -> Relation:
    """The allowed relation of ``cluster``; class matrices are built per family on first use
    (``Relation.materialise()`` builds them all)."""
    return Relation(cluster, families=families)

