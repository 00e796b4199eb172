"""Which custom resources the API server serves, and at which version: API discovery.

ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy exist in a cluster
only while their CustomResourceDefinitions are installed, each at the versions its CRD serves
(network-policy-api v0.3.0 serves ClusterNetworkPolicy at ``v1alpha2`` and ``v1beta1`` with one
schema; the v1alpha1 kinds come from older releases). Asking is the API's discovery, through
the official client: ``GET /apis`` (``ApisApi.get_api_versions``: the served groups and their
versions), then ``GET /apis/policy.networking.k8s.io/{version}``
(``CustomObjectsApi.get_api_resources``: the resources of that version). Discovery is readable
by every authenticated user (the default ``system:discovery`` role), so it needs no RBAC rule.

A kind is read at the first of its versions (:attr:`ResourceInfo.versions`, most preferred
first: ``v1beta1`` before ``v1alpha2``) that the server serves. A kind the server does not
serve is absent, which is no error: a cluster without these CRDs has no such policies. Only
a failed discovery request (other than a 404 for the group or a version) raises
:class:`~kubeapi.errors.ReadError`: then what the server serves is unknown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from policyctl.kubeapi.errors import MalformedResponse, ReadError
from policyctl.kubeapi.listwatch import RequestTimeout
from policyctl.kubeapi.resources import CUSTOM_RESOURCES, RESOURCES, Resource

_NOT_SERVED = 404


@dataclass(frozen=True, slots=True)
class Served:
    """The version each served custom resource is read at; a resource missing is absent."""

    versions: Mapping[Resource, str] = field(default_factory=lambda: MappingProxyType({}))

    def version(self, resource: Resource) -> str | None:
        return self.versions.get(resource)

    def __contains__(self, resource: object) -> bool:
        return resource in self.versions

    def describe(self, resource: Resource) -> str:
        """``clusternetworkpolicies (policy.networking.k8s.io/v1beta1)``, or ``... not served``."""
        version = self.versions.get(resource)
        if version is None:
            return f"{resource.value} (not served)"
        return f"{resource.value} ({RESOURCES[resource].api_version_at(version)})"


def _json(response: Any, what: str) -> Any:
    try:
        data = response.data
    finally:
        response.release_conn()
    try:
        return json.loads(data or b"")
    except ValueError as error:
        raise MalformedResponse(f"{what} is not JSON: {error}") from None


def _group_versions(body: object, group: str) -> list[str]:
    """The versions of ``group`` in an ``APIGroupList``."""
    if not isinstance(body, dict) or not isinstance(body.get("groups"), list):
        raise MalformedResponse("the API group list has no groups")
    for entry in body["groups"]:
        if isinstance(entry, dict) and entry.get("name") == group:
            versions = entry.get("versions")
            listed: list[Any] = versions if isinstance(versions, list) else []
            return [str(v["version"]) for v in listed if isinstance(v, dict) and v.get("version")]
    return []


def _resource_names(body: object, what: str) -> set[str]:
    """The resources of an ``APIResourceList``, subresources (``x/status``) left out."""
    if not isinstance(body, dict) or not isinstance(body.get("resources"), list):
        raise MalformedResponse(f"{what} has no resources")
    names = (r.get("name") for r in body["resources"] if isinstance(r, dict))
    return {n for n in names if isinstance(n, str) and "/" not in n}


def discover(
    api: Any, resources: tuple[Resource, ...] = CUSTOM_RESOURCES, *, request_timeout: RequestTimeout = (10.0, 60.0)
) -> Served:
    """The served versions of ``resources`` (custom ones). Raises :class:`ReadError` when the
    server cannot say (a refused or failed request) and :class:`MalformedResponse` when its
    answer cannot be read."""
    server = getattr(getattr(api, "configuration", None), "host", "the API server")
    groups = {RESOURCES[r].group for r in resources}
    versions: dict[Resource, str] = {}
    try:
        groups_response = client.ApisApi(api).get_api_versions(_preload_content=False, _request_timeout=request_timeout)
        listing = _json(groups_response, "the API group list")
        for group in sorted(groups):
            wanted = [r for r in resources if RESOURCES[r].group == group]
            served: dict[str, set[str]] = {}
            for version in _group_versions(listing, group):
                if not any(version in RESOURCES[r].versions for r in wanted):
                    continue
                what = f"the resource list of {group}/{version}"
                try:
                    response = client.CustomObjectsApi(api).get_api_resources(
                        group, version, _preload_content=False, _request_timeout=request_timeout)
                except ApiException as error:
                    if error.status == _NOT_SERVED:
                        continue
                    raise
                served[version] = _resource_names(_json(response, what), what)
            for resource in wanted:
                found = next((v for v in RESOURCES[resource].versions if resource.value in served.get(v, ())), None)
                if found is not None:
                    versions[resource] = found
    except ApiException as error:
        raise ReadError(f"cannot discover the API groups of {server}: {error.status} {error.reason}",
                        status=error.status or 0) from None  # fmt: skip
    except HTTPError as error:
        raise ReadError(f"cannot reach {server} for API discovery: {error}") from None
    return Served(MappingProxyType({r: versions[r] for r in resources if r in versions}))
