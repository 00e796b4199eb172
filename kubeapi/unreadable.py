"""What a reader keeps of an object whose projection raised instead of returning.

:func:`~kubeapi.projections.project` refuses what it cannot parse with diagnostics; raising is
a parser bug, met with input nobody foresaw. The reader must survive it (one object must not
take a whole resource's cache down) and must not open traffic because of it, so the object
is read the way a refused one is:

* a NetworkPolicy **fails closed** (:func:`~kubeapi.projections.refused_policy`): it isolates
  the pods it selects, or every pod of its namespace when its ``podSelector`` cannot be read
  either, and allows nothing;
* a ClusterNetworkPolicy, AdminNetworkPolicy or BaselineAdminNetworkPolicy fails closed too
  (:func:`~kubeapi.clusterpolicies.refused_cluster_policy`): a rule that cannot be read denies
  everything (Deny, Pass) or matches nothing (Accept); left out only when even that reading
  raises or cannot be made;
* an object of any other resource is left out, as a refused one is.

A resource whose objects can open or close traffic on their own (as a NetworkPolicy does)
gets its entry in :data:`STAND_INS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Union

from policyctl.kubeapi.clusterpolicies import refused_cluster_policy
from policyctl.kubeapi.projections import Projection, object_key, refused_policy
from policyctl.kubeapi.resources import CUSTOM_RESOURCES, RESOURCES, Resource
from policyctl.manifests.fields import Site
from policyctl.manifests.yamlsource import Document

StandIn = Callable[[Resource, Mapping[str, Any], str], Union[Projection, None]]


def _failing_closed_policy(resource: Resource, raw: Mapping[str, Any], key: str) -> Projection:
    spec = raw.get("spec")
    value = {"spec": spec if isinstance(spec, Mapping) else {}}
    site = Site(Document(f"cluster:{resource.value}/{key}", 0, value), (), f"{RESOURCES[resource].kind} {key}")
    try:
        policy, _ = refused_policy(value, key=key, site=site)
    except Exception:
        policy, _ = refused_policy({"spec": {}}, key=key, site=site)
    meta = found if isinstance(found := raw.get("metadata"), Mapping) else {}
    return Projection(key, str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""), policy)


def _failing_closed_cluster_policy(resource: Resource, raw: Mapping[str, Any], key: str) -> Projection | None:
    info = RESOURCES[resource]
    value = {"apiVersion": info.api_version, "kind": info.kind, "metadata": {"name": key},
             "spec": raw.get("spec") if isinstance(raw.get("spec"), Mapping) else {}}  # fmt: skip
    site = Site(Document(f"cluster:{resource.value}/{key}", 0, value), (), f"{info.kind} {key}")
    try:
        policy, _ = refused_cluster_policy(value, kind=info.kind, key=key, site=site)
    except Exception:
        return None
    if policy is None:
        return None
    meta = found if isinstance(found := raw.get("metadata"), Mapping) else {}
    return Projection(key, str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""), policy)


STAND_INS: Mapping[Resource, StandIn] = {
    Resource.NETWORK_POLICIES: _failing_closed_policy,
    **{resource: _failing_closed_cluster_policy for resource in CUSTOM_RESOURCES},
}


def unreadable(resource: Resource, raw: Mapping[str, Any]) -> Projection | None:
    """The stand-in for ``raw`` (None: leave it out). Never raises."""
    stand_in = STAND_INS.get(resource)
    if stand_in is None:
        return None
    return stand_in(resource, raw, object_key(resource, raw))
