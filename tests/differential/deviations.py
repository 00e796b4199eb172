"""The documented ways NCA departs from the API (``docs/nca-differences.md``), each as a
rewrite of a cluster that makes policyctl's reference semantics answer as NCA does.

A difference between policyctl and NCA on a pair of pods is *explained* by a set of classes
when policyctl, run on the cluster rewritten by exactly those classes, gives NCA's answer for
that pair. Each rewrite is exact for pod-to-pod connectivity, so an explanation is evidence,
not a guess; a difference no set of classes explains is a disagreement to investigate.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace

from policyctl.policy.model import (
    Direction,
    IPBlockPeer,
    Labels,
    LabelSelector,
    NetworkPolicy,
    Operator,
    OwnNamespace,
    Peer,
    PodPeer,
    PolicyRef,
    Requirement,
    Rule,
    SelectedNamespaces,
)
from policyctl.policy.cluster import Cluster

_NOTHING = PodPeer(
    SelectedNamespaces(LabelSelector.of([Requirement("policyctl.invalid/never", Operator.EXISTS)])), LabelSelector()
)


def _map_peers(cluster: Cluster, change: Callable[[NetworkPolicy, Peer], Peer]) -> Cluster:
    def rules(policy: NetworkPolicy, written: tuple[Rule, ...]) -> tuple[Rule, ...]:
        return tuple(replace(r, peers=tuple(change(policy, p) for p in r.peers)) for r in written)

    policies = tuple(replace(p, ingress=rules(p, p.ingress), egress=rules(p, p.egress)) for p in cluster.policies)
    return replace(cluster, policies=policies)


def ipblocks_never_match_pods(cluster: Cluster, _: Collection[PolicyRef]) -> Cluster:
    """NCA: an ipBlock never matches a pod. Rewrite: every ipBlock peer becomes a peer that
    selects no pod (named ports of egress ipBlock rules, never resolved by NCA, go with it)."""
    return _map_peers(cluster, lambda _, peer: _NOTHING if isinstance(peer, IPBlockPeer) else peer)


def egress_key_adds_egress(cluster: Cluster, egress_keys: Collection[PolicyRef]) -> Cluster:
    """NCA: without policyTypes, an ``egress`` key (even ``egress: []``) adds Egress."""
    policies = tuple(
        replace(p, policy_types=p.policy_types | {Direction.EGRESS}) if p.ref in egress_keys else p
        for p in cluster.policies
    )
    return replace(cluster, policies=policies)


def _existence(selector: LabelSelector) -> bool:
    return any(r.operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) for r in selector.requirements)


def existence_ignores_namespace_selector(cluster: Cluster, _: Collection[PolicyRef]) -> Cluster:
    """NCA: a peer whose podSelector uses Exists/DoesNotExist looks only at the policy's own
    namespace, whatever its namespaceSelector says."""

    def change(policy: NetworkPolicy, peer: Peer) -> Peer:
        if isinstance(peer, PodPeer) and isinstance(peer.namespaces, SelectedNamespaces) and _existence(peer.pods):
            return PodPeer(OwnNamespace(policy.namespace), peer.pods)
        return peer

    return _map_peers(cluster, change)


def missing_namespace_label_is_empty(cluster: Cluster, _: Collection[PolicyRef]) -> Cluster:
    """NCA: a namespace lacking a label key a namespaceSelector names is treated as having
    that key with the value ``""``."""
    keys = {
        r.key
        for p in cluster.policies
        for rule in (*p.ingress, *p.egress)
        for peer in rule.peers
        if isinstance(peer, PodPeer) and isinstance(peer.namespaces, SelectedNamespaces)
        for r in peer.namespaces.selector.requirements
    }
    namespaces = tuple(
        replace(n, labels=Labels({**{k: "" for k in keys}, **dict(n.labels)})) for n in cluster.namespaces
    )
    return replace(cluster, namespaces=namespaces)


CLASSES: Mapping[str, Callable[[Cluster, Collection[PolicyRef]], Cluster]] = {
    "ipblock-pods": ipblocks_never_match_pods,
    "egress-key-defaulting": egress_key_adds_egress,
    "existence-operators-across-namespaces": existence_ignores_namespace_selector,
    "missing-namespace-label": missing_namespace_label_is_empty,
}


def class_sets() -> list[tuple[str, ...]]:
    """Every non-empty set of classes, smallest first: an explanation uses as few as it can."""
    names = sorted(CLASSES)
    return [combo for size in range(1, len(names) + 1) for combo in itertools.combinations(names, size)]


def rewrite(cluster: Cluster, classes: tuple[str, ...], *, egress_keys: Collection[PolicyRef]) -> Cluster:
    for name in classes:
        cluster = CLASSES[name](cluster, egress_keys)
    return cluster
