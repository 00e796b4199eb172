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

:func:`footprint` collects exactly that into a hashable value. Equal footprints mean equal
rulesets (a property test holds the compiler to it), so the agent recompiles only when the
footprint moved; :func:`relevant_cluster` then hands the compiler a cluster without the
policies that select no local pod, so the selector graph is built for what N enforces, not
for the world.

Pure: no I/O, deterministic, independent of the order objects arrive in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable

from policyctl.compiler.compile import cluster_families, local_pods, node_addresses
from policyctl.policy.model import (
    Cluster,
    Family,
    IPBlockPeer,
    LabelSelector,
    NamespaceScope,
    NetworkPolicy,
    OwnNamespace,
    Pod,
    PodPeer,
    SelectedNamespaces,
)

Footprint = Hashable


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


def _in_scope(cluster: Cluster, scope: NamespaceScope, pod: Pod) -> bool:
    if isinstance(scope, OwnNamespace):
        return pod.namespace == scope.name
    assert isinstance(scope, SelectedNamespaces)
    return scope.selector.matches(cluster.namespace_labels(pod.namespace))


def _pod_view(pod: Pod) -> tuple[object, ...]:
    """What a peer set can show of a pod: who it is, where it is reached, its named ports."""
    return (pod.key, pod.ips, pod.ports)


def _peer_selectors(policies: Iterable[NetworkPolicy]) -> set[tuple[NamespaceScope, LabelSelector]]:
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
    local = local_pods(cluster, node)
    policies = selecting_local(cluster, local)
    addresses = tuple(node_addresses(cluster, node, family) for family in (Family.IPV4, Family.IPV6))
    parts: list[object] = [
        tuple((pod, pod.provenance) for pod in local),
        addresses,
        cluster_families(cluster),
        tuple(_policy_view(p) for p in policies),
    ]
    candidates = [p for p in cluster.pods if not p.host_network]
    selectors = sorted(_peer_selectors(policies), key=repr)
    for scope, pods in selectors:
        members = sorted(
            (_pod_view(p) for p in candidates if _in_scope(cluster, scope, p) and pods.matches(p.labels)),
            key=lambda view: str(view[0]),
        )
        parts.append((repr((scope, pods)), tuple(members)))
    if _needs_every_pod(policies):
        parts.append(tuple(sorted((_pod_view(p) for p in candidates), key=lambda view: str(view[0]))))
    return tuple(parts)


def relevant_cluster(cluster: Cluster, node: str) -> Cluster:
    """``cluster`` with only the policies that select a local pod of ``node``: the compiler
    gives the same ruleset for it, with a selector graph of what this node enforces."""
    policies = selecting_local(cluster, local_pods(cluster, node))
    if len(policies) == len(cluster.policies):
        return cluster
    return dataclasses.replace(cluster, policies=policies)
