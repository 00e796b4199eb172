"""Two allowed relations over the same pods, compared exactly: what one allows and the other not.

Pods are grouped by joint source side (their row in both relations, see
:class:`~verifier.relation.FamilyRelation`) and joint destination side, so each pair of a joint
row and a joint column is compared once; the pod-pair bypasses (a pod and itself, a
hostNetwork pod and a pod on its node) are compared pod by pod. Outside addresses are compared on the joint
atoms: the address space cut at the ipBlock boundaries of both clusters, without the
addresses of pods and nodes.

Pods are matched by ``namespace/name``; pods present in one cluster only are not compared (a
diff reports them apart). Invariants: differences are sorted by source, destination and family;
every difference names one concrete witness pair.

When the two clusters have the same pods, namespaces and nodes and differ only in their
NetworkPolicies (the usual diff of a policy change), :func:`policy_differences` compares only
what the changed policies can touch: a policy takes part only in the egress half of the pods it
selects and the ingress half of the pods it selects ("each NetworkPolicy selects a set of
pods"), so only cells whose source one changed egress policy selects, or whose destination one
changed ingress policy selects, can differ. Those cells are decided on the views of each
relation (:mod:`verifier.viewclasses`) without building either class matrix; the cost grows
with the classes the change selects times all classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from policyctl.compiler.intervals import Interval, as_address, as_prefix
from policyctl.policy.model import Direction, Family, IPAddress, Pod
from policyctl.policy.cluster import Cluster

from .index import EndKind
from .portsets import PortSet
from .relation import Relation, cluster_families
from .viewclasses import ViewClasses, view_classes


@dataclass(frozen=True, slots=True)
class Difference:
    """Ports ``source`` may open on ``destination`` under one relation and not the other.
    ``sources``/``destinations`` are every end of the same joint class (the witness first)."""

    source: Pod | IPAddress
    destination: Pod | IPAddress
    family: Family
    ports: PortSet
    sources: tuple[Pod | IPAddress, ...] = ()
    destinations: tuple[Pod | IPAddress, ...] = ()
    outside: str = ""
    """For an outside end: every range of addresses both policy sets treat as the witness
    (merged; the addresses of pods and nodes in them are not outside ends)."""


def _name(end: Pod | IPAddress) -> str:
    return end.key if isinstance(end, Pod) else str(end)


def _ranges(a: Relation, b: Relation, family: Family) -> dict[tuple[frozenset[int], frozenset[int]], str]:
    """Per (ipBlocks of ``a``, ipBlocks of ``b``), the address ranges with exactly those,
    merged (the first four, then how many more)."""
    lows = sorted({atom.low for r in (a, b) for atom in r.index.atoms(family)})
    top = (1 << (32 if family is Family.IPV4 else 128)) - 1
    spans: dict[tuple[frozenset[int], frozenset[int]], list[tuple[int, int]]] = {}
    for low, following in zip(lows, [*lows[1:], top + 1]):
        address = as_address(low, family)
        found = spans.setdefault((a.index.blocks_of(address), b.index.blocks_of(address)), [])
        if found and found[-1][1] + 1 == low:
            found[-1] = (found[-1][0], following - 1)
        else:
            found.append((low, following - 1))
    labels = {}
    for signature, intervals in spans.items():
        texts = [_range_text(first, last, family) for first, last in intervals]
        more = len(texts) - 4
        labels[signature] = ", ".join(texts[:4]) + (f" and {more} more ranges" if more > 0 else "")
    return labels


def _range_text(first: int, last: int, family: Family) -> str:
    """``10.0.0.0/8`` when the range is one CIDR, else ``11.0.0.0-172.15.255.255``."""
    network = as_prefix(Interval(first, last), family)
    return str(network) if network is not None else f"{as_address(first, family)}-{as_address(last, family)}"


def _joint_atoms(a: Relation, b: Relation, family: Family) -> tuple[tuple[IPAddress, str], ...]:
    """One outside address per distinct (ipBlocks of ``a``, ipBlocks of ``b``) containing it,
    with the ranges it stands for (:func:`_ranges`). Joint atoms are cut at the union of both
    clusters' cuts, and cluster addresses are single-address atoms in both, so every joint atom
    starts where an atom of one starts."""
    taken = a.cluster_addresses | b.cluster_addresses
    points = [x for x in taken if Family.of(x) is family]
    lows = {atom.low for r in (a, b) for atom in r.index.atoms(family, points=points)}
    chosen: dict[tuple[frozenset[int], frozenset[int]], IPAddress] = {}
    for low in sorted(lows):
        address = as_address(low, family)
        if address not in taken:
            chosen.setdefault((a.index.blocks_of(address), b.index.blocks_of(address)), address)
    labels = _ranges(a, b, family)
    return tuple(sorted((address, labels[signature]) for signature, address in chosen.items()))


Side = tuple[tuple[int, int], list[Pod]]


def _node_addresses(a: Relation, b: Relation, family: Family) -> list[list[tuple[IPAddress, str]]]:
    """The node addresses of ``family`` that no pod has, grouped by (view in ``a``, view in
    ``b``): per group, addresses of at most two nodes, each with its node's name. Node addresses
    are not outside addresses (a node has them), yet ipBlocks and ``nodes`` peers match them,
    so they are compared apart; an address a hostNetwork pod also has is compared as that pod."""
    pods = {x for r in (a, b) for p in r.cluster.pods for x in p.ips}
    chosen: dict[tuple[object, object], list[tuple[IPAddress, str]]] = {}
    for relation in (a, b):
        for node in relation.cluster.nodes:
            for address in node.addresses:
                if Family.of(address) is not family or address in pods:
                    continue
                found = chosen.setdefault(
                    (a.index.view_of_address(address), b.index.view_of_address(address)), []
                )
                if len(found) < 2 and all(node.name != n for _, n in found):
                    found.append((address, node.name))
    return list(chosen.values())


def _node_differences(
    a: Relation, b: Relation, family: Family, sources: Iterable[Sequence[Pod]], destinations: Iterable[Sequence[Pod]]
) -> Iterator[Difference]:
    """Ports ``a`` allows and ``b`` does not between pod classes and node addresses: egress of
    each group of ``sources`` (pods alike as sources in both) to each node address, and each
    node address to each group of ``destinations``, where the own-node bypass ("agents on a
    node reach its pods") applies only to the group's pods on that node: each pod of a group
    is compared from the first address of the view that is not its own node's, and a
    difference names only the pods it holds for (never a bypassed pair). Addresses of two nodes
    per joint view suffice, since a pod is on at most one of them. Cost: pod classes times
    distinct node views, never pod pairs."""
    views = _node_addresses(a, b, family)
    if not views:
        return
    for group in sources:
        pod, other = group[0], b.cluster.pod_by_key[group[0].key]
        for (address, _), *_ in views:
            extra = a.to_address(pod, address) - b.to_address(other, address)
            if extra:
                yield Difference(pod, address, family, extra, tuple(group), (address,))
    for group in destinations:
        for addresses in views:
            remaining = list(group)
            for address, node in addresses:
                alike = tuple(p for p in remaining if p.node != node)
                if not alike:
                    continue
                remaining = [p for p in remaining if p.node == node]
                pod = alike[0]
                extra = a.from_address(address, pod) - b.from_address(address, b.cluster.pod_by_key[pod.key])
                if extra:
                    yield Difference(address, pod, family, extra, (address,), alike)
                if not remaining:
                    break


def _sides(a: Relation, b: Relation, keys: list[str], family: Family) -> tuple[list[Side], list[Side]]:
    """Pods grouped by joint row (their row in ``a`` and in ``b``) and by joint column."""
    ca, cb = a.of(family), b.of(family)
    rows: dict[tuple[int, int], list[Pod]] = {}
    columns: dict[tuple[int, int], list[Pod]] = {}
    for key in keys:
        i, j = ca.class_of[key], cb.class_of[key]
        pod = a.cluster.pod_by_key[key]
        rows.setdefault((ca.row_of[i], cb.row_of[j]), []).append(pod)
        columns.setdefault((ca.column_of[i], cb.column_of[j]), []).append(pod)
    return sorted(rows.items(), key=lambda g: g[1][0].key), sorted(columns.items(), key=lambda g: g[1][0].key)


def differences(a: Relation, b: Relation, *, families: tuple[Family, ...] | None = None) -> Iterator[Difference]:
    """Every (joint row, joint column, family) where ``a`` allows ports ``b`` does not, then
    the bypassed pod pairs, then outside addresses."""
    keys = sorted(set(a.cluster.pod_by_key) & set(b.cluster.pod_by_key))
    chosen = families or tuple(f for f in Family if f in set(a.families) | set(b.families))
    for family in chosen:
        rows, columns = _sides(a, b, keys, family)
        cells_a, cells_b = a.of(family).cells, b.of(family).cells
        minus: dict[tuple[PortSet, PortSet], PortSet] = {}
        for (row_a, row_b), sources in rows:
            for (column_a, column_b), destinations in columns:
                key = (cells_a[row_a][column_a], cells_b[row_b][column_b])
                extra = minus.get(key)
                if extra is None:
                    extra = minus[key] = key[0] - key[1]
                pair = _ordinary_pair(a, b, sources, destinations, family) if extra else None
                if pair is not None:
                    yield Difference(pair[0], pair[1], family, extra, tuple(sources), tuple(destinations))
        for s, d in a._bypass_pairs():
            if d.key in b.cluster.pod_by_key and s.key in b.cluster.pod_by_key:
                extra = a.ports(s, d, family=family) - b.ports(
                    b.cluster.pod_by_key[s.key], b.cluster.pod_by_key[d.key], family=family
                )
                if extra:
                    yield Difference(s, d, family, extra, (s,), (d,))
        outside = _joint_atoms(a, b, family)
        for _, group in rows:
            pod, other = group[0], b.cluster.pod_by_key[group[0].key]
            for address, ranges in outside:
                extra = a.to_address(pod, address) - b.to_address(other, address)
                if extra:
                    yield Difference(pod, address, family, extra, tuple(group), (address,), ranges)
        for _, group in columns:
            pod, other = group[0], b.cluster.pod_by_key[group[0].key]
            for address, ranges in outside:
                extra = a.from_address(address, pod) - b.from_address(address, other)
                if extra:
                    yield Difference(address, pod, family, extra, (address,), tuple(group), ranges)
        yield from _node_differences(a, b, family, (g for _, g in rows), (g for _, g in columns))


def _ordinary_pair(
    a: Relation, b: Relation, sources: list[Pod], destinations: list[Pod], family: Family
) -> tuple[Pod, Pod] | None:
    """A (source, destination) pair that no bypass applies to in either relation."""
    return next(
        (
            (s, d)
            for s in sources
            for d in (destinations if s.host_network else destinations[:2])
            if a.bypass(s, d, family) is None
            and b.bypass(b.cluster.pod_by_key[s.key], b.cluster.pod_by_key[d.key], family) is None
        ),
        None,
    )


def same_ends(a: Cluster, b: Cluster) -> bool:
    """Whether two clusters differ at most in their NetworkPolicies (pods, namespaces, nodes
    and cluster-scoped policies equal, provenance aside)."""
    return (
        set(a.pods) == set(b.pods)
        and set(a.namespaces) == set(b.namespaces)
        and set(a.nodes) == set(b.nodes)
        and set(a.cluster_policies) == set(b.cluster_policies)
    )


def _touched(relation: Relation, changed: set[object], direction: Direction) -> frozenset[int]:
    """Ids of the podSelectors of changed policies that isolate ``direction`` in ``relation``."""
    refs = {p.ref for p in relation.cluster.policies if p in changed}
    return frozenset(p.target for p in relation.index.policies if p.ref in refs and direction in p.types)


def _joint(ca: ViewClasses, cb: ViewClasses) -> list[tuple[int, int, tuple[Pod, ...]]]:
    grouped: dict[tuple[int, int], list[Pod]] = {}
    for members in ca.members:
        for pod in members:
            grouped.setdefault((ca.class_of[pod.key], cb.class_of[pod.key]), []).append(pod)
    return sorted(((i, j, tuple(pods)) for (i, j), pods in grouped.items()), key=lambda g: g[2][0].key)


def policy_differences(a: Relation, b: Relation, *, families: tuple[Family, ...] | None = None) -> Iterator[Difference]:
    """:func:`differences` for two relations whose clusters differ only in policies (see the
    module docstring), visiting only the cells the changed policies can touch."""
    changed: set[object] = set(a.cluster.policies) ^ set(b.cluster.policies)
    chosen = families or tuple(f for f in Family if f in set(a.families) | set(b.families))
    touched = {
        d: (_touched(a, changed, d), _touched(b, changed, d)) for d in (Direction.INGRESS, Direction.EGRESS)
    }

    def affected(ca: ViewClasses, cb: ViewClasses, i: int, j: int, direction: Direction) -> bool:
        va, vb = ca.views[i], cb.views[j]
        ta, tb = touched[direction]
        return (va.kind is EndKind.POD and not ta.isdisjoint(va.selectors)) or (
            vb.kind is EndKind.POD and not tb.isdisjoint(vb.selectors)
        )

    for family in chosen:
        ca, cb = view_classes(a, family), view_classes(b, family)
        joint = _joint(ca, cb)
        sources = [g for g in joint if affected(ca, cb, g[0], g[1], Direction.EGRESS)]
        destinations = [g for g in joint if affected(ca, cb, g[0], g[1], Direction.INGRESS)]
        chosen_sources = {id(g) for g in sources}
        for group in joint:
            si, sj, spods = group
            for di, dj, dpods in joint if id(group) in chosen_sources else destinations:
                extra = a.decider.ports(ca.views[si], ca.views[di]) - b.decider.ports(cb.views[sj], cb.views[dj])
                if not extra:
                    continue
                pair = ca.ordinary_pair(spods, dpods)
                if pair is not None:
                    yield Difference(pair[0], pair[1], family, extra, spods, dpods)
        outside = _joint_atoms(a, b, family)
        for si, sj, spods in sources:
            for address, ranges in outside:
                extra = a.decider.ports(ca.views[si], a.index.view_of_address(address)) - b.decider.ports(
                    cb.views[sj], b.index.view_of_address(address)
                )
                if extra:
                    yield Difference(spods[0], address, family, extra, spods, (address,), ranges)
        for di, dj, dpods in destinations:
            for address, ranges in outside:
                extra = a.decider.ports(a.index.view_of_address(address), ca.views[di]) - b.decider.ports(
                    b.index.view_of_address(address), cb.views[dj]
                )
                if extra:
                    yield Difference(address, dpods[0], family, extra, (address,), dpods, ranges)
        yield from _node_differences(a, b, family, (g[2] for g in sources), (g[2] for g in destinations))


def any_differences(a: Relation, b: Relation) -> Iterator[Difference]:
    """Flows ``a`` allows and ``b`` does not: :func:`policy_differences` when only policies
    differ, else the whole comparison (:func:`differences`)."""
    if same_ends(a.cluster, b.cluster):
        return policy_differences(a, b)
    return differences(a, b)


def first_difference(a: Cluster | Relation, b: Cluster | Relation) -> Difference | None:
    """A flow ``a`` allows and ``b`` does not, or None when ``b`` allows everything ``a`` does."""
    ra = a if isinstance(a, Relation) else Relation(a, families=_families(a, b))
    rb = b if isinstance(b, Relation) else Relation(b, families=_families(a, b))
    return next(any_differences(ra, rb), None)


def _families(a: Cluster | Relation, b: Cluster | Relation) -> tuple[Family, ...]:
    ca = a.cluster if isinstance(a, Relation) else a
    cb = b.cluster if isinstance(b, Relation) else b
    found = set(cluster_families(ca)) | set(cluster_families(cb))
    return tuple(f for f in Family if f in found)


def describe(difference: Difference) -> str:
    return (
        f"{_name(difference.source)} -> {_name(difference.destination)} ({difference.family.value}): {difference.ports}"
    )
