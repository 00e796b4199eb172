"""What every lint rule shares: its description, the cluster and documents, selection helpers.

A lint rule is a pure function from a :class:`LintContext` to diagnostics. It looks for
something the API server accepts and the reference semantics decides exactly, but that a
reader of the manifest most likely did not mean (DNS cut off by a default deny, two peers where
one was meant, ...). Every finding points at the field to change and carries a ``hint``.

Rules only speak of pods the manifests contain; where a rule needs pods to say anything (which
pods a peer selects), it stays silent on a cluster without them rather than guess.

Selection works on groups, not pods: pods on the pod network with the same namespace, labels
and container ports are one :class:`PodGroup` (replicas of one workload usually are), each
selector is matched once per group of the namespaces its scope admits, and answers are cached
per selector, so lint costs policies times groups per namespace, not policies times pods. The
matchers are the API's (``LabelSelector.matches`` on pod and namespace labels, as
:func:`policy.peers.match_pod_peer` applies them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

from policyctl.policy.diagnostics import Diagnostic, Severity
from policyctl.policy.model import (
    ContainerPort,
    Direction,
    Labels,
    LabelSelector,
    NetworkPolicy,
    OwnNamespace,
    Pod,
    PodPeer,
    Rule,
)
from policyctl.policy.cluster import Cluster
from policyctl.manifests.yamlsource import Path
from policyctl.verifier.lint_sources import Manifests

RULE_KEYS = {Direction.INGRESS: ("ingress", "from"), Direction.EGRESS: ("egress", "to")}


@dataclass(frozen=True, slots=True)
class LintRule:
    """A rule's stable ``code`` (what SARIF rules and ``--ignore`` key on), its default
    ``severity``, a one-line ``summary`` and ``help``: why it matters, after the API."""

    code: str
    severity: Severity
    summary: str
    help: str


@dataclass(frozen=True, slots=True)
class PodGroup:
    """Pods on the pod network that no selector and no port rule can tell apart (same
    namespace, labels, container ports and address families)."""

    namespace: str
    labels: Labels
    ports: tuple[ContainerPort, ...]
    pods: tuple[Pod, ...]


def _sorted_pods(groups: Iterable[PodGroup]) -> tuple[Pod, ...]:
    return tuple(sorted((p for g in groups for p in g.pods), key=lambda p: p.key))


@dataclass(frozen=True)
class LintContext:
    """The cluster under lint and the documents it came from (empty when built in code)."""

    cluster: Cluster
    manifests: Manifests = field(default_factory=Manifests)

    def finding(
        self,
        rule: LintRule,
        policy: NetworkPolicy,
        path: Path,
        message: str,
        *,
        hint: str,
        severity: Severity | None = None,
    ) -> Diagnostic:
        return self.manifests.finding(
            policy, path, code=rule.code, severity=severity or rule.severity, message=message, hint=hint
        )

    @cached_property
    def _pods(self) -> tuple[Pod, ...]:
        return tuple(sorted((p for p in self.cluster.pods if not p.host_network), key=lambda p: p.key))

    def pods(self) -> tuple[Pod, ...]:
        """Pods a policy can select: every pod but hostNetwork ones."""
        return self._pods

    @cached_property
    def groups(self) -> dict[str, tuple[PodGroup, ...]]:
        """The pods of :meth:`pods` in groups, per namespace."""
        grouped: dict[tuple[str, Labels, tuple[ContainerPort, ...], tuple[int, ...]], list[Pod]] = {}
        for pod in self._pods:
            versions = tuple(sorted({a.version for a in pod.ips}))
            grouped.setdefault((pod.namespace, pod.labels, tuple(pod.ports), versions), []).append(pod)
        found: dict[str, list[PodGroup]] = {}
        for (namespace, labels, ports, _), pods in grouped.items():
            found.setdefault(namespace, []).append(PodGroup(namespace, labels, ports, tuple(pods)))
        return {k: tuple(v) for k, v in found.items()}

    @cached_property
    def _cache(self) -> dict[PodPeer, tuple[PodGroup, ...]]:
        return {}

    @cached_property
    def _namespace_cache(self) -> dict[LabelSelector, tuple[str, ...]]:
        return {}

    def _namespaces(self, selector: LabelSelector) -> tuple[str, ...]:
        found = self._namespace_cache.get(selector)
        if found is None:
            labels = self.cluster.namespace_labels
            found = self._namespace_cache[selector] = tuple(n for n in self.groups if selector.matches(labels(n)))
        return found

    def peer_groups(self, peer: PodPeer) -> tuple[PodGroup, ...]:
        """The groups a pod peer selects: its namespace scope, then its pod selector."""
        found = self._cache.get(peer)
        if found is None:
            if isinstance(peer.namespaces, OwnNamespace):
                namespaces: Iterable[str] = (peer.namespaces.name,)
            else:
                namespaces = self._namespaces(peer.namespaces.selector)
            found = self._cache[peer] = tuple(
                g for n in namespaces for g in self.groups.get(n, ()) if peer.pods.matches(g.labels)
            )
        return found

    def selected_groups(self, policy: NetworkPolicy) -> tuple[PodGroup, ...]:
        """The groups ``spec.podSelector`` selects: "selects particular Pods in the same
        namespace as the NetworkPolicy"."""
        return self.peer_groups(PodPeer(OwnNamespace(policy.namespace), policy.pod_selector))

    def selected(self, policy: NetworkPolicy) -> tuple[Pod, ...]:
        return _sorted_pods(self.selected_groups(policy))

    def peer_pods(self, peer: PodPeer) -> tuple[Pod, ...]:
        return _sorted_pods(self.peer_groups(peer))

    def destination_groups(self, policy: NetworkPolicy, rule: Rule) -> tuple[PodGroup, ...]:
        """The groups a rule's ports are about: the policy's pods for ingress, the pods its
        peers select for egress (every pod when a peer is an ipBlock or the rule has no peers)."""
        if rule.direction is Direction.INGRESS:
            return self.selected_groups(policy)
        if rule.any_peer or not all(isinstance(p, PodPeer) for p in rule.peers):
            return tuple(g for groups in self.groups.values() for g in groups)
        found: dict[int, PodGroup] = {}
        for peer in rule.peers:
            for group in self.peer_groups(peer):  # type: ignore[arg-type]
                found.setdefault(id(group), group)
        return tuple(found.values())

    def destinations(self, policy: NetworkPolicy, rule: Rule) -> tuple[Pod, ...]:
        return _sorted_pods(self.destination_groups(policy, rule))


def rule_path(rule: Rule) -> Path:
    return ("spec", RULE_KEYS[rule.direction][0], rule.index)


def peer_path(rule: Rule, index: int) -> Path:
    return (*rule_path(rule), RULE_KEYS[rule.direction][1], index)


def rules_of(policy: NetworkPolicy) -> tuple[Rule, ...]:
    return (*policy.ingress, *policy.egress)


def pod_list(pods: Iterable[Pod], *, limit: int = 4) -> str:
    """``x/a, x/b and 3 more``: enough to recognise, short enough for an annotation."""
    keys = sorted(p.key for p in pods)
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


Check = Callable[[LintContext], Iterable[Diagnostic]]
