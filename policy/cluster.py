"""A cluster snapshot: every object the semantics reads, namespaced and cluster-scoped.

It sits above both object modules (:mod:`policy.model` for Namespace, Pod, Node and
NetworkPolicy; :mod:`policy.clustermodel` for the cluster-scoped kinds, whose peers and ports
reuse the model's values), so neither imports the other's container.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from policyctl.policy.clustermodel import ClusterNetworkPolicy
from policyctl.policy.model import Labels, Namespace, NetworkPolicy, Node, Pod, undefined_namespace_labels


@dataclass(frozen=True)
class Cluster:
    """A snapshot: everything the semantics needs to decide any connection. Immutable;
    changes make a new snapshot (``dataclasses.replace``). The sequences are tuples, or, from
    the agent's store, :class:`~policy.snapshots.Successor` sequences of shared blocks, which
    read, compare and hash as the tuples of their objects."""

    namespaces: Sequence[Namespace] = ()
    pods: Sequence[Pod] = ()
    nodes: Sequence[Node] = ()
    policies: Sequence[NetworkPolicy] = ()
    cluster_policies: tuple[ClusterNetworkPolicy, ...] = ()
    """ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy objects
    (:mod:`policy.clustermodel`), sorted by tier order (:attr:`ClusterNetworkPolicy.order`)."""

    @cached_property
    def namespace_by_name(self) -> Mapping[str, Namespace]:
        return {n.name: n for n in self.namespaces}

    @cached_property
    def pod_by_key(self) -> Mapping[str, Pod]:
        return {p.key: p for p in self.pods}

    @cached_property
    def node_by_name(self) -> Mapping[str, Node]:
        return {n.name: n for n in self.nodes}

    def namespace_labels(self, name: str) -> Labels:
        """Labels of a namespace; one that is not defined has only the name label, which the
        API server always sets."""
        found = self.namespace_by_name.get(name)
        return found.labels if found else undefined_namespace_labels(name)

    def policies_in(self, namespace: str) -> tuple[NetworkPolicy, ...]:
        return tuple(p for p in self.policies if p.namespace == namespace)
