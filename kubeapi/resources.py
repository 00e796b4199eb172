"""The resources policyctl reads, and where the official client lists and watches them.

Everything NetworkPolicy semantics depends on lives in Pods (labels, addresses, node, host
network, named container ports), Namespaces (labels for ``namespaceSelector``), Nodes (their
addresses, for traffic from a pod's own node, and labels, for ``nodes`` peers) and
``networking.k8s.io/v1`` NetworkPolicies. The tiers around NetworkPolicy come from the
cluster-scoped ``policy.networking.k8s.io`` kinds: ClusterNetworkPolicy (``v1beta1`` or
``v1alpha2``, the same schema), AdminNetworkPolicy and BaselineAdminNetworkPolicy
(``v1alpha1``). Those are custom resources: a cluster serves them only when their CRD is
installed, and at the versions its CRD serves, so which of them are read, and at which version,
is discovered (:mod:`kubeapi.discovery`); they are listed and watched through
``CustomObjectsApi``. The RBAC a reader needs is exactly ``list`` and ``watch`` on these seven
(:data:`RBAC_RULES`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

#: The API group of ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy.
CLUSTER_POLICY_GROUP = "policy.networking.k8s.io"


class Resource(str, enum.Enum):
    """A watched resource, by its collection name (as in RBAC rules and URL paths)."""

    PODS = "pods"
    NAMESPACES = "namespaces"
    NODES = "nodes"
    NETWORK_POLICIES = "networkpolicies"
    CLUSTER_NETWORK_POLICIES = "clusternetworkpolicies"
    ADMIN_NETWORK_POLICIES = "adminnetworkpolicies"
    BASELINE_ADMIN_NETWORK_POLICIES = "baselineadminnetworkpolicies"


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """The kind and API group of a resource, and the names of the generated client's list
    functions (cluster-wide and, for namespaced kinds, in one namespace). A custom resource
    (``custom``) is listed through ``CustomObjectsApi`` at one of ``versions`` (most preferred
    first; ``api_version`` is the first), whichever the API server serves."""

    kind: str
    api_version: str
    namespaced: bool
    api_class: str
    list_all: str
    list_namespaced: str | None = None
    versions: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def custom(self) -> bool:
        """Served only while its CustomResourceDefinition is installed."""
        return bool(self.versions)

    def api_version_at(self, version: str | None) -> str:
        """``group/version`` of this kind at ``version`` (None: :attr:`api_version`)."""
        return self.api_version if version is None else f"{self.group}/{version}" if self.group else version


def _custom(kind: str, *versions: str) -> ResourceInfo:
    return ResourceInfo(kind, f"{CLUSTER_POLICY_GROUP}/{versions[0]}", False, "CustomObjectsApi",
                        "list_cluster_custom_object", versions=versions)  # fmt: skip


RESOURCES: Mapping[Resource, ResourceInfo] = {
    Resource.PODS: ResourceInfo("Pod", "v1", True, "CoreV1Api",
                                "list_pod_for_all_namespaces", "list_namespaced_pod"),
    Resource.NAMESPACES: ResourceInfo("Namespace", "v1", False, "CoreV1Api", "list_namespace"),
    Resource.NODES: ResourceInfo("Node", "v1", False, "CoreV1Api", "list_node"),
    Resource.NETWORK_POLICIES: ResourceInfo(
        "NetworkPolicy", "networking.k8s.io/v1", True, "NetworkingV1Api",
        "list_network_policy_for_all_namespaces", "list_namespaced_network_policy"),
    Resource.CLUSTER_NETWORK_POLICIES: _custom("ClusterNetworkPolicy", "v1beta1", "v1alpha2"),
    Resource.ADMIN_NETWORK_POLICIES: _custom("AdminNetworkPolicy", "v1alpha1"),
    Resource.BASELINE_ADMIN_NETWORK_POLICIES: _custom("BaselineAdminNetworkPolicy", "v1alpha1"),
}  # fmt: skip

#: The resources that are custom (their CRD may be absent), in :class:`Resource` order.
CUSTOM_RESOURCES: tuple[Resource, ...] = tuple(r for r in Resource if RESOURCES[r].custom)

#: What a reader needs, as ClusterRole rules: (API group, resource, verbs).
RBAC_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = tuple(
    sorted((info.group, resource.value, ("list", "watch")) for resource, info in RESOURCES.items())
)


def list_function(
    api: Any, resource: Resource, *, namespace: str | None = None, version: str | None = None
) -> Callable[..., Any]:
    """The generated client's list function for ``resource`` on ``api`` (an ``ApiClient``),
    namespaced when ``namespace`` is given and the kind is namespaced; a custom resource at
    ``version`` (default: its most preferred one)."""
    info = RESOURCES[resource]
    group_api = getattr(client, info.api_class)(api)
    if info.custom:
        custom = group_api.list_cluster_custom_object
        at = version or info.versions[0]

        def cluster_custom(**kwargs: Any) -> Any:
            return custom(info.group, at, resource.value, **kwargs)

        return cluster_custom
    if namespace is not None and info.list_namespaced is not None:
        function = getattr(group_api, info.list_namespaced)

        def namespaced(**kwargs: Any) -> Any:
            return function(namespace, **kwargs)

        return namespaced
    return getattr(group_api, info.list_all)
