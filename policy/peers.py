"""Matching one ``NetworkPolicyPeer`` against the other end of a connection, with reasons.

The API rules implemented here (``NetworkPolicyPeer``):

* ``podSelector`` "selects pods ... if present but empty, it selects all pods. If
  namespaceSelector is also set, then the NetworkPolicyPeer as a whole selects the pods
  matching podSelector in the Namespaces selected by NamespaceSelector. Otherwise it selects
  the pods matching podSelector in the policy's own namespace."
* ``namespaceSelector`` "selects namespaces using cluster-scoped labels ... if present but
  empty, it selects all namespaces."
* namespace and pod selector in *one* peer are ANDed; separate peers of a rule are ORed (the
  caller does the OR).
* ``ipBlock``: see :mod:`policy.ipblocks`.

A pod peer only ever matches a pod on the pod network: an external address or a node is not a
pod, and a hostNetwork pod is taken as its node's address (the common implementation the
concepts page describes: "it ignores hostNetwork pods when matching podSelector and
namespaceSelector"), so only ipBlocks can match those ends.

Whether a pod peer matches is :func:`policy.matchers.peer_selects` (the rule every engine calls);
this module adds the reasons. Reasons are deterministic strings that name the failing requirement
and what the end has, so hints can be derived from them and tests can assert on them.
"""

from __future__ import annotations

from collections.abc import Mapping

from policyctl.policy.ipblocks import EndAddress, describe, match_ip_block
from policyctl.policy.matchers import peer_selects
from policyctl.policy.model import Family, IPBlockPeer, LabelSelector, OwnNamespace, Peer, Pod, PodPeer, Requirement
from policyctl.policy.cluster import Cluster
from policyctl.policy.verdicts import Endpoint, PeerResult


def _has(requirement: Requirement, labels: Mapping[str, str]) -> str:
    if requirement.key in labels:
        return f"has {requirement.key}={labels[requirement.key]}"
    return f"has no {requirement.key} label"


def _selector_failures(selector: LabelSelector, labels: Mapping[str, str], *, prefix: str) -> tuple[str, ...]:
    """``<prefix> <requirement> required, has <what the labels have>`` per failing requirement."""
    return tuple(f"{prefix} {r} required, {_has(r, labels)}" for r in selector.failing(labels))


def match_pod_peer(cluster: Cluster, peer: PodPeer, *, other: Endpoint) -> PeerResult:
    """Whether a podSelector/namespaceSelector peer selects ``other``: its namespace is in
    scope AND its labels match ``pods``. Every failing requirement is listed."""
    if not isinstance(other, Pod):
        return PeerResult(peer, False, (f"{describe(other)} is not a pod: only ipBlocks can match it",))
    if other.host_network:
        where = f" (the address of node {other.node})" if other.node else ""
        return PeerResult(peer, False, (f"{other.key} is a hostNetwork pod: only ipBlocks can match it{where}",))
    namespace_labels = cluster.namespace_labels(other.namespace)
    reasons: list[str] = []
    if isinstance(peer.namespaces, OwnNamespace):
        if other.namespace != peer.namespaces.name:
            reasons.append(f"policy namespace {peer.namespaces.name} only: peer is in {other.namespace}")
        else:
            reasons.append(f"namespace {other.namespace} is the policy's namespace")
    else:
        selector = peer.namespaces.selector
        failures = _selector_failures(selector, namespace_labels, prefix=f"namespace {other.namespace}:")
        if failures:
            reasons.extend(failures)
        elif selector.is_empty:
            reasons.append("namespaceSelector {} selects every namespace")
        else:
            reasons.append(f"namespace {other.namespace} has {selector}")
    failures = _selector_failures(peer.pods, other.labels, prefix=f"pod {other.key}: label")
    if failures:
        reasons.extend(failures)
    elif peer.pods.is_empty:
        reasons.append("podSelector {} selects every pod")
    else:
        reasons.append(f"pod {other.key} has {peer.pods}")
    return PeerResult(peer, peer_selects(peer, other, namespace_labels), tuple(reasons))


def match_peer(cluster: Cluster, peer: Peer, *, other: Endpoint, address: EndAddress, family: Family) -> PeerResult:
    """One peer of a rule against the other end of the connection (the source for ingress
    rules, the destination for egress rules)."""
    if isinstance(peer, IPBlockPeer):
        return match_ip_block(peer, other=other, address=address, family=family)
    return match_pod_peer(cluster, peer, other=other)
