"""The API's matching rules, each written once: the oracle, the compiler and the verifier call these.

Every engine asks the same four questions, over pods (the oracle), security identities (the
compiler) or views (the verifier); the answer depends only on namespace name and labels, pod
labels and container ports, so one function answers each for all of them:

* **namespace scope** (:func:`scope_matches`): a peer without ``namespaceSelector`` "selects
  particular Pods in the same namespace as the NetworkPolicy"; a ``namespaceSelector`` "selects
  namespaces using cluster-scoped labels ... if present but empty, it selects all namespaces".
* **pod peer** (:func:`peer_selects`): namespace scope AND ``podSelector`` ("selects the pods
  matching podSelector in the Namespaces selected by NamespaceSelector"), for pods on the pod
  network only (docs/semantics.md: a hostNetwork pod is its node's address).
* **port** (:func:`port_ranges`, :func:`named_port_numbers`): ``port`` unset "matches all port
  names and numbers", ``port``..``endPort`` inclusive, a named port resolved on the destination
  pod's container ports with that name and the rule's protocol (nothing when the destination is
  not a pod on the pod network).
* **a policy's subject** (:func:`subject_of`, :func:`subject_selects`, :func:`selecting`,
  :func:`isolating`): a NetworkPolicy's ``podSelector`` "selects the pods to which this
  NetworkPolicy object applies" in its own namespace, and isolates them in the directions of its
  ``policyTypes``; a cluster-scoped policy's ``subject`` selects pods by namespace AND pod
  labels ("host-networked pods are not included in subject selection"), and "CNPs with no
  ingress rules do not affect ingress traffic" (likewise egress).

The oracle's reasons (:mod:`policy.peers`, :mod:`policy.ports`) explain these answers; they do
not decide them again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from policyctl.policy.clustermodel import ClusterNetworkPolicy
from policyctl.policy.model import (
    Direction,
    LabelSelector,
    NamespaceScope,
    NetworkPolicy,
    OwnNamespace,
    Pod,
    PodPeer,
    PortMatch,
    Protocol,
)

AnyPolicy = NetworkPolicy | ClusterNetworkPolicy
P = TypeVar("P", NetworkPolicy, ClusterNetworkPolicy, AnyPolicy)

PortRange = tuple[int, int]
"""An inclusive range of destination port numbers."""

NamedPortResolver = Callable[[str, Protocol], tuple[int, ...]]
"""The numbers a (name, protocol) resolves to on a connection's destination."""


def scope_matches(scope: NamespaceScope, namespace: str, namespace_labels: Mapping[str, str]) -> bool:
    """Whether a peer's (or subject's) namespace part admits ``namespace``."""
    if isinstance(scope, OwnNamespace):
        return namespace == scope.name
    return scope.selector.matches(namespace_labels)


def selects(
    scope: NamespaceScope, pods: LabelSelector, namespace: str, namespace_labels: Mapping[str, str],
    labels: Mapping[str, str],
) -> bool:
    """Whether a scoped pod selector selects a pod with ``labels`` in ``namespace`` (AND)."""
    return scope_matches(scope, namespace, namespace_labels) and pods.matches(labels)


def on_pod_network(end: object) -> bool:
    """Only a pod on the pod network is selected by a pod peer or a subject, and has named ports."""
    return isinstance(end, Pod) and not end.host_network


def peer_selects(peer: PodPeer, pod: Pod, namespace_labels: Mapping[str, str]) -> bool:
    """Whether a ``podSelector``/``namespaceSelector`` peer selects ``pod``."""
    return on_pod_network(pod) and selects(peer.namespaces, peer.pods, pod.namespace, namespace_labels, pod.labels)


# ports -----------------------------------------------------------------------------------


def named_port_numbers(destination: object, name: str, protocol: Protocol) -> tuple[int, ...]:
    """The container port numbers named ``name`` with ``protocol`` on ``destination``, sorted;
    none when the destination is not a pod on the pod network (a hostNetwork pod is taken as
    its node's address)."""
    if not isinstance(destination, Pod) or destination.host_network:
        return ()
    return tuple(sorted({c.port for c in destination.ports if c.name == name and c.protocol is protocol}))


def resolver_on(destination: object) -> NamedPortResolver:
    """Named ports resolved on one destination end."""
    return lambda name, protocol: named_port_numbers(destination, name, protocol)


def port_ranges(match: PortMatch, named: NamedPortResolver) -> tuple[PortRange, ...] | None:
    """The destination ports ``match`` admits for its protocol: None for every port (``port``
    unset), ``port``..``endPort`` (empty when ``endPort`` is below ``port``), or each number
    the named port resolves to through ``named``."""
    if match.port is None:
        return None
    if isinstance(match.port, int):
        high = match.end_port if match.end_port is not None else match.port
        return ((match.port, high),) if high >= match.port else ()
    return tuple((n, n) for n in named(match.port, match.protocol))


def port_admits(match: PortMatch, protocol: Protocol, number: int, named: NamedPortResolver) -> bool:
    """Whether ``match`` admits a connection to ``number``/``protocol``."""
    if match.protocol is not protocol:
        return False
    ranges = port_ranges(match, named)
    return ranges is None or any(low <= number <= high for low, high in ranges)


# subjects --------------------------------------------------------------------------------


def subject_of(policy: AnyPolicy) -> tuple[NamespaceScope, LabelSelector]:
    """The scoped selector of the pods a policy applies to: a NetworkPolicy's ``podSelector``
    in its own namespace, a cluster-scoped policy's ``subject``."""
    if isinstance(policy, NetworkPolicy):
        return OwnNamespace(policy.namespace), policy.pod_selector
    return policy.subject.namespaces, policy.subject.pods


def subject_selects(
    policy: AnyPolicy, namespace: str, namespace_labels: Mapping[str, str], labels: Mapping[str, str]
) -> bool:
    """Whether ``policy`` applies to a pod on the pod network with ``labels`` in ``namespace``."""
    scope, pods = subject_of(policy)
    return selects(scope, pods, namespace, namespace_labels, labels)


def takes_part(policy: AnyPolicy, direction: Direction) -> bool:
    """Whether a policy that selects a pod has a say in ``direction``: a NetworkPolicy with the
    direction in ``policyTypes`` isolates the pod; a cluster-scoped policy needs rules in it."""
    if isinstance(policy, NetworkPolicy):
        return policy.isolates(direction)
    return bool(policy.rules(direction))


def selecting(policies: Iterable[P], pod: Pod, namespace_labels: Mapping[str, str]) -> tuple[P, ...]:
    """The policies among ``policies`` that select ``pod``, in the order given (none for a
    hostNetwork pod: "policies never select" it)."""
    if not on_pod_network(pod):
        return ()
    return tuple(p for p in policies if subject_selects(p, pod.namespace, namespace_labels, pod.labels))


def isolating(policies: Iterable[P], direction: Direction) -> tuple[P, ...]:
    """The policies (among those selecting a pod) that have a say in ``direction``."""
    return tuple(p for p in policies if takes_part(p, direction))
