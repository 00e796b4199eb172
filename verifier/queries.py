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
from policyctl.policy.model import Cluster, Direction, IPBlockPeer, LabelSelector, NetworkPolicy, OwnNamespace, Provenance
from policyctl.policy.semantics import selecting_policies

from .comparison import Difference, first_difference
from .labelspace import label_states
from .relation import Relation


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
        return Diagnostic(where.file, where.line, self.severity, self.code, self.message, self.field, self.object, hint=self.hint)


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
    """Flows each of two clusters (the same pods, different policies) allows and the other not."""
    return Comparison(first_difference(first, second), first_difference(second, first))


def equivalent(first: Cluster, second: Cluster) -> bool:
    return compare(first, second).equivalent


def contains(larger: Cluster, smaller: Cluster) -> Difference | None:
    """None when ``larger`` allows every flow ``smaller`` allows, else a flow it does not."""
    return first_difference(smaller, larger)


def _policy_object(policy: NetworkPolicy) -> str:
    return f"NetworkPolicy {policy.ref}"


def redundant_policies(cluster: Cluster) -> list[Finding]:
    """Policies whose removal changes no flow."""
    found = []
    base = Relation(cluster)
    for policy in sorted(cluster.policies, key=lambda p: p.ref):
        without = _with_policies(cluster, [p for p in cluster.policies if p.ref != policy.ref])
        if compare_relations(base, Relation(without, families=base.families)):
            found.append(
                Finding(
                    "redundant-policy",
                    f"removing {policy.ref} changes no flow: other policies allow and isolate the same",
                    policy.provenance,
                    _policy_object(policy),
                    hint="delete it, or check whether it was meant to select other pods",
                )
            )
    return found


def compare_relations(a: Relation, b: Relation) -> bool:
    return first_difference(a, b) is None and first_difference(b, a) is None


def redundant_rules(cluster: Cluster) -> list[Finding]:
    """Rules whose removal (from their policy's list) changes no flow."""
    found = []
    base = Relation(cluster)
    for policy in sorted(cluster.policies, key=lambda p: p.ref):
        for direction in (Direction.INGRESS, Direction.EGRESS):
            if not policy.isolates(direction):
                continue
            rules = policy.rules(direction)
            for rule in rules:
                kept = tuple(r for r in rules if r.index != rule.index)
                changed = replace(policy, ingress=kept) if direction is Direction.INGRESS else replace(policy, egress=kept)
                others = [changed if p.ref == policy.ref else p for p in cluster.policies]
                if compare_relations(base, Relation(_with_policies(cluster, others), families=base.families)):
                    name = direction.value.lower()
                    found.append(
                        Finding(
                            "redundant-rule",
                            f"{policy.ref} {name}[{rule.index}] allows nothing that other rules do not already allow",
                            rule.provenance or policy.provenance,
                            _policy_object(policy),
                            f"spec.{name}[{rule.index}]",
                        )
                    )
    return found


def _satisfiable(selector: LabelSelector) -> bool:
    return any(not failed for failed, _ in label_states([selector]))


def empty_selectors(cluster: Cluster) -> list[Finding]:
    """Selectors and rules that match nothing (see the module docstring)."""
    found: list[Finding] = []
    pods = [p for p in cluster.pods if not p.host_network]

    def selects(namespaces: object, selector: LabelSelector) -> list[str]:
        chosen = []
        for pod in pods:
            if isinstance(namespaces, OwnNamespace):
                in_scope = pod.namespace == namespaces.name
            else:
                in_scope = namespaces.selector.matches(cluster.namespace_labels(pod.namespace))  # type: ignore[attr-defined]
            if in_scope and selector.matches(pod.labels):
                chosen.append(pod.key)
        return chosen

    for policy in sorted(cluster.policies, key=lambda p: p.ref):
        obj = _policy_object(policy)
        if not _satisfiable(policy.pod_selector):
            found.append(Finding("unsatisfiable-selector", f"podSelector {policy.pod_selector} can never select a pod", policy.provenance, obj, "spec.podSelector", Severity.ERROR))
        elif not selects(OwnNamespace(policy.namespace), policy.pod_selector):
            found.append(Finding("empty-selector", f"podSelector {policy.pod_selector} selects no pod in namespace {policy.namespace}", policy.provenance, obj, "spec.podSelector"))
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
                        found.append(Finding("unsatisfiable-selector", f"peer can never select a pod: {peer.pods}", where, obj, field, Severity.ERROR))
                        empty_peers += 1
                    elif not selects(peer.namespaces, peer.pods):
                        found.append(Finding("empty-selector", f"peer selects no existing pod (pods [{peer.pods}])", where, obj, field, Severity.INFO))
                        empty_peers += 1
                if rule.peers and empty_peers == len(rule.peers):
                    found.append(Finding("empty-rule", f"{name}[{rule.index}]: no peer selects anything, the rule allows nothing", where, obj, f"spec.{name}[{rule.index}]"))
                if rule.ports and not any(_port_can_match(m, cluster) for m in rule.ports):
                    found.append(Finding("empty-rule", f"{name}[{rule.index}]: no port can match, the rule allows nothing", where, obj, f"spec.{name}[{rule.index}].ports"))
    return found


def _port_can_match(match: object, cluster: Cluster) -> bool:
    port = getattr(match, "port", None)
    if isinstance(port, str):
        return any(c.name == port and c.protocol is match.protocol for p in cluster.pods if not p.host_network for c in p.ports)  # type: ignore[attr-defined]
    end = getattr(match, "end_port", None)
    return port is None or end is None or end >= port


def vacuous(cluster: Cluster) -> Difference | None:
    """None when the policies change nothing at all; else a flow they deny."""
    return first_difference(_with_policies(cluster, []), cluster)


def uncovered_pods(cluster: Cluster) -> list[Finding]:
    """Pods no policy isolates, per direction: everything may reach them (ingress) or they may
    reach everything (egress). hostNetwork pods are never selected and are left out."""
    found = []
    for pod in sorted(cluster.pods, key=lambda p: p.key):
        if pod.host_network:
            continue
        policies = selecting_policies(cluster, pod)
        for direction in (Direction.INGRESS, Direction.EGRESS):
            if not any(p.isolates(direction) for p in policies):
                found.append(
                    Finding(
                        "uncovered-pod",
                        f"{pod.key} is not isolated for {direction.value}: no policy selecting it has {direction.value} in policyTypes",
                        pod.provenance,
                        f"Pod {pod.key}" if not pod.workload else f"{pod.workload} in {pod.namespace}",
                        severity=Severity.INFO,
                    )
                )
    return found

