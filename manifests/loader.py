"""Manifests -> a :class:`~policy.cluster.Cluster`, as the API server would hold them.

Input forms: files, directories (walked as a repository: :mod:`manifests.walk`; documents that
are not Kubernetes objects are skipped with a note, :mod:`manifests.triage`), ``-`` for standard
input; multi-document YAML; JSON; ``kind: List`` and typed lists
(``PodList``, ``NetworkPolicyList``, any ``*List`` with ``items``), whose items without a
``kind`` take it from the list.

Objects read: Namespace, Pod, Node, NetworkPolicy (``networking.k8s.io/v1``), the cluster-scoped
ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy (:mod:`manifests.clusterparse`)
and the pod templates of Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob (see
:mod:`manifests.objects`). Other kinds are counted in :attr:`LoadResult.skipped`, which every command
reports.

Invariants:

* NetworkPolicies are defaulted (:mod:`manifests.defaults`) and validated
  (:mod:`manifests.validation`); an object the API server would refuse is reported with every
  reason and left out of the cluster.
* A namespaced object without ``metadata.namespace`` goes to ``default_namespace`` (what
  ``kubectl apply`` does with the current context's namespace); a namespace that objects live
  in but that no manifest defines is added with only its ``kubernetes.io/metadata.name``
  label and no provenance.
* A second object of the same kind, namespace and name is a ``duplicate-object`` warning and
  replaces the first, which is what ``kubectl apply`` of both would leave.
* Output is deterministic: namespaces by name, pods by key, nodes by name, policies by
  namespace/name, diagnostics by file and line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TextIO

from policyctl.policy.clustermodel import ClusterNetworkPolicy
from policyctl.manifests.clusterparse import CLUSTER_POLICY_KINDS, parse_cluster_policy
from policyctl.manifests.defaults import build_network_policy
from policyctl.policy.diagnostics import Diagnostic, Severity, has_errors
from policyctl.manifests.fields import Site
from policyctl.manifests.inputlimits import DEFAULT_LIMITS, InputLimits
from policyctl.manifests.manifestfiles import read_inputs
from policyctl.policy.model import NAMESPACE_NAME_LABEL, Labels, Namespace, NetworkPolicy, Node, Pod
from policyctl.policy.cluster import Cluster
from policyctl.manifests.objects import (
    WORKLOAD_TEMPLATES,
    parse_namespace,
    parse_node,
    parse_pod,
    parse_workload,
    provenance_of,
)
from policyctl.manifests.triage import Skipped
from policyctl.manifests.validation import validate_network_policy
from policyctl.manifests.yamlsource import Document, Path

_CLUSTER_SCOPED = frozenset({"Namespace", "Node", *CLUSTER_POLICY_KINDS})


@dataclass(frozen=True)
class LoadResult:
    """The cluster read, every diagnostic, and the count of objects of kinds policyctl does
    not read (kind -> count)."""

    cluster: Cluster
    diagnostics: tuple[Diagnostic, ...] = ()
    skipped: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    skipped_files: tuple[Skipped, ...] = ()
    """Files and documents read and not taken as objects (not Kubernetes, Helm, Kustomize)."""

    @property
    def ok(self) -> bool:
        """No ERROR diagnostics: the input is what the API server would accept."""
        return not has_errors(self.diagnostics)


def _object_label(kind: str, value: Mapping[str, object], default_namespace: str) -> str:
    meta = value.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    name = meta.get("name") if isinstance(meta.get("name"), str) else "?"
    if kind in _CLUSTER_SCOPED:
        return f"{kind} {name}"
    namespace = meta.get("namespace")
    namespace = namespace if isinstance(namespace, str) and namespace else default_namespace
    return f"{kind} {namespace}/{name}"


def parse_network_policy(
    value: Mapping[str, Any],
    *,
    document: Document,
    path: tuple[str | int, ...] = (),
    default_namespace: str = "default",
) -> tuple[NetworkPolicy | None, list[Diagnostic]]:
    """One NetworkPolicy at ``path`` of ``document``, defaulted and validated as the API
    server would: the policy (``None`` when the API server would refuse it) and every
    diagnostic, with lines from the document and field paths relative to the policy."""
    site = Site(document, tuple(path), _object_label("NetworkPolicy", value, default_namespace))
    diagnostics = validate_network_policy(value, site=site)
    if has_errors(diagnostics) or document.has_defect_under(tuple(path)):
        return None, diagnostics
    metadata = value.get("metadata") or {}
    namespace = str(metadata.get("namespace") or default_namespace)
    policy, warnings = build_network_policy(
        value, site=site, namespace=namespace, provenance=provenance_of(site)
    )
    return policy, diagnostics + warnings


class _Collector:
    """Objects as they are read, keyed for duplicate detection."""

    def __init__(self, default_namespace: str) -> None:
        self.default_namespace = default_namespace
        self.namespaces: dict[str, Namespace] = {}
        self.pods: dict[str, Pod] = {}
        self.nodes: dict[str, Node] = {}
        self.policies: dict[tuple[str, str], NetworkPolicy] = {}
        self.cluster_policies: dict[tuple[str, str], ClusterNetworkPolicy] = {}
        self.pod_kinds: dict[str, str] = {}
        self.diagnostics: list[Diagnostic] = []
        self.skipped: Counter[str] = Counter()

    def _replace(self, table: dict[Any, Any], key: object, obj: object, *, site: Site, what: str) -> None:
        previous = table.get(key)
        if previous is not None:
            self.diagnostics.append(site.diagnostic(
                (), "duplicate-object",
                f"{what} is defined again (first at {previous.provenance}); the last one wins",
                severity=Severity.WARNING,
            ))  # fmt: skip
        table[key] = obj

    def add_object(self, value: Mapping[str, object], *, kind: str, site: Site) -> None:
        ns = self.default_namespace
        if kind == "NetworkPolicy":
            policy, found = parse_network_policy(
                value, document=site.document, path=site.base, default_namespace=ns
            )
            self.diagnostics.extend(found)
            if policy is not None:
                self._replace(self.policies, (policy.namespace, policy.name), policy,
                              site=site, what=f"NetworkPolicy {policy.ref}")  # fmt: skip
            return
        if kind in CLUSTER_POLICY_KINDS:
            cluster_policy, found = parse_cluster_policy(value, kind=kind, site=site)
            self.diagnostics.extend(found)
            if cluster_policy is not None and not site.document.has_defect_under(site.base):
                self._replace(self.cluster_policies, (kind, cluster_policy.name), cluster_policy,
                              site=site, what=str(cluster_policy))  # fmt: skip
            return
        parsed: tuple[object, list[Diagnostic]]
        if kind == "Namespace":
            parsed = parse_namespace(value, site=site)
        elif kind == "Node":
            parsed = parse_node(value, site=site)
        elif kind == "Pod":
            parsed = parse_pod(value, site=site, default_namespace=ns)
        else:
            parsed = parse_workload(value, kind=kind, site=site, default_namespace=ns)
        obj, found = parsed
        self.diagnostics.extend(found)
        if obj is None or site.document.has_defect_under(site.base):
            return
        if isinstance(obj, Namespace):
            self._replace(self.namespaces, obj.name, obj, site=site, what=f"Namespace {obj.name}")
        elif isinstance(obj, Node):
            self._replace(self.nodes, obj.name, obj, site=site, what=f"Node {obj.name}")
        elif isinstance(obj, Pod):
            self._add_pod(obj, kind=kind, site=site)

    def _add_pod(self, pod: Pod, *, kind: str, site: Site) -> None:
        earlier = self.pod_kinds.get(pod.key)
        if earlier is not None and earlier != kind:
            self.diagnostics.append(site.diagnostic(
                (), "duplicate-object",
                f"{kind} {pod.key} stands for the same pod name as {earlier} {pod.key} "
                f"(at {self.pods[pod.key].provenance}); the last one wins",
                severity=Severity.WARNING,
            ))  # fmt: skip
            self.pods[pod.key] = pod
        else:
            self._replace(self.pods, pod.key, pod, site=site, what=f"{kind} {pod.key}")
        self.pod_kinds[pod.key] = kind

    def add_value(self, document: Document, value: object, path: Path, *, kind: str = "") -> None:
        """One object, or a list of them, at ``path`` of ``document``."""
        site = Site(document, path)
        if not isinstance(value, Mapping):
            self.diagnostics.append(site.diagnostic(
                (), "not-an-object", "expected a Kubernetes object (a map with apiVersion and kind)"
            ))  # fmt: skip
            return
        written_kind = value.get("kind")
        if written_kind is not None and not isinstance(written_kind, str):
            self.diagnostics.append(site.diagnostic(("kind",), "invalid-type", "kind must be a string"))
            return
        kind = written_kind or kind
        if not kind:
            self.diagnostics.append(site.diagnostic((), "missing-kind", "object has no kind"))
            return
        if kind.endswith("List") and "items" in value:
            self._add_list(document, value, path, kind=kind)
            return
        foreign = _foreign_kind(kind, value.get("apiVersion"))
        if kind not in _HANDLED_KINDS or foreign:
            self._skip(foreign or kind, site)
            return
        label = _object_label(kind, value, self.default_namespace)
        self.add_object(value, kind=kind, site=Site(document, path, label))

    def _skip(self, kind: str, site: Site) -> None:
        """Count an object of a kind policyctl does not read; the first of each kind is
        reported where it is: a warning for a policy-like kind (its traffic rules are not
        enforced or analysed), otherwise a note."""
        self.skipped[kind] += 1
        if self.skipped[kind] > 1:
            return
        if is_policy_like(kind):
            self.diagnostics.append(site.diagnostic(
                (), "unread-policy-kind",
                f"{kind} is a policy kind policyctl does not read: its rules are neither enforced nor "
                "analysed here, and every verdict ignores them",
                severity=Severity.WARNING,
            ))  # fmt: skip
        else:
            self.diagnostics.append(site.diagnostic(
                (), "skipped-kind", f"{kind} is not a kind policyctl reads: skipped", severity=Severity.INFO
            ))  # fmt: skip

    def _add_list(self, document: Document, value: Mapping[str, object], path: Path, *, kind: str) -> None:
        items = value.get("items")
        if items is None:
            return
        if not isinstance(items, list):
            self.diagnostics.append(Site(document, path).diagnostic(
                ("items",), "invalid-type", "expected a list of objects"
            ))  # fmt: skip
            return
        item_kind = kind[: -len("List")]
        for i, item in enumerate(items):
            self.add_value(document, item, (*path, "items", i), kind=item_kind)

    def cluster(self) -> Cluster:
        namespaces = dict(self.namespaces)
        used = [p.namespace for p in self.pods.values()] + [ns for ns, _ in self.policies]
        for name in used:
            if name not in namespaces:
                namespaces[name] = Namespace(name, Labels({NAMESPACE_NAME_LABEL: name}))
        return Cluster(
            namespaces=tuple(namespaces[k] for k in sorted(namespaces)),
            pods=tuple(self.pods[k] for k in sorted(self.pods)),
            nodes=tuple(self.nodes[k] for k in sorted(self.nodes)),
            policies=tuple(self.policies[k] for k in sorted(self.policies)),
            cluster_policies=tuple(
                sorted(self.cluster_policies.values(), key=lambda p: (p.tier != p.tier.ADMIN, p.order))
            ),
        )


#: The API group each read policy kind is served from; the same kind name in another group
#: (Calico's or Antrea's NetworkPolicy, Antrea's ClusterNetworkPolicy) is another API.
_POLICY_GROUPS = {
    "NetworkPolicy": "networking.k8s.io",
    **{kind: "policy.networking.k8s.io" for kind in CLUSTER_POLICY_KINDS},
}
_POLICY_LIKE = frozenset({"Tier", "NetworkSet", "GlobalNetworkSet", "ClusterGroup", "Group", "Egress"})


def _foreign_kind(kind: str, api_version: object) -> str | None:
    """``NetworkPolicy (projectcalico.org/v3)`` for a read kind name of another API group."""
    group = _POLICY_GROUPS.get(kind)
    if group is None or not isinstance(api_version, str) or "/" not in api_version:
        return None
    return None if api_version.split("/")[0] == group else f"{kind} ({api_version})"


def is_policy_like(kind: str) -> bool:
    """Kinds that carry traffic rules in some CNI's API (Cilium, Calico, Antrea, ...)."""
    return "Policy" in kind or kind.split(" ")[0] in _POLICY_LIKE


