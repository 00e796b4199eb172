"""The label-selector graph: who selects whom, and which rules allow which peers on which ports.

Nodes (``kind`` attribute): ``namespace``, ``node``, ``pod``, ``identity`` (see
:mod:`identities`), ``selector`` (a pod selector scoped to namespaces, deduplicated by canonical
form: a policy's ``podSelector`` is the selector scoped to the policy's own namespace, a peer's
``podSelector``/``namespaceSelector`` pair is another), ``policy``, ``rule``, ``ipblock`` and the
single ``any`` peer (a rule without ``from``/``to`` "matches all sources/destinations").

Edges (``relation`` attribute): pod ``member-of`` identity, pod ``runs-on`` node, identity
``in`` namespace, selector ``selects`` identity, policy ``targets`` selector, policy ``has``
rule, rule ``allows-from``/``allows-to`` peer (selector, ipblock or any) carrying the rule's
ports and provenance.

Selectors are evaluated once per identity, never per pod. The compiler derives each local pod's
allowed peers and ports through its typed queries (:meth:`PolicyGraph.rules_for`), never by reading
edge keys back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Union

import networkx as nx
from policyctl.policy.matchers import isolating, selects, subject_of
from policyctl.policy.model import (
    Direction,
    IPBlockPeer,
    LabelSelector,
    NamespaceScope,
    NetworkPolicy,
    OwnNamespace,
    PodPeer,
    PolicyRef,
    PortMatch,
    Provenance,
    Rule,
)
from policyctl.policy.cluster import Cluster

from .identities import Identity, IdentityIndex

ANY_PEER = "any"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _selector_text(selector: LabelSelector) -> str:
    return ",".join(f"{r.key} {r.operator.value} ({'|'.join(r.values)})" for r in selector.requirements) or "<all>"


def scope_text(scope: NamespaceScope) -> str:
    if isinstance(scope, OwnNamespace):
        return f"namespace {scope.name}"
    return f"namespaces [{_selector_text(scope.selector)}]"


def selector_node(scope: NamespaceScope, pods: LabelSelector) -> str:
    return "sel:" + _hash(scope_text(scope) + " pods [" + _selector_text(pods) + "]")


def identity_node(identity: Identity) -> str:
    return "id:" + identity.id


def policy_node(ref: PolicyRef) -> str:
    return f"policy:{ref}"


def rule_node(ref: PolicyRef, direction: Direction, index: int) -> str:
    return f"rule:{ref}:{direction.value.lower()}[{index}]"


def ipblock_node(block: IPBlockPeer) -> str:
    return f"ipblock:{block}"


@dataclass(frozen=True, slots=True)
class SelectedIdentities:
    """A pod peer, resolved: the identities its namespace and pod selectors both select."""

    node: str
    identities: tuple[Identity, ...]


PeerView = Union[SelectedIdentities, IPBlockPeer]


@dataclass(frozen=True, slots=True)
class RuleView:
    """One rule of a policy selecting a pod, as the graph resolves it. ``peers`` is None for
    a rule that allows every peer; ``ports`` empty allows every port and protocol."""

    policy: PolicyRef
    direction: Direction
    index: int
    peers: tuple[PeerView, ...] | None
    ports: tuple[PortMatch, ...]
    provenance: Provenance | None

    @property
    def source(self) -> str:
        """Terse provenance for nft comments: ``x/allow-a ingress[0] a.yaml:12``."""
        where = f" {self.provenance}" if self.provenance else ""
        return f"{self.policy} {self.direction.value.lower()}[{self.index}]{where}"


class PolicyGraph:
    """The graph of one cluster snapshot, with the queries the compiler needs."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.index = IdentityIndex(cluster)
        self.graph: nx.MultiDiGraph[str] = nx.MultiDiGraph()
        self._selectors: dict[str, tuple[Identity, ...]] = {}
        self._build()

    def _add_selector(self, scope: NamespaceScope, pods: LabelSelector) -> str:
        node = selector_node(scope, pods)
        if node in self._selectors:
            return node
        text = f"{scope_text(scope)} pods [{_selector_text(pods)}]"
        self.graph.add_node(node, kind="selector", label=text)
        chosen = []
        for identity in self.index.identities:
            if selects(scope, pods, identity.namespace, self.index.namespace_labels(identity), identity.labels):
                chosen.append(identity)
                self.graph.add_edge(node, identity_node(identity), key="selects", relation="selects")
        self._selectors[node] = tuple(chosen)
        return node

    def _build(self) -> None:
        g = self.graph
        for ns in sorted(self.cluster.namespaces, key=lambda n: n.name):
            g.add_node(f"ns:{ns.name}", kind="namespace", label=f"{ns.name} [{ns.labels}]")
        for n in sorted(self.cluster.nodes, key=lambda n: n.name):
            g.add_node(f"node:{n.name}", kind="node", label=n.name, addresses=",".join(map(str, n.addresses)))
        for identity in self.index.identities:
            node = identity_node(identity)
            g.add_node(node, kind="identity", label=str(identity))
            g.add_edge(node, f"ns:{identity.namespace}", key="in", relation="in")
        for pod in sorted(self.cluster.pods, key=lambda p: p.key):
            node = f"pod:{pod.key}"
            g.add_node(
                node, kind="pod", label=pod.key, host_network=pod.host_network, addresses=",".join(map(str, pod.ips))
            )
            if not pod.host_network:
                g.add_edge(
                    node, identity_node(Identity(pod.namespace, pod.labels)), key="member-of", relation="member-of"
                )
            if pod.node:
                g.add_edge(node, f"node:{pod.node}", key="runs-on", relation="runs-on")
        for policy in sorted(self.cluster.policies, key=lambda p: p.ref):
            self._add_policy(policy)

    def _add_policy(self, policy: NetworkPolicy) -> None:
        g = self.graph
        pnode = policy_node(policy.ref)
        g.add_node(
            pnode,
            kind="policy",
            label=str(policy.ref),
            types=",".join(sorted(d.value for d in policy.policy_types)),
            provenance=str(policy.provenance or ""),
        )
        target = self._add_selector(*subject_of(policy))
        g.add_edge(pnode, target, key="targets", relation="targets")
        for direction in (Direction.INGRESS, Direction.EGRESS):
            for rule in policy.rules(direction):
                self._add_rule(policy, rule, pnode)

    def _add_rule(self, policy: NetworkPolicy, rule: Rule, pnode: str) -> None:
        g = self.graph
        rnode = rule_node(policy.ref, rule.direction, rule.index)
        g.add_node(
            rnode,
            kind="rule",
            label=f"{policy.ref} {rule.direction.value.lower()}[{rule.index}]",
            direction=rule.direction.value,
            provenance=str(rule.provenance or ""),
            obj=rule,
        )
        g.add_edge(pnode, rnode, key="has", relation="has")
        relation = "allows-from" if rule.direction is Direction.INGRESS else "allows-to"
        ports = ";".join(str(p) for p in rule.ports) or "all ports"
        peers: list[str] = []
        if rule.any_peer:
            g.add_node(ANY_PEER, kind="any", label="any peer")
            peers.append(ANY_PEER)
        for peer in rule.peers:
            if isinstance(peer, PodPeer):
                peers.append(self._add_selector(peer.namespaces, peer.pods))
            else:
                node = ipblock_node(peer)
                g.add_node(node, kind="ipblock", label=str(peer), obj=peer)
                peers.append(node)
        for position, peer_node in enumerate(peers):
            g.add_edge(
                rnode,
                peer_node,
                key=f"{relation}[{position}]",
                relation=relation,
                ports=ports,
                provenance=str(rule.provenance or ""),
            )

    @cached_property
    def _targeting(self) -> dict[Identity, tuple[NetworkPolicy, ...]]:
        by_ref = {p.ref: p for p in self.cluster.policies}
        found: dict[Identity, list[NetworkPolicy]] = {}
        for policy_ref in sorted(by_ref):
            target = selector_node(*subject_of(by_ref[policy_ref]))
            for identity in self._selectors[target]:
                found.setdefault(identity, []).append(by_ref[policy_ref])
        return {i: tuple(ps) for i, ps in found.items()}

    def selecting(self, identity: Identity) -> tuple[NetworkPolicy, ...]:
        """Policies whose ``podSelector`` selects pods of this identity, sorted."""
        return self._targeting.get(identity, ())

    def isolated(self, identity: Identity, direction: Direction) -> bool:
        """A pod is isolated in a direction when some policy that selects it has that type
        in ``policyTypes``."""
        return bool(isolating(self.selecting(identity), direction))

    def selected(self, scope: NamespaceScope, pods: LabelSelector) -> tuple[Identity, ...]:
        return self._selectors[selector_node(scope, pods)]

    def rules_for(self, identity: Identity, direction: Direction) -> tuple[RuleView, ...]:
        """The rules that may allow traffic of ``direction`` for pods of ``identity``: those
        of every selecting policy whose ``policyTypes`` include the direction, their pod peers
        resolved to the identities their selector nodes select."""
        return tuple(
            view for policy in isolating(self.selecting(identity), direction)
            for view in rule_views(policy, direction, self._selected_identities)
        )  # fmt: skip

    def _selected_identities(self, scope: NamespaceScope, pods: LabelSelector) -> SelectedIdentities:
        node = selector_node(scope, pods)
        return SelectedIdentities(node, self._selectors[node])


def rule_views(
    policy: NetworkPolicy, direction: Direction, peer_of: Callable[[NamespaceScope, LabelSelector], SelectedIdentities]
) -> tuple[RuleView, ...]:
    """The views of a policy's rules of ``direction``, peers in the order written; ``peer_of``
    resolves a pod peer (the graph: with its identities; an incremental compiler: by selector
    name, its identities kept in its membership)."""
    views = []
    for rule in policy.rules(direction):
        peers: list[PeerView] = [
            peer_of(peer.namespaces, peer.pods) if isinstance(peer, PodPeer) else peer for peer in rule.peers
        ]
        views.append(RuleView(policy.ref, direction, rule.index, None if rule.any_peer else tuple(peers), rule.ports,
                              rule.provenance))  # fmt: skip
    return tuple(views)
