"""Presentation of ``policyctl explain``: the JSON/YAML document and the human tables.

The document's shape is the contract in ``docs/explain-json.md`` (``schema_version`` 1): keys
are stable, lists are in a fixed order (policies by namespace/name, rules by index, peers and
ports as written), so the same input gives the same bytes. The human output is built from the
same verdict values; it may change between releases, the JSON only with a new schema_version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from policyctl.cli.inputs import console
from policyctl.policy.endpoints import ResolvedEndpoint, workload_label
from policyctl.policy.clustermodel import ClusterPeer, DomainNamesPeer, NodesPeer
from policyctl.policy.model import IPBlockPeer, Node, OwnNamespace, Peer, Pod
from policyctl.policy.portsummary import PortRange, PortSummary, describe_ranges
from policyctl.policy.verdicts import (
    ClusterPolicyResult,
    DirectionVerdict,
    Endpoint,
    PolicyResult,
    RuleResult,
    TierOutcome,
    Verdict,
)

if TYPE_CHECKING:
    from policyctl.verifier.explanations import Finding, Query

SCHEMA_VERSION = 1
ALLOWED = "✔"
DENIED = "✘"

_HALVES: tuple[tuple[str, Callable[[Verdict], DirectionVerdict]], ...] = (
    ("egress", lambda v: v.egress),
    ("ingress", lambda v: v.ingress),
)


# -- JSON / YAML --------------------------------------------------------------------------


def explain_document(query: Query, findings: Sequence[Finding]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "source": _end_json(query.source),
        "destination": _end_json(query.destination),
        "family": query.family.value,
        "port": None if query.port is None else {"port": query.port[0], "protocol": query.port[1].value},
        "allowed": all(f.allowed for f in findings),
        "results": [_finding_json(f) for f in findings],
    }


def _end_json(end: ResolvedEndpoint) -> dict[str, Any]:
    document: dict[str, Any] = {"input": end.text, "kind": end.kind}
    if end.network is not None:
        document["name"] = str(end.network)
    else:
        document["name"] = _name(end.endpoint)
    if isinstance(end.endpoint, Pod):
        document["workload"] = end.endpoint.workload
        document["host_network"] = end.endpoint.host_network
        document["node"] = end.endpoint.node
        document["ips"] = [str(a) for a in end.endpoint.ips]
        document["source"] = _where(end.endpoint.provenance)
    return document


def _finding_json(finding: Finding) -> dict[str, Any]:
    document: dict[str, Any] = {
        "source_addresses": _range_json(finding.source_range),
        "destination_addresses": _range_json(finding.destination_range),
        "allowed": finding.allowed,
    }
    if finding.verdict is not None:
        document["verdict"] = verdict_json(finding.verdict)
    if finding.summary is not None:
        document["ports"] = summary_json(finding.summary)
    return document


def _range_json(piece: Any) -> list[str] | None:
    return None if piece is None else [str(n) for n in piece.networks]


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    return {
        "allowed": verdict.allowed,
        "source_ip": _text(verdict.source_ip),
        "destination_ip": _text(verdict.destination_ip),
        "note": verdict.note,
        "via_service": verdict.connection.via_service,
        "egress": _half_json(verdict.egress, with_ports=True),
        "ingress": _half_json(verdict.ingress, with_ports=True),
    }


def summary_json(summary: PortSummary) -> dict[str, Any]:
    """Allowed port ranges overall and per half, and the port-independent part of each half
    (policies, rules, peers) from the first interval's verdict."""
    sample = summary.intervals[0].verdict
    return {
        "allowed": _ranges_json(summary.ranges()),
        "describe": summary.describe(),
        "egress": {
            "allowed_ports": _ranges_json(summary.ranges(lambda v: v.egress.allowed)),
            **_half_json(sample.egress, with_ports=False),
        },
        "ingress": {
            "allowed_ports": _ranges_json(summary.ranges(lambda v: v.ingress.allowed)),
            **_half_json(sample.ingress, with_ports=False),
        },
    }


