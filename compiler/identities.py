"""Security identities: pods grouped by what a label selector can see of them.

A NetworkPolicy selects pods only through namespace labels (``namespaceSelector``, and the
policy's own namespace, which the ``kubernetes.io/metadata.name`` label names) and pod labels
(``podSelector``). Pods of one namespace with equal labels are therefore indistinguishable to
every selector: they share an :class:`Identity`, and selectors are evaluated once per identity.
Set contents are built from identity -> addresses, so pod churn that does not create a new
identity changes only address elements.

hostNetwork pods have no identity: "a hostNetwork pod is never selected", and as a peer it is
its node's address, which only ipBlocks can match.

Invariants: identities and their members are sorted; an identity's id is a stable hash of its
namespace and labels, independent of which pods currently carry it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from policyctl.policy.model import Family, IPAddress, Labels, Pod
from policyctl.policy.cluster import Cluster


@dataclass(frozen=True, slots=True)
class Identity:
    """What selectors see of a pod: its namespace (whose labels are fixed per snapshot) and
    its own labels."""

    namespace: str
    labels: Labels

    @property
    def sort_key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return (self.namespace, tuple(self.labels.items()))

    @property
    def id(self) -> str:
        text = self.namespace + "\0" + "\0".join(f"{k}={v}" for k, v in self.labels.items())
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def __str__(self) -> str:
        return f"{self.namespace}[{self.labels}]"


def identity_of(pod: Pod) -> Identity | None:
    """The identity of a pod, None for hostNetwork pods (never selected)."""
    if pod.host_network:
        return None
    return Identity(pod.namespace, pod.labels)


@dataclass(frozen=True)
class IdentityIndex:
    """Identities of a cluster and their member pods, sorted."""

    cluster: Cluster

    @cached_property
    def members(self) -> Mapping[Identity, tuple[Pod, ...]]:
        grouped: dict[Identity, list[Pod]] = {}
        for pod in self.cluster.pods:
            identity = identity_of(pod)
            if identity is not None:
                grouped.setdefault(identity, []).append(pod)
        return {i: tuple(sorted(grouped[i], key=lambda p: p.key)) for i in sorted(grouped, key=lambda i: i.sort_key)}

    @property
    def identities(self) -> tuple[Identity, ...]:
        return tuple(self.members)

    def namespace_labels(self, identity: Identity) -> Labels:
        return self.cluster.namespace_labels(identity.namespace)

    def addresses(self, identity: Identity, family: Family) -> tuple[IPAddress, ...]:
        """Addresses of the identity's pods in ``family`` (``Pod.ips`` only), sorted."""
        found = {ip for pod in self.members.get(identity, ()) if (ip := pod.ip(family)) is not None}
        return tuple(sorted(found))
