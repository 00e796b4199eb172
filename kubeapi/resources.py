"""The four resources policyctl reads, and where the official client lists and watches them.

Everything NetworkPolicy semantics depends on lives in Pods (labels, addresses, node, host
network, named container ports), Namespaces (labels for ``namespaceSelector``), Nodes (their
addresses, for traffic from a pod's own node) and ``networking.k8s.io/v1`` NetworkPolicies.
The RBAC a reader needs is exactly ``list`` and ``watch`` on these four (:data:`RBAC_RULES`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client


class Resource(str, enum.Enum):
    """A watched resource, by its collection name (as in RBAC rules and URL paths)."""

    PODS = "pods"
    NAMESPACES = "namespaces"
    NODES = "nodes"
    NETWORK_POLICIES = "networkpolicies"


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """The kind and API group of a resource, and the names of the generated client's list
    functions (cluster-wide and, for namespaced kinds, in one namespace)."""

    kind: str
    api_version: str
    namespaced: bool
    api_class: str
    list_all: str
    list_namespaced: str | None = None

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


RESOURCES: Mapping[Resource, ResourceInfo] = {
    Resource.PODS: ResourceInfo("Pod", "v1", True, "CoreV1Api",
                                "list_pod_for_all_namespaces", "list_namespaced_pod"),
    Resource.NAMESPACES: ResourceInfo("Namespace", "v1", False, "CoreV1Api", "list_namespace"),
    Resource.NODES: ResourceInfo("Node", "v1", False, "CoreV1Api", "list_node"),
    Resource.NETWORK_POLICIES: ResourceInfo(
        "NetworkPolicy", "networking.k8s.io/v1", True, "NetworkingV1Api",
        "list_network_policy_for_all_namespaces", "list_namespaced_network_policy"),
}  # fmt: skip

#: What a reader needs, as ClusterRole rules: (API group, resource, verbs).
RBAC_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = tuple(
    sorted((info.group, resource.value, ("list", "watch")) for resource, info in RESOURCES.items())
)


def list_function(api: Any, resource: Resource, *, namespace: str | None = None) -> Callable[..., Any]:
    """The generated client's list function for ``resource`` on ``api`` (an ``ApiClient``),
    namespaced when ``namespace`` is given and the kind is namespaced."""
    info = RESOURCES[resource]
    group_api = getattr(client, info.api_class)(api)
    if namespace is not None and info.list_namespaced is not None:
        function = getattr(group_api, info.list_namespaced)

        def namespaced(**kwargs: Any) -> Any:
            return function(namespace, **kwargs)

        return namespaced
    return getattr(group_api, info.list_all)  # type: ignore[no-any-return]