def _ranges_json(ranges: Sequence[PortRange]) -> list[dict[str, Any]]:
    return [{"protocol": r.protocol.value, "first": r.first, "last": r.last} for r in ranges if r.allowed]


def _half_json(half: DirectionVerdict, *, with_ports: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "pod": half.pod.key if half.pod else None,
        "isolated": half.isolated,
        "bypass": half.bypass.value if half.bypass else None,
        "note": _note(half, with_ports=with_ports),
        "policies": [_policy_json(p, with_ports=with_ports) for p in half.policies],
        "selecting_without_this_type": [str(r) for r in half.selecting],
        "decided_by": half.decided_by.value,
        "admin": _tier_json(half.admin, with_ports=with_ports),
        "baseline": _tier_json(half.baseline, with_ports=with_ports),
    }
    if with_ports:
        document["allowed"] = half.allowed
        document["hints"] = [{"text": h.text, "source": _where(h.provenance)} for h in half.hints]
    return document


def _tier_json(outcome: TierOutcome | None, *, with_ports: bool) -> dict[str, Any] | None:
    """A cluster-scoped tier as evaluated (None when evaluation never reached it)."""
    if outcome is None:
        return None
    deciding = outcome.deciding
    return {
        "tier": outcome.tier.value,
        "action": outcome.action.value if outcome.action and with_ports else None,
        "decided_by": str(deciding.policy) if deciding is not None and with_ports else None,
        "ambiguous": list(outcome.ambiguous) if with_ports else [],
        "policies": [_cluster_policy_json(p, with_ports=with_ports) for p in outcome.policies],
    }


def _cluster_policy_json(result: ClusterPolicyResult, *, with_ports: bool) -> dict[str, Any]:
    return {
        "policy": str(result.policy),
        "priority": result.priority,
        "source": _where(result.provenance),
        "decision": result.decision.value if result.decision and with_ports else None,
        "rules": [
            {
                "rule": r.rule.label,
                "action": r.rule.action.value,
                "source": _where(r.rule.provenance),
                "matched": r.matched if with_ports else None,
                "peers": [
                    {"peer": describe_peer(p.peer), "matched": p.matched, "reasons": list(p.reasons)} for p in r.peers
                ],
                "ports": [{"port": str(p.port), "matched": p.matched, "reason": p.reason} for p in r.ports],
            }
            for r in result.rules
        ],
    }


def _policy_json(result: PolicyResult, *, with_ports: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "policy": str(result.policy),
        "source": _where(result.provenance),
        "defaults_applied": list(result.defaults_applied),
        "rules": [_rule_json(r, with_ports=with_ports) for r in result.rules],
    }
    if with_ports:
        document["allows"] = result.allows
    return document


def _rule_json(rule: RuleResult, *, with_ports: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "rule": _rule_name(rule),
        "source": _where(rule.provenance),
        "peer_matched": rule.peer_matched,
        "peers": [
            {"peer": describe_peer(p.peer), "matched": p.matched, "reasons": list(p.reasons)} for p in rule.peers
        ],
    }
    if with_ports:
        document["matched"] = rule.matched
        document["ports"] = [
            {"port": str(p.port), "matched": p.matched, "reason": p.reason, "resolved": p.resolved}
            for p in rule.ports
        ]
    else:
        document["ports"] = [{"port": str(p.port)} for p in rule.ports]
    return document


# -- human tables -------------------------------------------------------------------------


def render_explain_table(query: Query, findings: Sequence[Finding], out: Console | None = None) -> None:
    """To ``out``, or to the terminal's console (``policyctl graph`` records the text per edge)."""
    out = out or console()
    asked = "every port" if query.port is None else f"{query.port[0]}/{query.port[1].value}"
    out.print(
        f"{_label(query.source)} → {_label(query.destination)}  {asked}  {query.family.value}",
        style="bold",
    )
    for finding in findings:
        pieces = []
        if finding.source_range is not None:
            pieces.append(f"from {finding.source_range}")
        if finding.destination_range is not None:
            pieces.append(f"to {finding.destination_range}")
        if pieces:
            out.print()
            out.print(" ".join(pieces), style="bold")
        if finding.verdict is not None:
            _render_verdict(out, finding.verdict)
        elif finding.summary is not None:
            _render_summary(out, finding.summary)


