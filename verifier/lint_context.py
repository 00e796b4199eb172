"""What every lint rule shares: its description, the cluster and documents, selection helpers.

A lint rule is a pure function from a :class:`LintContext` to diagnostics. It looks for
something the API server accepts and the reference semantics decides exactly, but that a
reader of the manifest most likely did not mean (DNS cut off by a default deny, two peers where
one was meant, ...). Every finding points at the field to change and carries a ``hint``.

Rules only speak of pods the manifests contain; where a rule needs pods to say anything (which
pods a peer selects), it stays silent on a cluster without them rather than guess.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from policyctl.policy.diagnostics import Diagnostic, Severity
from policyctl.policy.model import Cluster, Direction, NetworkPolicy, Pod, PodPeer, Rule
from policyctl.policy.peers import match_pod_peer
from policyctl.policy.yamlsource import Path
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

    def pods(self) -> tuple[Pod, ...]:
        """Pods a policy can select: every pod but hostNetwork ones."""
        return tuple(p for p in self.cluster.pods if not p.host_network)

    def selected(self, policy: NetworkPolicy) -> tuple[Pod, ...]:
        """The pods ``spec.podSelector`` selects: "selects particular Pods in the same namespace
        as the NetworkPolicy"."""
        return tuple(
            p for p in self.pods() if p.namespace == policy.namespace and policy.pod_selector.matches(p.labels)
        )

    def peer_pods(self, peer: PodPeer) -> tuple[Pod, ...]:
        return tuple(p for p in self.pods() if match_pod_peer(self.cluster, peer, other=p).matched)

    def destinations(self, policy: NetworkPolicy, rule: Rule) -> tuple[Pod, ...]:
        """The pods a rule's ports are about: the policy's pods for ingress, the pods its peers
        select for egress (every pod when a peer is an ipBlock or the rule has no peers)."""
        if rule.direction is Direction.INGRESS:
            return self.selected(policy)
        if rule.any_peer or not all(isinstance(p, PodPeer) for p in rule.peers):
            return self.pods()
        found = {p.key: p for peer in rule.peers if isinstance(peer, PodPeer) for p in self.peer_pods(peer)}
        return tuple(found[k] for k in sorted(found))


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
