"""The symbolic form of a cluster's policies: what each dimension can tell apart.

Policies see a pod only through three things, so the verifier describes every end of a
connection by a :class:`View` of them and never by its name:

* **labels** - through scoped selectors (a policy's ``podSelector`` in its own namespace, a
  peer's ``namespaceSelector``/``podSelector`` pair, or a peer's ``podSelector`` in the policy's
  namespace). A pod's view holds the ids of the scoped selectors that select it. Labels whose
  keys no selector mentions are projected away first, so pods that differ only there share
  one computation.
* **its address** - through ipBlocks ("inside ``cidr`` and inside no ``except``"). The address
  space of each family is cut into atoms at every cidr and except boundary; a view holds the
  ids of the ipBlocks containing its address (``None`` when it has none: ipBlocks cannot match
  it, the API semantics of an addressless pod).
* **its container ports** - through named ports, resolved on the destination pod by name and
  protocol; a view holds the numbers of every (name, protocol) some policy names.

Views of a hostNetwork pod (:attr:`EndKind.HOST`) and of an address outside the cluster
(:attr:`EndKind.EXTERNAL`) carry no selectors and no named ports: "policies never select" a
hostNetwork pod and a pod peer "selects pods" on the pod network only (docs/semantics.md).

Invariants: views are hashable values, equal exactly when every policy treats the two ends the
same way in one family; ids are positions in sorted, deduplicated tables, so the same cluster
always yields the same ids.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from policyctl.compiler.intervals import block_intervals
from policyctl.policy.ipblocks import end_address
from policyctl.policy.model import (
    Cluster,
    Direction,
    Family,
    IPAddress,
    IPBlockPeer,
    Labels,
    LabelSelector,
    NamespaceScope,
    OwnNamespace,
    PodPeer,
    PolicyRef,
    Pod,
    PortMatch,
    Protocol,
    Provenance,
)


class EndKind(str, enum.Enum):
    POD = "pod"
    """A pod on the pod network: selected by policies, matched by pod peers and ipBlocks."""
    HOST = "host"
    """A hostNetwork pod: its node's address, matched by ipBlocks only, never selected."""
    EXTERNAL = "external"
    """An address outside the pod network (a node's included): ipBlocks only, no policies."""


NamedPorts = tuple[tuple[str, Protocol, tuple[int, ...]], ...]


@dataclass(frozen=True, slots=True)
class View:
    """What every policy can see of one end in one family (see the module docstring).
    ``impossible``: the end has addresses, none in this family, so no connection exists."""

    kind: EndKind
    selectors: frozenset[int] = frozenset()
    blocks: frozenset[int] | None = None
    named: NamedPorts = ()
    impossible: bool = False


@dataclass(frozen=True, slots=True)
class ScopedSelector:
    """Pods selected by ``pods`` in the namespaces ``scope`` stands for."""

    scope: NamespaceScope
    pods: LabelSelector


@dataclass(frozen=True, slots=True)
class IndexedRule:
    """One rule with its peers as table ids: ``any_peer`` for a rule without from/to."""

    id: int
    policy: PolicyRef
    direction: Direction
    index: int
    any_peer: bool
    selectors: tuple[int, ...]
    blocks: tuple[int, ...]
    ports: tuple[PortMatch, ...]
    provenance: Provenance | None


@dataclass(frozen=True, slots=True)
class IndexedPolicy:
    ref: PolicyRef
    target: int
    types: frozenset[Direction]
    rules: Mapping[Direction, tuple[int, ...]]


def _scope_key(scope: NamespaceScope) -> tuple[object, ...]:
    if isinstance(scope, OwnNamespace):
        return (0, scope.name)
    return (1, scope.selector.requirements)


@dataclass(frozen=True, slots=True)
class Atom:
    """Addresses ``low``..``high`` of ``family`` that every ipBlock treats alike."""

    family: Family
    low: int
    high: int
    blocks: frozenset[int]