def _render_verdict(out: Any, verdict: Verdict) -> None:
    out.print(
        Text(
            f"verdict: {'ALLOWED' if verdict.allowed else 'DENIED'}",
            style="bold green" if verdict.allowed else "bold red",
        )
    )
    if verdict.note:
        out.print(f"note: {verdict.note}")
    for name, half_of in _HALVES:
        half = half_of(verdict)
        out.print()
        where = _half_title(name, half, verdict)
        out.print(Text(f"{where}: {'allowed' if half.allowed else 'denied'}", style="bold"))
        _render_half(out, half, with_ports=True)


def _render_summary(out: Any, summary: PortSummary) -> None:
    allowed = summary.describe()
    out.print(Text(f"ports: {allowed}", style="bold"))
    sample = summary.intervals[0].verdict
    for name, half_of in _HALVES:
        half = half_of(sample)
        out.print()
        ranges = summary.ranges(lambda v: half_of(v).allowed)
        out.print(Text(f"{_half_title(name, half, sample)}: {describe_ranges(ranges)}", style="bold"))
        _render_half(out, half, with_ports=False)


def _render_half(out: Any, half: DirectionVerdict, *, with_ports: bool) -> None:
    note = _note(half, with_ports=with_ports)
    if note:
        out.print(f"  {note}")
    elif half.pod is not None:
        isolation = "isolated" if half.isolated else "not isolated"
        out.print(f"  {half.pod.key} is {isolation} for {half.direction.value}")
    if half.bypass is not None:
        out.print(f"  bypass: {half.bypass.value}")
    if half.admin is not None and half.admin.policies:
        out.print(_tier_tree(half.admin, with_ports=with_ports))
    for result in half.policies:
        out.print(_policy_tree(result, with_ports=with_ports))
    if half.baseline is not None and half.baseline.policies:
        out.print(_tier_tree(half.baseline, with_ports=with_ports))
    for ref in half.selecting:
        out.print(f"  also selects the pod, without {half.direction.value} in policyTypes: {ref}")
    for result in half.policies:
        for default in result.defaults_applied:
            out.print(f"  default applied ({result.policy}): {default}")
    for hint in half.hints if with_ports else ():
        where = f" ({hint.provenance})" if hint.provenance and str(hint.provenance) not in hint.text else ""
        out.print(f"  hint: {hint.text}{where}")


def _note(half: DirectionVerdict, *, with_ports: bool) -> str:
    """The half's note; without a port only when it does not depend on the port (a bypass or
    no isolation), since the sample verdict is for one port."""
    if with_ports or half.bypass is not None or not half.isolated:
        return half.note
    return ""


def _tier_tree(outcome: TierOutcome, *, with_ports: bool) -> Tree:
    """A cluster-scoped tier: its policies in precedence order, each rule up to the first that
    matched, with the action it takes."""
    decided = f": {outcome.action.value} by {outcome.deciding.policy}" if with_ports and outcome.deciding and \
        outcome.action else ""
    tree = Tree(f"{outcome.tier.value} tier{decided}", guide_style="dim")
    for result in outcome.policies:
        where = f" ({result.provenance})" if result.provenance else ""
        branch = tree.add(f"{result.policy} priority {result.priority}{where}")
        for rule in result.rules:
            rule_where = f" (line {rule.rule.provenance.line})" if rule.rule.provenance else ""
            mark = _mark(rule.matched) if with_ports else " "
            leaf = branch.add(f"{mark} {rule.rule.label} {rule.rule.action.value}{rule_where}")
            for peer in rule.peers:
                peer_leaf = leaf.add(f"{_mark(peer.matched)} peer {describe_peer(peer.peer)}")
                for reason in peer.reasons:
                    peer_leaf.add(reason)
            for port in rule.ports:
                leaf.add(
                    f"{_mark(port.matched)} port {port.port}: {port.reason}" if with_ports else f"port {port.port}"
                )
    for text in outcome.ambiguous if with_ports else ():
        tree.add(f"ambiguous: {text}")
    return tree