_HANDLED_KINDS = frozenset({"Namespace", "Pod", "Node", "NetworkPolicy", *CLUSTER_POLICY_KINDS, *WORKLOAD_TEMPLATES})


def load_documents(
    documents: Sequence[Document], *, default_namespace: str = "default"
) -> LoadResult:
    """Read objects from documents already parsed (see :func:`manifests.yamlsource.read_documents`)."""
    collector = _Collector(default_namespace)
    for document in documents:
        if document.value is not None:
            collector.add_value(document, document.value, ())
    return LoadResult(
        cluster=collector.cluster(),
        diagnostics=tuple(sorted(collector.diagnostics)),
        skipped=MappingProxyType(dict(sorted(collector.skipped.items()))),
    )


def load(
    paths: Sequence[str],
    *,
    stdin: TextIO | None = None,
    default_namespace: str = "default",
    limits: InputLimits = DEFAULT_LIMITS,
) -> LoadResult:
    """Read manifests from files, directories (recursively) and ``-`` (standard input, or
    ``stdin`` when given) into a cluster, with every diagnostic; reading is bounded by
    ``limits`` (:mod:`manifests.manifestfiles`)."""
    sources = read_inputs(paths, stdin=stdin, limits=limits)
    result = load_documents(sources.documents, default_namespace=default_namespace)
    return LoadResult(
        cluster=result.cluster,
        diagnostics=tuple(sorted(sources.diagnostics + result.diagnostics)),
        skipped=result.skipped,
        skipped_files=sources.skipped,
    )
