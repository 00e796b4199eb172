"""The new-pod window: what a node does with a pod address it does not know yet.

The CNI gives a new pod its address, and the pod runs, before the agent reads the pod's
``status.podIPs`` from the API and programs its chains. Until then the address is in no
dispatch map, and a pod in no dispatch map is not isolated: "By default, a pod is non-isolated
for ingress" (and egress). A pod some policy will select talks freely for that while.

With :attr:`NewPodWindow.DENY`, a node that publishes ``spec.podCIDRs`` drops, after the
dispatch, the traffic of every address of its pod range that no known pod holds: as source in
``egress`` and ``input``, as destination in ``ingress``. Every known pod's address is a hole
in that set, isolated or not; this node's own addresses (a CNI's gateway or router
address inside the pod range, ``fib ... type local``) are the node, not a pod. The node's
traffic to its pods is accepted before the ingress dispatch, as the API's node exemption says.
Cilium closes the same window at the CNI (no network until the endpoint's first datapath is
built, ``reserved:init`` while its labels are unknown); ``docs/agent.md`` compares.

The window is closed only when a policy could select the unknown pod. Which policies select it
needs its labels, which the node does not have: any NetworkPolicy (a new pod may land in its
namespace) or cluster-scoped policy counts. The cost: a new pod no policy ends up selecting is
denied too, until the agent's next sync after its address is published (``docs/agent.md``).

The semantics decide connections of known pods only; for them this changes nothing, so the
oracle, ``explain`` and the verifier are unaffected.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Collection, Iterable, Sequence

from policyctl.policy.cluster import Cluster
from policyctl.policy.model import Direction, Family, IPAddress, IPNetwork, Pod

from .droplog import LOG_RATE, NEW_POD, rule_prefix
from .intervals import Interval, network_interval
from .layout import COMMENT_MAX_BYTES, FAMILIES, new_pod_set_name
from .ruleset import (
    Counter,
    Element,
    FieldType,
    Key,
    Log,
    Lookup,
    Mode,
    NotLocalAddress,
    Rule,
    Set,
    Statement,
    Verdict,
)


class NewPodWindow(str, enum.Enum):
    """What a node does with the traffic of a pod address in its pod range that no known pod
    holds: ``deny`` it until the pod is known and programmed, or ``allow`` it (non-isolated)."""

    DENY = "deny"
    ALLOW = "allow"


def could_select_unknown(cluster: Cluster) -> bool:
    """Whether some policy could select a pod the cluster does not show yet: without its
    labels, any NetworkPolicy or cluster-scoped policy could."""
    return bool(cluster.policies or cluster.cluster_policies)


def known_addresses(pods: Iterable[Pod], cidrs: Collection[IPNetwork]) -> list[IPAddress]:
    """The addresses inside ``cidrs`` of pods on the pod network, once per pod holding one."""
    return [a for p in pods if not p.host_network for a in p.ips if any(a in c for c in cidrs)]


def unknown_elements(cidrs: Iterable[IPNetwork], known: Iterable[IPAddress], family: Family) -> tuple[Element, ...]:
    """The node's pod range of ``family`` minus the known addresses, as disjoint intervals."""
    return range_without(cidrs, sorted({int(a) for a in known if Family.of(a) is family}), family)


def range_without(cidrs: Iterable[IPNetwork], holes: Sequence[int], family: Family) -> tuple[Element, ...]:
    """The ``family`` part of ``cidrs`` minus ``holes`` (sorted, distinct address integers), as
    disjoint intervals, one cidr after another: one sweep over the holes inside each (a node's
    range holds up to its pods' many)."""
    found: list[Element] = []
    for cidr in sorted(c for c in cidrs if Family.of(c) is family):
        span = network_interval(cidr)
        low = span.low
        for hole in holes[bisect.bisect_left(holes, span.low) : bisect.bisect_right(holes, span.high)]:
            if low < hole:
                found.append((Interval(low, hole - 1),))
            low = hole + 1
        if low <= span.high:
            found.append((Interval(low, span.high),))
    return tuple(found)


def new_pod_set(node: str, family: Family, elements: tuple[Element, ...]) -> Set:
    return Set(
        new_pod_set_name(family),
        (FieldType.address(family),),
        elements,
        interval=True,
        comment=f"pod range of node {node} that no known pod holds"[:COMMENT_MAX_BYTES],
    )


def window_families(cluster: Cluster, node: str, window: NewPodWindow) -> tuple[Family, ...]:
    """The families whose unknown pod addresses this node denies (none when the window is
    open, the node has no pod CIDRs or no policy could select a new pod)."""
    this = cluster.node_by_name.get(node)
    if window is NewPodWindow.ALLOW or this is None or not could_select_unknown(cluster):
        return ()
    return tuple(f for f in FAMILIES if any(Family.of(c) is f for c in this.pod_cidrs))


def new_pod_sets(cluster: Cluster, node: str, families: Collection[Family]) -> tuple[Set, ...]:
    """The unknown-address set of each of ``families`` (:func:`window_families`)."""
    if not families:
        return ()
    cidrs = cluster.node_by_name[node].pod_cidrs
    known = known_addresses(cluster.pods, cidrs)
    return tuple(new_pod_set(node, f, unknown_elements(cidrs, known, f)) for f in families)


NEW_POD_COMMENTS = {
    Direction.EGRESS: "a pod address not known yet: its policy is not programmed",
    Direction.INGRESS: "to a pod address not known yet: its policy is not programmed",
}


def new_pod_rules(mode: Mode, direction: Direction, families: Collection[Family]) -> list[Rule]:
    """Drop (audit mode: count) what an unknown address of this node's pod range sends
    (``direction`` egress, by source) or is sent (ingress, by destination), unless the
    address is this host's own. Placed after the dispatch, which known pods never pass. Each
    drop is logged first, rate-limited, by a rule with the same matches (``policyctl drops``)."""
    source = direction is Direction.EGRESS
    tail: tuple[Statement, ...] = (Counter(), Verdict.DROP) if mode is Mode.ENFORCE else (Counter(),)
    log = Log(rule_prefix(mode, NEW_POD, direction))
    rules: list[Rule] = []
    for family in FAMILIES:
        if family not in families:
            continue
        matches = (Lookup((Key.address(family, source=source),), new_pod_set_name(family)), NotLocalAddress(source))
        rules += [Rule((*matches, LOG_RATE, log)), Rule((*matches, *tail), comment=NEW_POD_COMMENTS[direction])]
    return rules