def _policy_tree(result: PolicyResult, *, with_ports: bool) -> Tree:
    """A policy, its rules, and each rule's peers and ports with ✔/✘ and the reason."""
    where = f" ({result.provenance})" if result.provenance else ""
    mark = f"{_mark(result.allows)} " if with_ports else ""
    tree = Tree(f"{mark}policy {result.policy}{where}", guide_style="dim")
    if not result.rules:
        tree.add(f"{DENIED} no rules: allows nothing in this direction")
    for rule in result.rules:
        rule_where = f" (line {rule.provenance.line})" if rule.provenance else ""
        rule_mark = _mark(rule.matched) if with_ports else _mark(rule.peer_matched)
        branch = tree.add(f"{rule_mark} {_rule_name(rule)}{rule_where}")
        if not rule.peers:
            branch.add(f"{ALLOWED} any peer (no {_peer_field(rule)})")
        for peer in rule.peers:
            leaf = branch.add(f"{_mark(peer.matched)} peer {describe_peer(peer.peer)}")
            for reason in peer.reasons:
                leaf.add(reason)
        if not rule.ports:
            branch.add(f"{ALLOWED} any port (no ports)")
        for port in rule.ports:
            if with_ports:
                branch.add(f"{_mark(port.matched)} port {port.port}: {port.reason}")
            else:
                branch.add(f"port {port.port}")
    return tree


def describe_peer(peer: Peer | ClusterPeer) -> str:
    """A peer as a reader writes it: ``namespaces ns=y AND pods role=client``, ``ipBlock ...``."""
    if isinstance(peer, IPBlockPeer):
        return f"ipBlock {peer}"
    if isinstance(peer, (NodesPeer, DomainNamesPeer)):
        return str(peer)
    if isinstance(peer.namespaces, OwnNamespace):
        namespaces = f"namespace {peer.namespaces.name} (the policy's own)"
    elif peer.namespaces.selector.is_empty:
        namespaces = "namespaceSelector {} (all namespaces)"
    else:
        namespaces = f"namespaceSelector {peer.namespaces.selector}"
    pods = "podSelector {} (all pods)" if peer.pods.is_empty else f"podSelector {peer.pods}"
    return f"{namespaces} AND {pods}"


def _peer_field(rule: RuleResult) -> str:
    return "from" if rule.direction.value == "Ingress" else "to"


def _half_title(name: str, half: DirectionVerdict, verdict: Verdict) -> str:
    address = verdict.source_ip if name == "egress" else verdict.destination_ip
    end = verdict.connection.source if name == "egress" else verdict.connection.destination
    shown = f" ({address})" if address is not None and not _is_address(end) else ""
    return f"{name.capitalize()} at {_name(end)}{shown}"


def _rule_name(rule: RuleResult) -> str:
    return f"{rule.direction.value.lower()}[{rule.index}]"


def _mark(matched: bool) -> str:
    return ALLOWED if matched else DENIED


def _label(end: ResolvedEndpoint) -> str:
    if isinstance(end.endpoint, Pod):
        label = workload_label(end.endpoint)
        return label if label == end.endpoint.key else f"{end.endpoint.key} ({label})"
    return str(end.network) if end.network is not None else _name(end.endpoint)


def _name(end: Endpoint | None) -> str:
    if isinstance(end, Pod):
        return end.key
    if isinstance(end, Node):
        return f"node/{end.name}"
    return str(end)


def _is_address(end: Endpoint) -> bool:
    return not isinstance(end, (Pod, Node))


def _where(provenance: Any) -> str | None:
    return None if provenance is None else str(provenance)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
