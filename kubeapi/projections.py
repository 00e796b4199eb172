"""Slim projections of raw API objects into :mod:`policy.model` values.

A reader keeps only what NetworkPolicy semantics needs, never whole objects: for a pod its
namespace, name, uid, labels, ``status.podIPs``, ``spec.nodeName``, ``spec.hostNetwork``,
``status.phase`` and named container ports; for a namespace its labels; for a node its
addresses, labels and ``spec.podCIDRs``; a NetworkPolicy as the parsed, defaulted
:class:`~policy.model.NetworkPolicy`; a ClusterNetworkPolicy, AdminNetworkPolicy or
BaselineAdminNetworkPolicy as the :class:`~policy.clustermodel.ClusterNetworkPolicy` it means.
Parsing goes through the same functions as manifests (``manifests.objects``,
``manifests.loader.parse_network_policy``, ``manifests.clusterparse.parse_cluster_policy``), so
defaults and validation are identical whether a policy came from a file or from the API server.

Invariants:

* A pod that is pending or has no addresses yet is kept: its labels already decide which
  policies select it and which peers it matches; its addresses come with a later event.
* A pod in a terminal phase (``Succeeded``, ``Failed``) is kept without addresses: the API
  leaves ``status.podIPs`` on it, but the address is released and may already belong to
  another pod.
* Provenance names the object in the API (``cluster:networkpolicies/shop/deny``), since there
  is no file and line.
* An object the parser refuses (which the API server would not have stored, unless the two
  disagree) yields the diagnostics saying why, and no value; except the policies, which fail
  closed (:func:`refused_policy`, :func:`kubeapi.clusterpolicies.refused_cluster_policy`):
  leaving one out would open traffic its author closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Union

from policyctl.kubeapi.clusterpolicies import refused_cluster_policy
from policyctl.kubeapi.resources import RESOURCES, Resource
from policyctl.policy.clustermodel import ClusterNetworkPolicy
from policyctl.manifests.clusterparse import parse_cluster_policy
from policyctl.policy.diagnostics import Diagnostic, Severity
from policyctl.manifests.fields import Site
from policyctl.manifests.loader import parse_network_policy
from policyctl.policy.model import Direction, LabelSelector, Namespace, NetworkPolicy, Node, Pod, Provenance
from policyctl.manifests.objects import parse_namespace, parse_node, parse_pod
from policyctl.manifests.selectors_parsing import parse_label_selector
from policyctl.manifests.yamlsource import Document

ModelObject = Union[Pod, Namespace, Node, NetworkPolicy, ClusterNetworkPolicy]

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True, slots=True)
class Projection:
    """One object as a reader keeps it: its store key (``namespace/name``, or ``name`` for
    cluster-scoped kinds), uid, resourceVersion, pod phase (empty for other kinds) and the
    model value. Two projections with equal ``value`` mean the same to the semantics."""

    key: str
    uid: str
    resource_version: str
    value: ModelObject
    phase: str = ""


def object_key(resource: Resource, raw: Mapping[str, Any]) -> str:
    """The store key of a raw object (also of the incomplete objects in DELETED events)."""
    meta = raw.get("metadata") or {}
    name = str(meta.get("name") or "")
    if RESOURCES[resource].namespaced:
        return f"{meta.get('namespace') or 'default'}/{name}"
    return name


def _slim(resource: Resource, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the parsers read, with ``apiVersion``/``kind`` set (list items lack them)
    and without what the API adds that manifests do not carry (``status`` of a policy). A
    custom resource keeps the version it was served at."""
    info = RESOURCES[resource]
    api_version = info.api_version
    if info.custom and raw.get("apiVersion") in {info.api_version_at(v) for v in info.versions}:
        api_version = str(raw["apiVersion"])
    value: dict[str, Any] = {"apiVersion": api_version, "kind": info.kind, "metadata": raw.get("metadata") or {}}
    policy = resource is Resource.NETWORK_POLICIES or info.custom
    for part in ("spec",) if policy else ("spec", "status"):
        if raw.get(part) is not None:
            value[part] = raw[part]
    return value


