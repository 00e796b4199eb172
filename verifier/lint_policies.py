"""Lint rules about whole policies: policyTypes left to the API server's default, and rules
that another rule already covers.

API rules they rest on (``NetworkPolicySpec.policyTypes``): "If this field is not specified,
it will default based on the existence of ingress or egress rules; policies that contain an
egress section are assumed to affect egress, and all policies (whether or not they contain an
ingress section) are assumed to affect ingress." So an egress-only policy without policyTypes
also isolates its pods for ingress, and ``egress: []`` without policyTypes restricts nothing
outbound. Policies are additive ("the union of what each allows"), so a rule that another rule
of a policy selecting at least the same pods already covers changes nothing: often a sign that
one of the two is not what was meant.

Coverage is decided syntactically (a subset of selector requirements selects a superset, a port
range inside another, an ipBlock inside another without excepts): sound, not complete. A rule
covered only through the particular pods of the manifests is not reported.
"""

from __future__ import annotations

from collections.abc import Iterator

from policyctl.policy.diagnostics import Diagnostic, Severity, format_path
from policyctl.policy.model import (
    Direction,
    IPBlockPeer,
    NetworkPolicy,
    Peer,
    PodPeer,
    PortMatch,
    Rule,
    SelectedNamespaces,
)
from policyctl.verifier.lint_context import Check, LintContext, LintRule, rule_path

DEFAULTED_TYPES = LintRule(
    "defaulted-policy-types",
    Severity.INFO,
    "policy relies on the API server's default for spec.policyTypes",
    "Without policyTypes the API server sets Ingress always and Egress only when spec.egress "
    "has rules: an egress-only policy then also denies all ingress, and an empty egress list "
    "restricts nothing.",
)
SHADOWED_RULE = LintRule(
    "shadowed-rule",
    Severity.INFO,
    "rule allows nothing that another rule does not already allow",
    "Policies add up: a rule whose peers and ports another rule (of a policy selecting at "
    "least the same pods) already admits has no effect, and one of the two is often not what "
    "was meant.",
)

_DEFAULTED = "spec.policyTypes defaulted"


def defaulted_policy_types(context: LintContext) -> Iterator[Diagnostic]:
    for policy in context.cluster.policies:
        if not any(note.startswith(_DEFAULTED) for note in policy.defaults_applied):
            continue
        placed = context.manifests.placed(policy)
        written_empty_egress = placed is not None and placed.has(("spec", "egress")) and not policy.egress
        if policy.egress and not policy.ingress:
            yield context.finding(
                DEFAULTED_TYPES, policy, ("spec",),
                "policyTypes is not set and spec.egress has rules, so the API server sets "
                "[Ingress, Egress]: this egress policy also denies all ingress to its pods",
                hint="add policyTypes: [Egress] if only egress was meant to be restricted",
                severity=Severity.WARNING,
            )  # fmt: skip
        elif written_empty_egress:
            yield context.finding(
                DEFAULTED_TYPES, policy, ("spec", "egress"),
                "policyTypes is not set and spec.egress is empty, so the API server sets "
                "[Ingress] only: this policy does not restrict egress",
                hint="add policyTypes: [Ingress, Egress] to deny all egress of these pods",
                severity=Severity.WARNING,
            )  # fmt: skip
        else:
            types = ", ".join(sorted(d.value for d in policy.policy_types))
            yield context.finding(
                DEFAULTED_TYPES, policy, ("spec",),
                f"policyTypes is not set; the API server sets [{types}]",
                hint=f"write policyTypes: [{types}] so the intent is explicit",
            )  # fmt: skip


def _port_covers(wide: PortMatch, narrow: PortMatch) -> bool:
    if wide.protocol is not narrow.protocol:
        return False
    if wide.port is None:
        return True
    if isinstance(wide.port, str) or isinstance(narrow.port, str) or narrow.port is None:
        return wide.port == narrow.port
    wide_end = wide.end_port if wide.end_port is not None else wide.port
    narrow_end = narrow.end_port if narrow.end_port is not None else narrow.port
    return wide.port <= narrow.port and narrow_end <= wide_end


def _peer_covers(wide: Peer, narrow: Peer) -> bool:
    if wide == narrow:
        return True
    if isinstance(wide, IPBlockPeer):
        return (
            isinstance(narrow, IPBlockPeer)
            and not wide.excepts
            and narrow.cidr.version == wide.cidr.version
            and narrow.cidr.subnet_of(wide.cidr)  # type: ignore[arg-type]
        )
    if not isinstance(narrow, PodPeer):
        return False
    fewer = set(wide.pods.requirements) <= set(narrow.pods.requirements)
    if isinstance(wide.namespaces, SelectedNamespaces) and wide.namespaces.selector.is_empty:
        return fewer
    if wide.namespaces == narrow.namespaces:
        return fewer
    if isinstance(wide.namespaces, SelectedNamespaces) and isinstance(narrow.namespaces, SelectedNamespaces):
        namespaces_fewer = set(wide.namespaces.selector.requirements) <= set(narrow.namespaces.selector.requirements)
        return fewer and namespaces_fewer
    return False


def _rule_covers(wide: Rule, narrow: Rule) -> bool:
    peers = wide.any_peer or (
        not narrow.any_peer and all(any(_peer_covers(w, n) for w in wide.peers) for n in narrow.peers)
    )
    ports = wide.any_port or (
        not narrow.any_port and all(any(_port_covers(w, n) for w in wide.ports) for n in narrow.ports)
    )
    return peers and ports


def _selects_superset(wide: NetworkPolicy, narrow: NetworkPolicy) -> bool:
    return wide.namespace == narrow.namespace and set(wide.pod_selector.requirements) <= set(
        narrow.pod_selector.requirements
    )


def shadowed_rules(context: LintContext) -> Iterator[Diagnostic]:
    """When two rules cover each other, the later one (namespace/name, direction, index) is
    reported, so exactly one of a duplicate pair is. Only rules of the same namespace can
    cover each other (a policy's podSelector selects in its own namespace), so each rule is
    compared with its namespace's rules only."""
    entries = [
        (policy, rule)
        for policy in context.cluster.policies
        for direction in Direction
        if policy.isolates(direction)
        for rule in policy.rules(direction)
    ]
    by_namespace: dict[str, list[int]] = {}
    for n, (policy, _) in enumerate(entries):
        by_namespace.setdefault(policy.namespace, []).append(n)
    for n, (policy, rule) in enumerate(entries):
        for m in by_namespace[policy.namespace]:
            other, wider = entries[m]
            if m == n or wider.direction is not rule.direction or not _selects_superset(other, policy):
                continue
            if not _rule_covers(wider, rule):
                continue
            if m > n and _rule_covers(rule, wider) and _selects_superset(policy, other):
                continue
            where = f" ({wider.provenance})" if wider.provenance else ""
            yield context.finding(
                SHADOWED_RULE, policy, rule_path(rule),
                f"this rule allows nothing that {other.ref} {format_path(rule_path(wider))}"
                f"{where} does not already allow",
                hint="remove it, or narrow the other rule if this one was meant to be the only way in",
            )  # fmt: skip
            break


CHECKS: tuple[tuple[LintRule, Check], ...] = (
    (DEFAULTED_TYPES, defaulted_policy_types),
    (SHADOWED_RULE, shadowed_rules),
)
