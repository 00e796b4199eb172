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
* **its node** - through the ``nodes`` peers of cluster-scoped policies, which "select the
  nodeIPs ... present in the node.Status.Addresses field": a view holds the ids of the nodes
  peers that match it (a node's address, or a hostNetwork pod on a matching node).

Cluster-scoped policies (ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy)
add to the same tables: a ``subject`` and each ``namespaces``/``pods`` peer is a scoped selector
over selected namespaces, each ``networks`` CIDR an ipBlock without ``except`` (so the address
atoms are also cut at its boundaries), and their rules are indexed per tier in precedence order
(:meth:`PolicyIndex.tiered`). ``domainNames`` peers match nothing: names are not resolved
(:func:`policy.tiers.match_domain_names_peer`); :attr:`IndexedClusterRule.unresolved` says a
rule has one, so callers can report it.

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
import ipaddress
import itertools
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from policyctl.compiler.intervals import block_intervals
from policyctl.policy.clustermodel import (
    Action,
    ClusterNetworkPolicy,
    ClusterPolicyRef,
    ClusterRule,
    DomainNamesPeer,
    NodesPeer,
    Tier,
)
from policyctl.policy.ipblocks import EndAddress, end_address
from policyctl.policy.matchers import named_port_numbers, scope_matches, subject_of, takes_part
from policyctl.policy.model import (
    Direction,
    Family,
    IPAddress,
    IPBlockPeer,
    Labels,
    LabelSelector,
    NamespaceScope,
    Node,
    OwnNamespace,
    Pod,
    PodPeer,
    PolicyRef,
    PortMatch,
    Protocol,
    Provenance,
)
from policyctl.policy.cluster import Cluster
from policyctl.policy.tiers import match_nodes_peer


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
    nodes: frozenset[int] = frozenset()
    """Ids of the ``nodes`` peers (:attr:`PolicyIndex.node_peers`) that match this end."""


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


@dataclass(frozen=True, slots=True)
class IndexedClusterRule:
    """One rule of a cluster-scoped policy with its peers as table ids. ``unresolved``: the
    rule has a ``domainNames`` peer, which matches nothing here (names are not resolved)."""

    id: int
    policy: ClusterPolicyRef
    tier: Tier
    direction: Direction
    index: int
    action: Action
    selectors: tuple[int, ...]
    blocks: tuple[int, ...]
    nodes: tuple[int, ...]
    ports: tuple[PortMatch, ...]
    unresolved: bool
    rule: ClusterRule


@dataclass(frozen=True, slots=True)
class IndexedClusterPolicy:
    """A cluster-scoped policy: ``subject`` is a scoped-selector id; ``rules`` in rule order."""

    policy: ClusterNetworkPolicy
    subject: int
    rules: Mapping[Direction, tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class TierRules:
    """The cluster rules that apply to a pod in one direction, per tier, in precedence order
    (policy ``order``, then rule order)."""

    admin: tuple[int, ...] = ()
    baseline: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.admin or self.baseline)


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
            selectors.setdefault(ScopedSelector(*subject_of(policy)))
            for rule in (*policy.ingress, *policy.egress):
                for peer in rule.peers:
                    if isinstance(peer, PodPeer):
                        selectors.setdefault(ScopedSelector(peer.namespaces, peer.pods))
                    else:
                        blocks.setdefault(peer)
        cluster_policies = sorted(cluster.cluster_policies, key=lambda p: (p.tier is not Tier.ADMIN, p.order))
        node_peers: dict[NodesPeer, None] = {}
        for cluster_policy in cluster_policies:
            selectors.setdefault(ScopedSelector(*subject_of(cluster_policy)))
            for cluster_rule in (*cluster_policy.ingress, *cluster_policy.egress):
                for cluster_peer in cluster_rule.peers:
                    if isinstance(cluster_peer, PodPeer):
                        selectors.setdefault(ScopedSelector(cluster_peer.namespaces, cluster_peer.pods))
                    elif isinstance(cluster_peer, IPBlockPeer):
                        blocks.setdefault(cluster_peer)
                    elif isinstance(cluster_peer, NodesPeer):
                        node_peers.setdefault(cluster_peer)
        self.node_peers: tuple[NodesPeer, ...] = tuple(sorted(node_peers, key=lambda n: n.selector.requirements))
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
                        sorted(
                            {
                                selector_id[ScopedSelector(p.namespaces, p.pods)]
                                for p in rule.peers
                                if isinstance(p, PodPeer)
                            }
                        )
                    )
                    cidrs = tuple(sorted({block_id[p] for p in rule.peers if isinstance(p, IPBlockPeer)}))
                    ids.append(len(rules))
                    rules.append(
                        IndexedRule(
                            len(rules),
                            policy.ref,
                            direction,
                            rule.index,
                            rule.any_peer,
                            pods,
                            cidrs,
                            rule.ports,
                            rule.provenance,
                        )
                    )
                by_direction[direction] = tuple(ids)
            target = selector_id[ScopedSelector(*subject_of(policy))]
            isolates = frozenset(d for d in (Direction.INGRESS, Direction.EGRESS) if takes_part(policy, d))
            indexed.append(IndexedPolicy(policy.ref, target, isolates, by_direction))
        self.rules: tuple[IndexedRule, ...] = tuple(rules)
        self.policies: tuple[IndexedPolicy, ...] = tuple(indexed)
        self.cluster_rules: tuple[IndexedClusterRule, ...] = ()
        self.cluster_policies: tuple[IndexedClusterPolicy, ...] = ()
        self._index_cluster_policies(cluster_policies, selector_id, block_id)
        self.pod_keys: frozenset[str] = frozenset(r.key for s in self.selectors for r in s.pods.requirements)
        self.named: tuple[tuple[str, Protocol], ...] = tuple(
            sorted(
                {
                    (m.port, m.protocol)
                    for r in (*self.rules, *self.cluster_rules)
                    for m in r.ports
                    if isinstance(m.port, str)
                },
                key=lambda n: (n[0], n[1].value),
            )
        )
        self._scope_cache: dict[tuple[str, Labels], tuple[bool, ...]] = {}
        self._selector_cache: dict[tuple[str, Labels, tuple[tuple[str, str], ...]], frozenset[int]] = {}
        self._admitted_cache: dict[tuple[str, Labels], tuple[int, ...]] = {}
        self._applying: dict[tuple[frozenset[int], Direction], tuple[bool, tuple[int, ...]]] = {}
        self._policies_by_target: dict[int, list[int]] = {}
        for position, indexed_policy in enumerate(self.policies):
            self._policies_by_target.setdefault(indexed_policy.target, []).append(position)
        self._tiered: dict[tuple[frozenset[int], Direction], TierRules] = {}
        self._node_matches: dict[object, frozenset[int]] = {}

    def _index_cluster_policies(
        self,
        policies: Iterable[ClusterNetworkPolicy],
        selector_id: Mapping[ScopedSelector, int],
        block_id: Mapping[IPBlockPeer, int],
    ) -> None:
        node_id = {n: i for i, n in enumerate(self.node_peers)}
        rules: list[IndexedClusterRule] = []
        indexed: list[IndexedClusterPolicy] = []
        for policy in policies:
            by_direction: dict[Direction, tuple[int, ...]] = {}
            for direction in (Direction.INGRESS, Direction.EGRESS):
                ids = []
                for rule in policy.rules(direction):
                    peers = rule.peers
                    ids.append(len(rules))
                    rules.append(
                        IndexedClusterRule(
                            len(rules), policy.ref, policy.tier, direction, rule.index, rule.action,
                            tuple(sorted({selector_id[ScopedSelector(p.namespaces, p.pods)] for p in peers
                                          if isinstance(p, PodPeer)})),
                            tuple(sorted({block_id[p] for p in peers if isinstance(p, IPBlockPeer)})),
                            tuple(sorted({node_id[p] for p in peers if isinstance(p, NodesPeer)})),
                            rule.ports, any(isinstance(p, DomainNamesPeer) for p in peers), rule,
                        )
                    )  # fmt: skip
                by_direction[direction] = tuple(ids)
            subject = selector_id[ScopedSelector(*subject_of(policy))]
            indexed.append(IndexedClusterPolicy(policy, subject, by_direction))
        self.cluster_rules = tuple(rules)
        self.cluster_policies = tuple(indexed)

    # labels -------------------------------------------------------------------------------

    def scopes_matching(self, namespace: str, namespace_labels: Labels) -> tuple[bool, ...]:
        """Per scoped selector, whether its namespace part admits this namespace: its own name
        for a peer without namespaceSelector, else the namespace labels match the selector."""
        key = (namespace, namespace_labels)
        found = self._scope_cache.get(key)
        if found is None:
            found = tuple(scope_matches(s.scope, namespace, namespace_labels) for s in self.selectors)
            self._scope_cache[key] = found
        return found

    def _admitted(self, namespace: str, namespace_labels: Labels) -> tuple[int, ...]:
        """Ids of the scoped selectors whose namespace part admits this namespace, once per
        namespace, so each pod view tests only their pod parts."""
        key = (namespace, namespace_labels)
        found = self._admitted_cache.get(key)
        if found is None:
            scopes = self.scopes_matching(namespace, namespace_labels)
            found = tuple(i for i, admits in enumerate(scopes) if admits)
            self._admitted_cache[key] = found
        return found

    def selectors_of(
        self, namespace: str, labels: Mapping[str, str], *, namespace_labels: Labels | None = None
    ) -> frozenset[int]:
        """Ids of the scoped selectors that select a pod with ``labels`` in ``namespace``."""
        ns_labels = namespace_labels if namespace_labels is not None else self.cluster.namespace_labels(namespace)
        projected = tuple((k, v) for k, v in sorted(labels.items()) if k in self.pod_keys)
        key = (namespace, ns_labels, projected)
        found = self._selector_cache.get(key)
        if found is None:
            seen = dict(projected)
            found = frozenset(i for i in self._admitted(namespace, ns_labels) if self.selectors[i].pods.matches(seen))
            self._selector_cache[key] = found
        return found

    def applying(self, selectors: frozenset[int], direction: Direction) -> tuple[bool, tuple[int, ...]]:
        """(isolated, rule ids) for a pod that these selectors select: a pod is isolated when a
        policy selecting it has ``direction`` in policyTypes, and then only the rules of such
        policies may allow traffic."""
        key = (selectors, direction)
        found = self._applying.get(key)
        if found is None:
            positions = sorted(i for s in selectors for i in self._policies_by_target.get(s, ()))
            chosen = [p for p in map(self.policies.__getitem__, positions) if direction in p.types]
            found = (bool(chosen), tuple(r for p in chosen for r in p.rules[direction]))
            self._applying[key] = found
        return found

    def selecting(self, selectors: frozenset[int]) -> tuple[PolicyRef, ...]:
        return tuple(p.ref for p in self.policies if p.target in selectors)

    def tiered(self, selectors: frozenset[int], direction: Direction) -> TierRules:
        """The cluster rules of ``direction`` that apply to a pod these selectors select: the
        policies whose subject selects it and that have rules in that direction ("CNPs with no
        ingress rules do not affect ingress traffic"), by tier and precedence
        (:attr:`ClusterNetworkPolicy.order`, ties by kind and name as in every engine), each
        policy's rules in written order."""
        key = (selectors, direction)
        found = self._tiered.get(key)
        if found is None:
            chosen = [p for p in self.cluster_policies if p.subject in selectors and takes_part(p.policy, direction)]
            found = TierRules(
                tuple(r for p in chosen if p.policy.tier is Tier.ADMIN for r in p.rules[direction]),
                tuple(r for p in chosen if p.policy.tier is Tier.BASELINE for r in p.rules[direction]),
            )
            self._tiered[key] = found
        return found

    @cached_property
    def _cluster_peer_ids(self) -> Mapping[Direction, tuple[frozenset[int], frozenset[int], frozenset[int]]]:
        """Per direction, the selector, ipBlock and nodes-peer ids some cluster rule names."""
        found = {}
        for direction in (Direction.INGRESS, Direction.EGRESS):
            chosen = [r for r in self.cluster_rules if r.direction is direction]
            found[direction] = (
                frozenset(s for r in chosen for s in r.selectors),
                frozenset(b for r in chosen for b in r.blocks),
                frozenset(n for r in chosen for n in r.nodes),
            )
        return found

    def tier_side(self, view: View, applying: Direction) -> tuple[object, ...]:
        """What the cluster tiers depend on from one end's side, for grouping ends: the cluster
        rules of ``applying`` that apply to it, and what cluster rules of the other direction
        can see of it as their peer. ``()`` when the cluster has no cluster-scoped policy."""
        if not self.cluster_rules:
            return ()
        seen = Direction.INGRESS if applying is Direction.EGRESS else Direction.EGRESS
        selectors, blocks, nodes = self._cluster_peer_ids[seen]
        tiers = self.tiered(view.selectors, applying) if view.kind is EndKind.POD else None
        chosen = view.selectors & selectors if view.kind is EndKind.POD else frozenset()
        return (tiers, chosen, (view.blocks or frozenset()) & blocks, view.nodes & nodes)

    # nodes --------------------------------------------------------------------------------

    def _nodes_matching(self, key: object, end: Node | Pod | IPAddress, address: EndAddress) -> frozenset[int]:
        if not self.node_peers:
            return frozenset()
        found = self._node_matches.get(key)
        if found is None:
            found = frozenset(
                i for i, peer in enumerate(self.node_peers)
                if match_nodes_peer(self.cluster, peer, other=end, address=address).matched
            )  # fmt: skip
            self._node_matches[key] = found
        return found

    def nodes_of_node(self, node: Node) -> frozenset[int]:
        """Ids of the ``nodes`` peers whose selector matches ``node``'s labels."""
        return self._nodes_matching(("node", node.name), node, EndAddress(None))

    def nodes_of_address(self, address: IPAddress) -> frozenset[int]:
        """Ids of the ``nodes`` peers that match some node having ``address``."""
        return self._nodes_matching(("address", address), address, EndAddress(address))

    # addresses ----------------------------------------------------------------------------

    @cached_property
    def _block_intervals(self) -> tuple[tuple[Family, tuple[tuple[int, int], ...]], ...]:
        return tuple(
            (Family.of(b.cidr), tuple((i.low, i.high) for i in block_intervals(b.cidr, b.excepts))) for b in self.blocks
        )

    @cached_property
    def _base_atoms(self) -> Mapping[Family, tuple[list[int], list[frozenset[int]]]]:
        """Per family, the start of every atom (from 0, cut at each span's ``low`` and ``high + 1``)
        and the ids of the ipBlocks containing it. One sweep over the sorted span ends keeps the
        blocks covering the current point, so the cost is O(B log B + output), not B per cut."""
        found: dict[Family, tuple[list[int], list[frozenset[int]]]] = {}
        for family in Family:
            events: list[tuple[int, int, int]] = []
            for i, (f, spans) in enumerate(self._block_intervals):
                if f is family:
                    for low, high in spans:
                        events.append((low, 1, i))
                        events.append((high + 1, -1, i))
            events.sort()
            covering: dict[int, int] = {}
            starts: list[int] = []
            signatures: list[frozenset[int]] = []
            for point, changes in itertools.groupby(events, key=operator.itemgetter(0)):
                for _, change, block in changes:
                    covering[block] = covering.get(block, 0) + change
                    if not covering[block]:
                        del covering[block]
                starts.append(point)
                signatures.append(frozenset(covering))
            if not starts or starts[0] != 0:
                starts.insert(0, 0)
                signatures.insert(0, frozenset())
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
        ``points`` (which become single-address atoms), in order. When a ``nodes`` peer
        exists, every node address is a single-address atom too (it matches by node, not by
        range)."""
        top = (1 << (32 if family is Family.IPV4 else 128)) - 1
        cuts = {0, top + 1}
        for f, spans in self._block_intervals:
            if f is family:
                for low, high in spans:
                    cuts.update((low, high + 1))
        node_points = (a for n in self.cluster.nodes for a in n.addresses) if self.node_peers else ()
        for point in (*points, *node_points):
            if Family.of(point) is family:
                cuts.update((int(point), int(point) + 1))
        starts = sorted(cuts)
        return tuple(
            Atom(family, low, following - 1, self._blocks_at(low, family)) for low, following in zip(starts, starts[1:])
        )

    # views --------------------------------------------------------------------------------

    def named_of(self, pod: Pod) -> NamedPorts:
        """The numbers of every (name, protocol) a policy names, on ``pod``'s container ports."""
        return tuple((name, protocol, named_port_numbers(pod, name, protocol)) for name, protocol in self.named)

    def view_of_pod(self, pod: Pod, family: Family) -> View:
        address = end_address(self.cluster, pod, family)
        blocks = None if address.address is None else self.blocks_of(address.address)
        if pod.host_network:
            nodes = frozenset[int]()
            node = self.cluster.node_by_name.get(pod.node) if pod.node is not None else None
            if node is not None:
                nodes = self.nodes_of_node(node)
            return View(EndKind.HOST, blocks=blocks, impossible=address.impossible, nodes=nodes)
        return View(
            EndKind.POD,
            self.selectors_of(pod.namespace, pod.labels),
            blocks,
            self.named_of(pod),
            address.impossible,
        )

    def view_of_address(self, address: IPAddress) -> View:
        return View(EndKind.EXTERNAL, blocks=self.blocks_of(address), nodes=self.nodes_of_address(address))

    def view_of_atom(self, atom: Atom) -> View:
        """An atom's view; only a single-address atom can be a node's address (see :meth:`atoms`)."""
        nodes = frozenset[int]()
        if atom.low == atom.high and self.node_peers:
            nodes = self.nodes_of_address(_address(atom.low, atom.family))
        return View(EndKind.EXTERNAL, blocks=atom.blocks, nodes=nodes)

    def view_of_node(self, node: Node, family: Family) -> View:
        """A node as a connection end: its address in ``family`` for ipBlocks, its labels for
        ``nodes`` peers (which match the node itself even when no address is known)."""
        address = end_address(self.cluster, node, family)
        blocks = None if address.address is None else self.blocks_of(address.address)
        return View(EndKind.EXTERNAL, blocks=blocks, impossible=address.impossible, nodes=self.nodes_of_node(node))


def _address(value: int, family: Family) -> IPAddress:
    return ipaddress.IPv4Address(value) if family is Family.IPV4 else ipaddress.IPv6Address(value)