REFUSED_WARNING = "refused by policyctl's parser: enforced as isolating the pods it selects and allowing nothing"


def refused_policy(value: Mapping[str, Any], *, key: str, site: Site) -> tuple[NetworkPolicy, Diagnostic]:
    """A NetworkPolicy the API server stored but this parser refuses, failing closed: it
    isolates the pods it selects ("podSelector selects the pods to which this NetworkPolicy
    object applies") in the directions it would isolate, and allows nothing, so a policy we
    cannot read never opens what its author closed. Its ``podSelector`` is used when it can
    be read, else every pod of its namespace. Its ``policyTypes`` are used when they can be
    read, else the API default (Ingress, plus Egress when it has an ``egress`` section)."""
    spec = found if isinstance(found := value.get("spec"), Mapping) else {}
    namespace, _, name = key.partition("/")
    selector, _ = parse_label_selector(spec.get("podSelector"), site=site, path=("spec", "podSelector"))
    named = {"Ingress": Direction.INGRESS, "Egress": Direction.EGRESS}
    listed = spec.get("policyTypes")
    if isinstance(listed, list) and listed and all(t in named for t in listed):
        types = frozenset(named[t] for t in listed)
    else:
        types = frozenset({Direction.INGRESS} | ({Direction.EGRESS} if spec.get("egress") else set()))
    policy = NetworkPolicy(
        namespace=namespace,
        name=name,
        pod_selector=selector if selector is not None else LabelSelector(),
        policy_types=types,
        provenance=Provenance(f"cluster:networkpolicies/{key}", 1),
        warnings=(REFUSED_WARNING,),
    )
    scope = "the pods its podSelector selects" if selector is not None else f"every pod of namespace {namespace}"
    directions = " and ".join(sorted(d.value for d in types))
    notice = site.diagnostic((), "fails-closed", f"NetworkPolicy {key} is enforced as isolating {scope} for "
                             f"{directions} and allowing nothing, until it can be read",
                             severity=Severity.WARNING)
    return policy, notice


def project(resource: Resource, raw: Mapping[str, Any]) -> tuple[Projection | None, list[Diagnostic]]:
    """The projection of one raw API object of ``resource``, and any diagnostics."""
    key = object_key(resource, raw)
    value = _slim(resource, raw)
    document = Document(f"cluster:{resource.value}/{key}", 0, value)
    site = Site(document, (), f"{RESOURCES[resource].kind} {key}")
    parsed: tuple[ModelObject | None, list[Diagnostic]]
    if resource is Resource.PODS:
        parsed = parse_pod(value, site=site)
    elif resource is Resource.NAMESPACES:
        parsed = parse_namespace(value, site=site)
    elif resource is Resource.NODES:
        parsed = parse_node(value, site=site)
    elif resource is Resource.NETWORK_POLICIES:
        parsed = parse_network_policy(value, document=document)
    else:
        parsed = parse_cluster_policy(value, kind=RESOURCES[resource].kind, site=site)
    obj, diagnostics = parsed
    if obj is None and resource is Resource.NETWORK_POLICIES:
        obj, notice = refused_policy(value, key=key, site=site)
        diagnostics = [*diagnostics, notice]
    elif obj is None and RESOURCES[resource].custom:
        obj, notice = refused_cluster_policy(value, kind=RESOURCES[resource].kind, key=key, site=site)
        diagnostics = [*diagnostics, notice]
    if obj is None:
        return None, diagnostics
    meta = raw.get("metadata") or {}
    status = found if isinstance(found := raw.get("status"), Mapping) else {}
    phase = str(status.get("phase") or "") if resource is Resource.PODS else ""
    if isinstance(obj, Pod) and phase in TERMINAL_PHASES:
        obj = replace(obj, ips=())
    return Projection(key, str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""),
                      obj, phase), diagnostics  # fmt: skip
