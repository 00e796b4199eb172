"""Per-rule and per-policy packet counters, read back from our table.

The compiler puts an anonymous ``counter`` on every rule that decides a connection and names
in the rule's comment the policy rules it stands for (``x/allow-a ingress[0] a.yaml:12;
y/b ...``; see ``compiler.layout.terse_comment``). Reading the table's listing back therefore
tells, per rule, how many packets took which decision, and per policy, how many packets rules
naming it decided. A rule shared by several policies counts for each of them, so policy totals
are not meant to be added up. Counters restart when a chain is replaced.

``action`` is the rule's final verdict as a decision: ``allow`` (accept), ``deny`` (drop) or
``audit`` (return/continue after a counter: a connection that would be denied, let through in
audit mode). Pure: listing in, sorted values out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policyctl.enforcer.tables import read_table

_ACTIONS = {"accept": "allow", "drop": "deny", "reject": "deny", "return": "audit", "continue": "audit"}


@dataclass(frozen=True, slots=True, order=True)
class RuleCounter:
    chain: str
    position: int
    comment: str
    action: str
    packets: int
    bytes: int


@dataclass(frozen=True, slots=True, order=True)
class PolicyCounter:
    """Packets decided by rules whose comment names ``policy`` (``namespace/name``), by
    action."""

    policy: str
    allow: int = 0
    deny: int = 0
    audit: int = 0


def _counted(expr: Iterable[Any]) -> tuple[int, int, str] | None:
    packets = bytes_ = 0
    seen = False
    action = ""
    for statement in expr:
        if not isinstance(statement, dict):
            continue
        counter = statement.get("counter", False)
        if isinstance(counter, dict):
            seen = True
            packets += int(counter.get("packets", 0))
            bytes_ += int(counter.get("bytes", 0))
        for verdict in _ACTIONS:
            if verdict in statement:
                action = _ACTIONS[verdict]
    return (packets, bytes_, action) if seen else None


def rule_counters(
    listing: Mapping[str, Any], *, family: str = "inet", table: str = "policyctl"
) -> tuple[RuleCounter, ...]:
    """Every rule of our table that carries a counter, with its comment and decision."""
    state = read_table(listing, family=family, table=table, source="<kernel>", strict=False)
    found: list[RuleCounter] = []
    for chain in state.chains.values():
        for position, rule in enumerate(chain.rules):
            counted = _counted(rule.body.get("expr", []))
            if counted is not None:
                packets, bytes_, action = counted
                comment = str(rule.body.get("comment", ""))
                found.append(RuleCounter(chain.name, position, comment, action or "count", packets, bytes_))
    return tuple(sorted(found))


def policies_named(comment: str) -> tuple[str, ...]:
    """``x/allow-a ingress[0] a.yaml:12; y/b isolates ingress +more`` -> ``("x/allow-a", "y/b")``:
    the first word of each ``;``-separated source, when it is ``namespace/name``."""
    named = set()
    for source in comment.split(";"):
        words = source.split()
        if words and words[0].count("/") == 1 and not words[0].startswith("+"):
            named.add(words[0])
    return tuple(sorted(named))


def policy_counters(counters: Iterable[RuleCounter]) -> tuple[PolicyCounter, ...]:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: {"allow": 0, "deny": 0, "audit": 0})
    for counter in counters:
        if counter.action not in ("allow", "deny", "audit"):
            continue
        for policy in policies_named(counter.comment):
            totals[policy][counter.action] += counter.packets
    return tuple(PolicyCounter(policy, **by_action) for policy, by_action in sorted(totals.items()))
