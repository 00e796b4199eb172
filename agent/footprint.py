"""What of a cluster one node's ruleset depends on, so events that cannot change it are skipped.

``compile_node(cluster, node)`` reads, for a node N:

* N's local pods (scheduled on N, not hostNetwork): their addresses key the dispatch maps,
  their labels decide which policies select them, their named ports resolve ingress ports;
* N's own addresses and those of hostNetwork pods on N (the ``node`` sets);
* the policies that select a local pod ("podSelector selects the pods to which this
  NetworkPolicy object applies", within the policy's namespace): only their rules become
  chains and sets on N. A policy that selects no local pod before and after a change cannot
  change N's ruleset;
* for pod peers of those policies: the pods the peer selects (namespace labels and pod labels
  decide membership) with their addresses and container ports;
* for egress named ports reached through ipBlocks or "any peer": every pod's addresses and
  ports (a named port resolves on whichever pod the destination turns out to be);
* which address families exist in the cluster at all (pod-peer sets exist only for those).

:func:`footprint` collects exactly that into a hashable value; :class:`Footprints` computes
the same value for a stream of snapshots from what changed since the previous one. Equal footprints mean equal
rulesets (a property test holds the compiler to it), so the agent recompiles only when the
footprint moved; :func:`relevant_cluster` then hands the compiler a cluster without the
policies that select no local pod, so the selector graph is built for what N enforces, not
for the world.

Pure: no I/O, deterministic, independent of the order objects arrive in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable, Mapping

from policyctl.compiler.compile import cluster_families, local_pods, node_addresses
from policyctl.policy.model import (
    Cluster,
    Family,
    IPBlockPeer,
    Labels,
    LabelSelector,
    NamespaceScope,
    NetworkPolicy,
    OwnNamespace,
    Pod,
    PodPeer,
    SelectedNamespaces,
)

Footprint = Hashable
Selector = tuple[NamespaceScope, LabelSelector]
_PodView = tuple[object, ...]


def selecting_local(cluster: Cluster, local: Iterable[Pod]) -> tuple[NetworkPolicy, ...]:
    """Policies whose ``podSelector`` selects at least one of ``local`` in the policy's own
    namespace, sorted by reference."""
    by_namespace: dict[str, list[Pod]] = {}
    for pod in local:
        by_namespace.setdefault(pod.namespace, []).append(pod)
    chosen = [
        p
        for p in cluster.policies
        if any(p.pod_selector.matches(pod.labels) for pod in by_namespace.get(p.namespace, ()))
    ]
    return tuple(sorted(chosen, key=lambda p: p.ref))


def _pod_view(pod: Pod) -> _PodView:
    """What a peer set can show of a pod: who it is, where it is reached, its named ports."""
    return (pod.key, pod.ips, pod.ports)


def _peer_selectors(policies: Iterable[NetworkPolicy]) -> set[Selector]:
    return {
        (peer.namespaces, peer.pods)
        for policy in policies
        for rule in policy.ingress + policy.egress
        for peer in rule.peers
        if isinstance(peer, PodPeer)
    }


def _needs_every_pod(policies: Iterable[NetworkPolicy]) -> bool:
    """An egress rule with a named port whose peers are addresses (ipBlock) or anyone: the
    port resolves on every pod that could be the destination."""
    for policy in policies:
        for rule in policy.egress:
            named = any(isinstance(m.port, str) for m in rule.ports)
            if named and (rule.any_peer or any(isinstance(peer, IPBlockPeer) for peer in rule.peers)):
                return True
    return False


def _policy_view(policy: NetworkPolicy) -> tuple[object, ...]:
    """The policy as compared for equality, plus the provenance that ends up in comments
    (``compare=False`` on the model hides it from ``==``)."""
    return (policy, policy.provenance, tuple(r.provenance for r in policy.ingress + policy.egress))


def footprint(cluster: Cluster, node: str) -> Footprint:
    """Everything ``compile_node(cluster, node)`` depends on (see the module docstring)."""
    return Footprints(node)(cluster)


class Footprints:
    """:func:`footprint` of one node over a sequence of snapshots, reusing the previous work.

    Most of a footprint is the membership of the peer selectors of the local policies, which
    a scan of every pod recomputes (at 10k pods, a quarter of a second per event). Snapshots share the
    ``Pod`` objects that did not change, so the pods that changed between two snapshots are
    the ones whose identity is new or gone; only they are matched against the cached
    selectors. Namespace labels decide selector scope for every pod, so any change to the
    namespaces drops the cache. The value returned is always equal to a fresh
    :func:`footprint` of the same snapshot (a property test holds it to that)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._pods: dict[int, Pod] = {}
        self._namespaces: tuple[object, ...] | None = None
        self._members: dict[Selector, dict[str, _PodView]] = {}
        self._frozen: dict[Selector, frozenset[_PodView]] = {}
        self._every: dict[str, _PodView] | None = None
        self._every_frozen: frozenset[_PodView] = frozenset()
        self._names: dict[Selector, str] = {}

    def __call__(self, cluster: Cluster) -> Footprint:
        local = local_pods(cluster, self.node)
        policies = selecting_local(cluster, local)
        addresses = tuple(node_addresses(cluster, self.node, family) for family in (Family.IPV4, Family.IPV6))
        parts: list[object] = [
            tuple((pod, pod.provenance) for pod in local),
            addresses,
            cluster_families(cluster),
            tuple(_policy_view(p) for p in policies),
        ]
        namespace_labels = {n.name: n.labels for n in cluster.namespaces}
        candidates = {id(p): p for p in cluster.pods if not p.host_network}
        if cluster.namespaces != self._namespaces:
            self._members.clear()
            self._frozen.clear()
            self._namespaces = cluster.namespaces
        gone = [p for i, p in self._pods.items() if i not in candidates]
        new = [p for i, p in candidates.items() if i not in self._pods]
        self._pods = candidates
        wanted = _peer_selectors(policies)
        for selector in [s for s in self._members if s not in wanted]:
            del self._members[selector], self._frozen[selector]
        for selector, members in self._members.items():
            if self._update(members, gone, new, lambda pod, s=selector: _selects(s, pod, cluster, namespace_labels)):
                self._frozen[selector] = frozenset(members.values())
        fresh = [s for s in wanted if s not in self._members]
        if fresh:
            by_namespace: dict[str, list[Pod]] = {}
            for pod in candidates.values():
                by_namespace.setdefault(pod.namespace, []).append(pod)
            for selector in fresh:
                members = {
                    pod.key: _pod_view(pod)
                    for namespace in _namespaces_in_scope(selector[0], by_namespace, cluster, namespace_labels)
                    for pod in by_namespace[namespace]
                    if selector[1].matches(pod.labels)
                }
                self._members[selector] = members
                self._frozen[selector] = frozenset(members.values())
        self._names = {s: self._name(s) for s in wanted}
        for selector in sorted(wanted, key=self._name):
            parts.append((self._name(selector), self._frozen[selector]))
        if _needs_every_pod(policies):
            if self._every is None:
                self._every = {pod.key: _pod_view(pod) for pod in candidates.values()}
                self._every_frozen = frozenset(self._every.values())
            elif self._update(self._every, gone, new, lambda pod: True):
                self._every_frozen = frozenset(self._every.values())
            parts.append(self._every_frozen)
        else:
            self._every = None
        return tuple(parts)

    def _name(self, selector: Selector) -> str:
        name = self._names.get(selector)
        if name is None:
            name = self._names[selector] = repr(selector)
        return name

    @staticmethod
    def _update(members: dict[str, _PodView], gone: list[Pod], new: list[Pod], selects: Callable[[Pod], bool]) -> bool:
        changed = False
        for pod in gone:
            if members.get(pod.key) == _pod_view(pod):
                del members[pod.key]
                changed = True
        for pod in new:
            if selects(pod):
                members[pod.key] = _pod_view(pod)
                changed = True
        return changed


