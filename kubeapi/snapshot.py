"""List once: the cluster as the API server holds it now, for one-shot commands.

``policyctl explain`` and ``matrix`` without ``-f`` read the same objects as the agent, through
the same pagination and projections (:mod:`kubeapi.listwatch`, :mod:`kubeapi.projections`)
into the same store (:mod:`kubeapi.store`), but list each resource once instead of watching.

Scope, as kubectl's ``-n``/``-A``: with a namespace, pods and NetworkPolicies of that
namespace only; Namespaces and Nodes are cluster-scoped and always listed whole (namespace
labels decide ``namespaceSelector`` peers, node addresses traffic from a pod's own node). A
user allowed to read only their namespace may be refused those two lists: then they are left
out with a warning, and the semantics sees every namespace with only its
``kubernetes.io/metadata.name`` label, as for a namespace no manifest defines.

The cluster-scoped policy kinds (ClusterNetworkPolicy, AdminNetworkPolicy,
BaselineAdminNetworkPolicy) are listed when the API server serves them, at the version it
serves (:func:`kubeapi.discovery.discover`, ``v1beta1`` before ``v1alpha2``); a kind it does not
serve (no CRD) is no error and is noted at info level. A user refused discovery or the list of
such a kind gets a warning that the verdicts leave that kind out, never a silent omission.

The lists are not one consistent snapshot across resources (the API has none); each is
consistent in itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from policyctl.kubeapi.discovery import Served, discover
from policyctl.kubeapi.errors import ReadError
from policyctl.kubeapi.listwatch import RequestTimeout, list_all
from policyctl.kubeapi.projections import project
from policyctl.kubeapi.resources import CUSTOM_RESOURCES, RESOURCES, Resource
from policyctl.kubeapi.store import ClusterStore
from policyctl.policy.diagnostics import Diagnostic, Severity
from policyctl.policy.cluster import Cluster

_CLUSTER_SCOPED_OPTIONAL = (Resource.NAMESPACES, Resource.NODES, *CUSTOM_RESOURCES)
_FORBIDDEN = (401, 403)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The cluster read, diagnostics (objects left out, lists refused) and the
    resourceVersion of each list."""

    cluster: Cluster
    diagnostics: tuple[Diagnostic, ...] = ()
    resource_versions: Mapping[Resource, str] = field(default_factory=lambda: MappingProxyType({}))


def read_cluster(
    api: Any,
    *,
    namespace: str | None = None,
    page_size: int = 500,
    request_timeout: RequestTimeout = (10.0, 60.0),
) -> Snapshot:
    """List Namespaces, Nodes, Pods and NetworkPolicies (the last two in ``namespace`` when
    given, else in all namespaces), and the cluster-scoped policy kinds the server serves.
    Raises :class:`ReadError` when a needed list fails."""
    store = ClusterStore()
    diagnostics: list[Diagnostic] = []
    versions: dict[Resource, str] = {}
    server = getattr(getattr(api, "configuration", None), "host", "the API server")
    served = _served(api, request_timeout, diagnostics)
    for resource in Resource:
        scoped = namespace if RESOURCES[resource].namespaced else None
        where = f" in namespace {scoped!r}" if scoped else ""
        if RESOURCES[resource].custom and resource not in served:
            continue
        try:
            listing = list_all(api, resource, namespace=scoped, page_size=page_size, request_timeout=request_timeout,
                               served_version=served.version(resource))  # fmt: skip
        except ApiException as error:
            if resource in _CLUSTER_SCOPED_OPTIONAL and error.status in _FORBIDDEN:
                diagnostics.append(Diagnostic(
                    f"cluster:{resource.value}", 0, Severity.WARNING, "cannot-list",
                    f"cannot list {resource.value} ({error.status} {error.reason}): left out; "
                    f"namespaces are seen with only their kubernetes.io/metadata.name label"
                    if resource is Resource.NAMESPACES else
                    f"cannot list {resource.value} ({error.status} {error.reason}): left out; "
                    f"verdicts do not include their tier" if RESOURCES[resource].custom else
                    f"cannot list {resource.value} ({error.status} {error.reason}): left out",
                ))  # fmt: skip
                continue
            raise ReadError(f"cannot list {resource.value}{where} from {server}: "
                            f"{error.status} {error.reason}", status=error.status or 0) from None  # fmt: skip
        except HTTPError as error:
            raise ReadError(f"cannot reach {server} to list {resource.value}: {error}") from None
        projections = []
        for raw in listing.items:
            projection, found = project(resource, raw)
            diagnostics.extend(found)
            if projection is not None:
                projections.append(projection)
        store.replace(resource, projections)
        versions[resource] = listing.resource_version
    return Snapshot(store.snapshot(), tuple(sorted(diagnostics)), MappingProxyType(versions))


def _served(api: Any, request_timeout: RequestTimeout, diagnostics: list[Diagnostic]) -> Served:
    """The custom kinds to list; a kind not served is noted (info), discovery refused warned."""
    try:
        served = discover(api, request_timeout=request_timeout)
    except ReadError as error:
        if error.status not in _FORBIDDEN:
            raise
        diagnostics.append(Diagnostic("cluster:discovery", 0, Severity.WARNING, "cannot-discover",
                                      f"{error}: ClusterNetworkPolicy, AdminNetworkPolicy and "
                                      "BaselineAdminNetworkPolicy left out; verdicts do not include their tiers"))
        return Served()
    for resource in CUSTOM_RESOURCES:
        if resource not in served:
            diagnostics.append(Diagnostic(f"cluster:{resource.value}", 0, Severity.INFO, "not-served",
                                          f"{RESOURCES[resource].kind} is not served by the API server (no CRD): "
                                          f"none to read"))  # fmt: skip
    return served
