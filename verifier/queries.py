"""Questions about a whole policy set, each answered exactly with a witness.

* :func:`equivalent` / :func:`contains`: do two policy sets allow the same flows (one all the
  flows of the other), over every pod pair, port, family and outside address?
* :func:`redundant_policies` / :func:`redundant_rules`: removing the policy (the rule) changes
  no flow. A rule is removed by deleting it from its list, which can isolate more when it was
  the only rule: then it is not redundant.
* :func:`empty_selectors`: a policy's podSelector, or a rule peer, that selects no existing pod
  ("selects nothing"), or that no pod could ever satisfy ("unsatisfiable"); a rule whose ports
  never resolve (a named port no selected pod defines, an endPort below its port).
* :func:`vacuous`: the policy set as a whole changes nothing (every flow would be allowed
  without it).
* :func:`uncovered_pods`: pods that no policy isolates for ingress or for egress.

Findings turn into diagnostics with the file and line of the policy or rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from policyctl.policy.diagnostics import Diagnostic, Severity
from policyctl.policy.model import (
    Direction,
    Family,
    IPBlockPeer,
    LabelSelector,
    NamespaceScope,
    NetworkPolicy,
    OwnNamespace,
    Pod,
    PortMatch,
    Protocol,
    Provenance,
)
from policyctl.policy.cluster import Cluster

from .comparison import Difference, first_difference
from .index import PolicyIndex, ScopedSelector
from .labelspace import label_states
from .redundancy import Candidate, redundant_candidates
from .relation import Relation, cluster_families


@dataclass(frozen=True, slots=True)
class Finding:
    """One answer to a query, ready to become a :class:`Diagnostic`."""

    code: str
    message: str
    provenance: Provenance | None
    object: str = ""
    field: str = ""
    severity: Severity = Severity.WARNING
    hint: str = ""

    def to_diagnostic(self) -> Diagnostic:
        where = self.provenance or Provenance("<cluster>", 0)
        return Diagnostic(
            where.file, where.line, self.severity, self.code, self.message, self.field, self.object, hint=self.hint
        )


@dataclass(frozen=True, slots=True)
class Comparison:
    """``only_first``/``only_second``: a flow one set allows and the other not (None: none)."""

    only_first: Difference | None
    only_second: Difference | None

    @property
    def equivalent(self) -> bool:
        return self.only_first is None and self.only_second is None


def _with_policies(cluster: Cluster, policies: Sequence[NetworkPolicy]) -> Cluster:
    return replace(cluster, policies=tuple(policies))


def compare(first: Cluster, second: Cluster) -> Comparison:
    """Flows each of two clusters (the same pods, different policies) allows and the other not:
    one relation each, compared both ways."""
    found = set(cluster_families(first)) | set(cluster_families(second))
    families = tuple(f for f in Family if f in found)
    a, b = Relation(first, families=families), Relation(second, families=families)
    return Comparison(first_difference(a, b), first_difference(b, a))


def equivalent(first: Cluster, second: Cluster) -> bool:
    return compare(first, second).equivalent


def contains(larger: Cluster, smaller: Cluster) -> Difference | None:
    """None when ``larger`` allows every flow ``smaller`` allows, else a flow it does not."""
    return first_difference(smaller, larger)


def _policy_object(policy: NetworkPolicy) -> str:
    return f"NetworkPolicy {policy.ref}"


def redundant_policies(cluster: Cluster, *, relation: Relation | None = None) -> list[Finding]:
    """Policies whose removal changes no flow."""
    return [f for f in redundancies(cluster, relation=relation) if f.code == "redundant-policy"]


def redundant_rules(cluster: Cluster, *, relation: Relation | None = None) -> list[Finding]:
    """Rules whose removal (from their policy's list) changes no flow."""
    return [f for f in redundancies(cluster, relation=relation) if f.code == "redundant-rule"]


def compare_relations(a: Relation, b: Relation) -> bool:
    return first_difference(a, b) is None and first_difference(b, a) is None


def redundancies(cluster: Cluster, *, relation: Relation | None = None) -> list[Finding]:
    """Redundant policies, then redundant rules, found on one relation
    (:mod:`verifier.redundancy`: each candidate costs the classes it touches)."""
    policies = {p.ref: p for p in cluster.policies}
    return [_finding(policies[c.policy.ref], c) for c in redundant_candidates(relation or Relation(cluster))]


def _finding(policy: NetworkPolicy, candidate: Candidate) -> Finding:
    rule = candidate.rule
    if rule is None:
        return Finding(
            "redundant-policy",
            f"removing {policy.ref} changes no flow: other policies allow and isolate the same",
            policy.provenance,
            _policy_object(policy),
            hint="delete it, or check whether it was meant to select other pods",
        )
    name = rule.direction.value.lower()
    return Finding(
        "redundant-rule",
        f"{policy.ref} {name}[{rule.index}] allows nothing that other rules do not already allow",
        rule.provenance or policy.provenance,
        _policy_object(policy),
        f"spec.{name}[{rule.index}]",
    )


def _satisfiable(selector: LabelSelector) -> bool:
    return any(not failed for failed, _ in label_states([selector]))


def empty_selectors(cluster: Cluster, *, index: PolicyIndex | None = None) -> list[Finding]:
    """Selectors and rules that match nothing (see the module docstring). A scoped selector
    selects some pod when it is in the selector set of some pod on the pod network: one
    lookup per distinct (namespace, labels a selector reads), never a selector times pods."""
    index = index or PolicyIndex(cluster)
    selector_id = {s: i for i, s in enumerate(index.selectors)}
    selected: set[int] = set()
    for pod in cluster.pods:
        if not pod.host_network:
            selected.update(index.selectors_of(pod.namespace, pod.labels))
    named = {(c.name, c.protocol) for p in cluster.pods if not p.host_network for c in p.ports if c.name}

    def selects(namespaces: NamespaceScope, selector: LabelSelector) -> bool:
        return selector_id[ScopedSelector(namespaces, selector)] in selected

    found: list[Finding] = []
    for policy in sorted(cluster.policies, key=lambda p: p.ref):
        obj = _policy_object(policy)
        if not _satisfiable(policy.pod_selector):
            found.append(
                Finding(
                    "unsatisfiable-selector",
                    f"podSelector {policy.pod_selector} can never select a pod",
                    policy.provenance,
                    obj,
                    "spec.podSelector",
                    Severity.ERROR,
                )
            )
        elif not selects(OwnNamespace(policy.namespace), policy.pod_selector):
            found.append(
                Finding(
                    "empty-selector",
                    f"podSelector {policy.pod_selector} selects no pod in namespace {policy.namespace}",
                    policy.provenance,
                    obj,
                    "spec.podSelector",
                )
            )
        for direction in (Direction.INGRESS, Direction.EGRESS):
            name = direction.value.lower()
            side = "from" if direction is Direction.INGRESS else "to"
            for rule in policy.rules(direction):
                where = rule.provenance or policy.provenance
                empty_peers = 0
                for position, peer in enumerate(rule.peers):
                    field = f"spec.{name}[{rule.index}].{side}[{position}]"
                    if isinstance(peer, IPBlockPeer):
                        continue
                    if not _satisfiable(peer.pods) or (
                        not isinstance(peer.namespaces, OwnNamespace) and not _satisfiable(peer.namespaces.selector)
                    ):
                        found.append(
                            Finding(
                                "unsatisfiable-selector",
                                f"peer can never select a pod: {peer.pods}",
                                where,
                                obj,
                                field,
                                Severity.ERROR,
                            )
                        )
                        empty_peers += 1
                    elif not selects(peer.namespaces, peer.pods):
                        found.append(
                            Finding(
                                "empty-selector",
                                f"peer selects no existing pod (pods [{peer.pods}])",
                                where,
                                obj,
                                field,
                                Severity.INFO,
                            )
                        )
                        empty_peers += 1
                if rule.peers and empty_peers == len(rule.peers):
                    found.append(
                        Finding(
                            "empty-rule",
                            f"{name}[{rule.index}]: no peer selects anything, the rule allows nothing",
                            where,
                            obj,
                            f"spec.{name}[{rule.index}]",
                        )
                    )
                if rule.ports and not any(_port_can_match(m, named) for m in rule.ports):
                    found.append(
                        Finding(
                            "empty-rule",
                            f"{name}[{rule.index}]: no port can match, the rule allows nothing",
                            where,
                            obj,
                            f"spec.{name}[{rule.index}].ports",
                        )
                    )
    return found


def _port_can_match(match: PortMatch, named: set[tuple[str, Protocol]]) -> bool:
    if isinstance(match.port, str):
        return (match.port, match.protocol) in named
    return match.port is None or match.end_port is None or match.end_port >= match.port


def vacuous(cluster: Cluster) -> Difference | None:
    """None when the policies change nothing at all; else a flow they deny."""
    return first_difference(_with_policies(cluster, []), cluster)


def uncovered_pods(cluster: Cluster, *, index: PolicyIndex | None = None) -> list[Finding]:
    """Pods no policy isolates, per direction: everything may reach them (ingress) or they may
    reach everything (egress). hostNetwork pods are never selected and are left out. Pods of
    one workload are one finding (the first pod, and how many); isolation is decided once per
    distinct selector set (:meth:`PolicyIndex.applying`), not per pod and policy."""
    index = index or PolicyIndex(cluster)
    grouped: dict[tuple[str, str, Direction], list[Pod]] = {}
    for pod in sorted(cluster.pods, key=lambda p: p.key):
        if pod.host_network:
            continue
        selectors = index.selectors_of(pod.namespace, pod.labels)
        for direction in (Direction.INGRESS, Direction.EGRESS):
            if not index.applying(selectors, direction)[0]:
                unit = pod.workload or f"pod {pod.name}"
                grouped.setdefault((pod.namespace, unit, direction), []).append(pod)
    found = []
    for (namespace, unit, direction), pods in sorted(grouped.items(), key=lambda g: (g[1][0].key, g[0][2].value)):
        first = pods[0]
        more = f" (and {len(pods) - 1} more pods of {unit})" if len(pods) > 1 else ""
        reason = f"no policy selecting it has {direction.value} in policyTypes"
        found.append(
            Finding(
                "uncovered-pod",
                f"{first.key} is not isolated for {direction.value}{more}: {reason}",
                first.provenance,
                f"Pod {first.key}" if not first.workload else f"{first.workload} in {namespace}",
                severity=Severity.INFO,
            )
        )
    return found