def _selects(selector: Selector, pod: Pod, cluster: Cluster, namespace_labels: Mapping[str, Labels]) -> bool:
    scope, pods = selector
    if isinstance(scope, OwnNamespace):
        in_scope = pod.namespace == scope.name
    else:
        assert isinstance(scope, SelectedNamespaces)
        labels = namespace_labels.get(pod.namespace)
        in_scope = scope.selector.matches(labels if labels is not None else cluster.namespace_labels(pod.namespace))
    return in_scope and pods.matches(pod.labels)


def _namespaces_in_scope(
    scope: NamespaceScope, by_namespace: Mapping[str, list[Pod]], cluster: Cluster, namespace_labels: Mapping[str, Labels]
) -> list[str]:
    if isinstance(scope, OwnNamespace):
        return [scope.name] if scope.name in by_namespace else []
    assert isinstance(scope, SelectedNamespaces)
    return [
        name
        for name in by_namespace
        if scope.selector.matches(namespace_labels[name] if name in namespace_labels else cluster.namespace_labels(name))
    ]


def relevant_cluster(cluster: Cluster, node: str) -> Cluster:
    """``cluster`` with only the policies that select a local pod of ``node``: the compiler
    gives the same ruleset for it, with a selector graph of what this node enforces."""
    policies = selecting_local(cluster, local_pods(cluster, node))
    if len(policies) == len(cluster.policies):
        return cluster
    return dataclasses.replace(cluster, policies=policies)
