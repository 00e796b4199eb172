"""Send the drop log of a compiled ruleset to an NFLOG group.

The compiler logs every denied new connection once, in the rule just before the drop, behind a
rate limit (``limit rate 10/second burst 20 packets log prefix "policyctl drop isolated ingress "``),
so the accept path never logs and a flood of denied packets costs at most the limit's rate.
Without a group, ``log`` writes to the kernel log, where nothing can read the packet's headers
back reliably. With ``group N`` the kernel hands the prefix and the packet's first bytes to
whoever listens on NFLOG group ``N`` (``policyctl drops``, the agent).

The group is a property of where the ruleset runs, not of the cluster, so it is set here, on
the compiler's output, by the one caller that knows it; the compiler's own rules, names and
deltas are unchanged (a delta's chains are whole chains, so turning both the ruleset and each
delta keeps ``patch(old, delta) == new``).
"""

from __future__ import annotations

from dataclasses import replace

from policyctl.policy.model import Direction, Pod

from .delta import RulesetDelta
from .ruleset import Chain, Limit, Log, Mode, Rule, Ruleset

LOG_PREFIX_MAX = 127
"""nft's limit on a log prefix, in characters."""

LOG_RATE = Limit(rate=10, per="second", burst=20)
"""The rate limit in front of every drop log statement: a flood of denied packets logs at most
this many (the drops past it are still dropped and counted by their rule's counter)."""

ISOLATED = "isolated"
MIDSTREAM = "mid-stream"
NEW_POD = "new-pod"
"""The words after the verb in the prefixes of the drop rules that do not name a pod (a
shared pod chain's, the base chains'), which no pod key can be (a key is
``namespace/name``): :func:`rule_prefix`."""


def log_prefix(mode: Mode, direction: Direction, pod: Pod) -> str:
    """``policyctl drop ingress x/a ``: the prefix the drop rule of a pod's chain logs with,
    which the drop reader (``enforcer.drops``) reads back to know the pod and the half."""
    verb = "drop" if mode is Mode.ENFORCE else "audit"
    head = f"policyctl {verb} {direction.value.lower()} "
    return head + pod.key[: LOG_PREFIX_MAX - len(head) - 1] + " "


def rule_prefix(mode: Mode, rule: str, direction: Direction) -> str:
    """``policyctl drop isolated ingress ``, ``policyctl drop mid-stream ingress `` or
    ``policyctl drop new-pod egress ``: the prefix of a drop rule that does not name a pod
    (``rule`` :data:`ISOLATED`, :data:`MIDSTREAM` or :data:`NEW_POD`). Such a rule is reached
    through, or looks up, the local address in a map or set, so the reader finds the pod, or
    the unknown address, in the packet (``enforcer.drops``). An isolated pod's chain is shared
    by every local pod whose chain would say the same (``compiler.chains.pod_chain``), so a
    pod add or delete adds or removes dispatch elements, not a chain. ``direction`` is the
    policed half: a mid-stream pickup from a pod with an ingress chain is ``ingress``."""
    verb = "drop" if mode is Mode.ENFORCE else "audit"
    return f"policyctl {verb} {rule} {direction.value.lower()} "


#: NFLOG groups are 16-bit numbers (``nfgenmsg.res_id``).
MAX_GROUP = 65535


def _rule(rule: Rule, group: int) -> Rule:
    if not any(isinstance(s, Log) for s in rule.statements):
        return rule
    statements = tuple(replace(s, group=group) if isinstance(s, Log) else s for s in rule.statements)
    return replace(rule, statements=statements)


def _chain(chain: Chain, group: int) -> Chain:
    return replace(chain, rules=tuple(_rule(r, group) for r in chain.rules))


def check_group(group: int) -> None:
    if not 0 <= group <= MAX_GROUP:
        raise ValueError(f"an NFLOG group is 0-{MAX_GROUP} (got {group})")


def log_to_group(ruleset: Ruleset, group: int | None) -> Ruleset:
    """``ruleset`` with every ``log`` statement sent to NFLOG ``group`` (None: unchanged)."""
    if group is None:
        return ruleset
    check_group(group)
    return replace(ruleset, chains=tuple(_chain(c, group) for c in ruleset.chains))


def delta_to_group(delta: RulesetDelta, group: int | None) -> RulesetDelta:
    """``delta`` with the ``log`` statements of its chains sent to ``group`` (None: unchanged)."""
    if group is None or not delta.chains:
        return delta
    check_group(group)
    return replace(delta, chains=tuple(_chain(c, group) for c in delta.chains))