class PolicyIndex:
    """Tables of one cluster's scoped selectors, ipBlocks and rules, and views of its ends."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        policies = sorted(cluster.policies, key=lambda p: p.ref)
        selectors: dict[ScopedSelector, None] = {}
        blocks: dict[IPBlockPeer, None] = {}
        for policy in policies:
            selectors.setdefault(ScopedSelector(OwnNamespace(policy.namespace), policy.pod_selector))
            for rule in (*policy.ingress, *policy.egress):
                for peer in rule.peers:
                    if isinstance(peer, PodPeer):
                        selectors.setdefault(ScopedSelector(peer.namespaces, peer.pods))
                    else:
                        blocks.setdefault(peer)
        self.selectors: tuple[ScopedSelector, ...] = tuple(
            sorted(selectors, key=lambda s: (_scope_key(s.scope), s.pods.requirements))
        )
        self.blocks: tuple[IPBlockPeer, ...] = tuple(sorted(blocks, key=lambda b: (b.cidr.version, str(b))))
        selector_id = {s: i for i, s in enumerate(self.selectors)}
        block_id = {b: i for i, b in enumerate(self.blocks)}
        rules: list[IndexedRule] = []
        indexed: list[IndexedPolicy] = []
        for policy in policies:
            by_direction: dict[Direction, tuple[int, ...]] = {}
            for direction in (Direction.INGRESS, Direction.EGRESS):
                ids = []
                for rule in policy.rules(direction):
                    pods = tuple(
                        sorted({selector_id[ScopedSelector(p.namespaces, p.pods)] for p in rule.peers if isinstance(p, PodPeer)})
                    )
                    cidrs = tuple(sorted({block_id[p] for p in rule.peers if isinstance(p, IPBlockPeer)}))
                    ids.append(len(rules))
                    rules.append(
                        IndexedRule(len(rules), policy.ref, direction, rule.index, rule.any_peer, pods, cidrs, rule.ports, rule.provenance)
                    )
                by_direction[direction] = tuple(ids)
            target = selector_id[ScopedSelector(OwnNamespace(policy.namespace), policy.pod_selector)]
            indexed.append(IndexedPolicy(policy.ref, target, policy.policy_types, by_direction))
        self.rules: tuple[IndexedRule, ...] = tuple(rules)
        self.policies: tuple[IndexedPolicy, ...] = tuple(indexed)
        self.pod_keys: frozenset[str] = frozenset(r.key for s in self.selectors for r in s.pods.requirements)
        self.named: tuple[tuple[str, Protocol], ...] = tuple(
            sorted(
                {(m.port, m.protocol) for r in self.rules for m in r.ports if isinstance(m.port, str)},
                key=lambda n: (n[0], n[1].value),
            )
        )
        self._scope_cache: dict[tuple[str, Labels], tuple[bool, ...]] = {}
        self._selector_cache: dict[tuple[str, Labels, tuple[tuple[str, str], ...]], frozenset[int]] = {}
        self._applying: dict[tuple[frozenset[int], Direction], tuple[bool, tuple[int, ...]]] = {}

    # labels -------------------------------------------------------------------------------

    def scopes_matching(self, namespace: str, namespace_labels: Labels) -> tuple[bool, ...]:
        """Per scoped selector, whether its namespace part admits this namespace: its own name
        for a peer without namespaceSelector, else the namespace labels match the selector."""
        key = (namespace, namespace_labels)
        found = self._scope_cache.get(key)
        if found is None:
            found = tuple(
                s.scope.name == namespace if isinstance(s.scope, OwnNamespace) else s.scope.selector.matches(namespace_labels)
                for s in self.selectors
            )
            self._scope_cache[key] = found
        return found

    def selectors_of(self, namespace: str, labels: Mapping[str, str], *, namespace_labels: Labels | None = None) -> frozenset[int]:
        """Ids of the scoped selectors that select a pod with ``labels`` in ``namespace``."""
        ns_labels = namespace_labels if namespace_labels is not None else self.cluster.namespace_labels(namespace)
        projected = tuple((k, v) for k, v in sorted(labels.items()) if k in self.pod_keys)
        key = (namespace, ns_labels, projected)
        found = self._selector_cache.get(key)
        if found is None:
            scopes = self.scopes_matching(namespace, ns_labels)
            seen = dict(projected)
            found = frozenset(i for i, s in enumerate(self.selectors) if scopes[i] and s.pods.matches(seen))
            self._selector_cache[key] = found
        return found

    def applying(self, selectors: frozenset[int], direction: Direction) -> tuple[bool, tuple[int, ...]]:
        """(isolated, rule ids) for a pod that these selectors select: a pod is isolated when a
        policy selecting it has ``direction`` in policyTypes, and then only the rules of such
        policies may allow traffic."""
        key = (selectors, direction)
        found = self._applying.get(key)
        if found is None:
            chosen = [p for p in self.policies if p.target in selectors and direction in p.types]
            found = (bool(chosen), tuple(r for p in chosen for r in p.rules[direction]))
            self._applying[key] = found
        return found

    def selecting(self, selectors: frozenset[int]) -> tuple[PolicyRef, ...]:
        return tuple(p.ref for p in self.policies if p.target in selectors)

    # addresses ----------------------------------------------------------------------------

    @cached_property
    def _block_intervals(self) -> tuple[tuple[Family, tuple[tuple[int, int], ...]], ...]:
        return tuple(
            (Family.of(b.cidr), tuple((i.low, i.high) for i in block_intervals(b.cidr, b.excepts))) for b in self.blocks
        )

    @cached_property
    def _base_atoms(self) -> Mapping[Family, tuple[list[int], list[frozenset[int]]]]:
        found: dict[Family, tuple[list[int], list[frozenset[int]]]] = {}
        for family in Family:
            cuts = {0}
            for f, spans in self._block_intervals:
                if f is family:
                    for low, high in spans:
                        cuts.update((low, high + 1))
            starts = sorted(cuts)
            signatures = [
                frozenset(
                    i
                    for i, (f, spans) in enumerate(self._block_intervals)
                    if f is family and any(lo <= start <= hi for lo, hi in spans)
                )
                for start in starts
            ]
            found[family] = (starts, signatures)
        return found

    def _blocks_at(self, value: int, family: Family) -> frozenset[int]:
        starts, signatures = self._base_atoms[family]
        return signatures[bisect.bisect_right(starts, value) - 1]

    def blocks_of(self, address: IPAddress) -> frozenset[int]:
        """Ids of the ipBlocks that contain ``address`` (one bisection into the atoms)."""
        return self._blocks_at(int(address), Family.of(address))

    def atoms(self, family: Family, *, points: Iterable[IPAddress] = ()) -> tuple[Atom, ...]:
        """The address space of ``family`` cut at every ipBlock boundary and around each of
        ``points`` (which become single-address atoms), in order."""
        top = (1 << (32 if family is Family.IPV4 else 128)) - 1
        cuts = {0, top + 1}
        for f, spans in self._block_intervals:
            if f is family:
                for low, high in spans:
                    cuts.update((low, high + 1))
        for point in points:
            if Family.of(point) is family:
                cuts.update((int(point), int(point) + 1))
        starts = sorted(cuts)
        return tuple(
            Atom(family, low, following - 1, self._blocks_at(low, family)) for low, following in zip(starts, starts[1:])
        )

    # views --------------------------------------------------------------------------------

    def named_of(self, pod: Pod) -> NamedPorts:
        """The numbers of every (name, protocol) a policy names, on ``pod``'s container ports."""
        return tuple(
            (name, protocol, tuple(sorted({c.port for c in pod.ports if c.name == name and c.protocol is protocol})))
            for name, protocol in self.named
        )

    def view_of_pod(self, pod: Pod, family: Family) -> View:
        address = end_address(self.cluster, pod, family)
        blocks = None if address.address is None else self.blocks_of(address.address)
        if pod.host_network:
            return View(EndKind.HOST, blocks=blocks, impossible=address.impossible)
        return View(
            EndKind.POD,
            self.selectors_of(pod.namespace, pod.labels),
            blocks,
            self.named_of(pod),
            address.impossible,
        )

    def view_of_address(self, address: IPAddress) -> View:
        return View(EndKind.EXTERNAL, blocks=self.blocks_of(address))

    def view_of_atom(self, atom: Atom) -> View:
        return View(EndKind.EXTERNAL, blocks=atom.blocks)

