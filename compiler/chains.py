"""The chains and verdict maps of a node's ruleset, built from its finished sets.

Base chains ``egress`` (postrouting, srcnat - 5), ``ingress`` (postrouting, srcnat - 4) and
``input`` (input, 101) accept replies and ICMPv6 neighbour discovery; ``egress`` and ``ingress``
drop TCP that conntrack picked up mid-stream from a local pod with an ingress chain or to one
with an egress chain (:func:`midstream_rules`); then each dispatches through a verdict map from
local pod address to that pod's chain. A pod chain, shared by the local pods the same policies
isolate, jumps to the shared allow chain of its direction and family, then logs (rate-limited)
and drops, or in audit mode logs, counts and returns. An allow chain reads the peer map (peer
pod address -> its identity's chain) and the ipBlock and peerless sets; ``docs/ruleset.md``
has the why.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from policyctl.policy.matchers import isolating
from policyctl.policy.model import Direction, Family, IPAddress, NetworkPolicy, Pod

from .droplog import ISOLATED, LOG_RATE, MIDSTREAM, rule_prefix
from .elements import GatheredSets, finish_elements, finished_set
from .intervals import address_interval
from .newpods import new_pod_rules
from .layout import (
    COMMENT_MAX_BYTES,
    FAMILIES,
    allow_chain_name,
    digest,
    dispatch_map_name,
    node_set_name,
    peer_chain_name,
    peer_map_name,
    peer_set_name,
    policed_set_name,
    prefix,
    shared_set_name,
    terse_comment,
)
from .peeridentity import PeerIdentity, Peers
from .ruleset import (
    Chain,
    Counter,
    CtStateIn,
    FieldType,
    Hook,
    Icmpv6TypeRange,
    Jump,
    Key,
    Log,
    Lookup,
    Mode,
    Rule,
    Set,
    TcpNotSyn,
    Verdict,
    VerdictMap,
    VmapLookup,
    entry_order,
)


POSTROUTING_EGRESS_PRIORITY = 95  # srcnat - 5: after DNAT (-100), before SNAT (100)
POSTROUTING_INGRESS_PRIORITY = 96  # srcnat - 4: a second base chain, so an egress accept does not skip ingress
INPUT_PRIORITY = 101  # srcnat + 1: after the IPVS LOCAL_IN hooks (98, 99)
ND_TYPES = Icmpv6TypeRange(133, 137)


def _lookup_rule(keys: tuple[Key, ...], name: str, comment: str) -> Rule:
    return Rule((Lookup(keys, name), Counter(), Verdict.ACCEPT), comment)


def peer_chain(
    direction: Direction, peer: PeerIdentity, comments: Mapping[str, str]
) -> tuple[Chain | None, tuple[Family, ...]]:
    """The chain of one peer identity, with a lookup rule for each of its sets that exists
    (``comments`` holds the comment of every set that exists; a lookup rule says what its
    set says), and the families it has sets in (its members' addresses of those families
    enter the peer map)."""
    local_is_source = direction is Direction.EGRESS
    rules: list[Rule] = []
    reached: list[Family] = []
    for family in FAMILIES:
        local = Key.address(family, source=local_is_source)
        for what, keys in (("ports", (local, Key.L4PROTO, Key.TH_DPORT)), ("any", (local,))):
            name = peer_set_name(direction, peer, what, family)
            if name in comments:
                rules.append(_lookup_rule(keys, name, comments[name]))
                reached.append(family)
    if not rules:
        return None, ()
    link = "from" if direction is Direction.INGRESS else "to"
    selectors = ", ".join(peer.selectors)
    comment = f"{direction.value.lower()} {link} pods of {selectors}"[:COMMENT_MAX_BYTES]
    chain = Chain(peer_chain_name(direction, peer), tuple(rules), comment=comment)
    return chain, tuple(f for f in FAMILIES if f in reached)


def allow_chain(direction: Direction, family: Family, *, peer_map: bool, comments: Mapping[str, str]) -> Chain | None:
    """The shared allow chain of one direction and family: the peer map (when it has
    entries), then the ipBlock and peerless sets that exist; None when there is nothing."""
    local_is_source = direction is Direction.EGRESS
    local = Key.address(family, source=local_is_source)
    peer = Key.address(family, source=not local_is_source)
    rules: list[Rule] = []
    if peer_map:
        rules.append(Rule((VmapLookup(peer, peer_map_name(direction, family)),)))
    for suffix, keys in (
        ("blocks-ports", (peer, local, Key.L4PROTO, Key.TH_DPORT)),
        ("blocks-any", (peer, local)),
        ("any-ports", (local, Key.L4PROTO, Key.TH_DPORT)),
        ("any", (local,)),
    ):
        name = shared_set_name(direction, suffix, family)
        if name in comments:
            rules.append(_lookup_rule(keys, name, comments[name]))
    if not rules:
        return None
    return Chain(
        allow_chain_name(direction, family),
        tuple(rules),
        comment=f"what local pods may do, {direction.value.lower()} {family.value}",
    )


def peer_map(direction: Direction, family: Family, entries: Iterable[tuple[IPAddress, Jump]]) -> VerdictMap:
    return VerdictMap(
        peer_map_name(direction, family),
        FieldType.address(family),
        tuple(sorted(entries, key=entry_order)),
        comment=f"peer pod -> {prefix(direction)} identity chain",
    )


@dataclass
class Layout:
    """The sets, chains and peer maps of one node, gathered per direction."""

    sets: list[Set] = field(default_factory=list)
    chains: list[Chain] = field(default_factory=list)
    maps: list[VerdictMap] = field(default_factory=list)
    allow: dict[tuple[Direction, Family], str] = field(default_factory=dict)


def direction_layout(
    layout: Layout, direction: Direction, sets: GatheredSets, admitted: set[PeerIdentity], peers: Peers
) -> None:
    """Turn one direction's gathered elements into sets, one chain per admitted peer
    identity, the peer maps and the shared allow chain of each family."""
    finished: dict[str, Set] = {}
    for name in sorted(sets.elements):
        elements = finish_elements(sets.layouts[name], sets.elements[name])
        finished[name] = finished_set(name, sets.layouts[name], elements, sets.sources[name])
    layout.sets.extend(finished.values())
    comments = {name: s.comment for name, s in finished.items()}
    peer_maps: dict[Family, list[tuple[IPAddress, Jump]]] = {f: [] for f in FAMILIES}
    for peer in sorted(admitted, key=lambda p: p.sort_key):
        chain, reached = peer_chain(direction, peer, comments)
        if chain is None:
            continue
        layout.chains.append(chain)
        for family in reached:
            for member in peers.members[peer]:
                ip = member.ip(family)
                if ip is not None:
                    peer_maps[family].append((ip, Jump(chain.name)))
    for family in FAMILIES:
        if peer_maps[family]:
            layout.maps.append(peer_map(direction, family, dict(peer_maps[family]).items()))
        chain = allow_chain(direction, family, peer_map=bool(peer_maps[family]), comments=comments)
        if chain is not None:
            layout.chains.append(chain)
            layout.allow[(direction, family)] = chain.name


def final_verdict(mode: Mode) -> Verdict:
    """What a denied new connection meets: drop, or in audit mode return (it passes)."""
    return Verdict.DROP if mode is Mode.ENFORCE else Verdict.RETURN


def deny_rules(mode: Mode, comment: str, log: Log) -> tuple[Rule, ...]:
    """Log (rate-limited) and drop; in audit mode log, count and return."""
    return (Rule((LOG_RATE, log)), Rule((Counter(), final_verdict(mode)), comment=comment))


def denial_comment(sources: Collection[str]) -> str:
    """The comment of an isolated pod's drop rule: the isolating policies that fit."""
    return terse_comment(sources) if sources else "isolated, no rule allows"


def network_policy_rules(mode: Mode, allows: tuple[str, ...], sources: Collection[str], log: Log) -> tuple[Rule, ...]:
    """The NetworkPolicy stage of an isolated pod: jump to the allow chains of its families,
    then log (with ``log``) and drop (audit: log, count and return)."""
    return tuple(Rule((Jump(allow),)) for allow in allows) + deny_rules(mode, denial_comment(sources), log)


def pod_chain(mode: Mode, direction: Direction, allows: tuple[str, ...], sources: Collection[str]) -> Chain:
    """The chain of one direction shared by every local pod no cluster policy applies to
    whose chain would say the same: the same allow chains (``allows``: its families) and the
    same drop comment (the isolating policies ``sources``, as many as fit). What such a chain
    does depends on nothing else (the allow chains' elements carry each pod's own address),
    so a pod add or delete only adds or removes the pod's dispatch elements, and a policy
    that isolates pods whose comment is full without it changes no chain. Its drop log cannot
    name the pod; the packet does (:func:`droplog.rule_prefix`). Its name follows from what
    it holds."""
    rules = network_policy_rules(mode, allows, sources, Log(rule_prefix(mode, ISOLATED, direction)))
    body = repr((direction, rules[-1].comment, allows, mode))
    return Chain(f"{prefix(direction)}-{digest(body)}", rules, comment=f"{direction.value.lower()} of isolated pods")


def tiered_chain_name(mode: Mode, pod: Pod, direction: Direction, allows: tuple[str, ...] | None) -> str:
    """The chain of a local pod some cluster policy applies to (``allows`` None: not isolated
    by NetworkPolicy)."""
    return f"{prefix(direction)}-{digest(repr((direction, pod.key, allows, mode, 'tiers')))}"


def isolating_sources(selecting: Iterable[NetworkPolicy], direction: Direction) -> set[str]:
    """Provenance of the policies (among those selecting a pod) that isolate it in ``direction``."""
    return {
        f"{p.ref} isolates {direction.value.lower()} {p.provenance or ''}".strip()
        for p in isolating(selecting, direction)
    }


def dispatch_map(direction: Direction, family: Family, entries: Iterable[tuple[IPAddress, Jump]]) -> VerdictMap:
    """A dispatch map, local pod address -> its chain. Two local pods of one address whose
    chains are one shared chain hold one entry."""
    return VerdictMap(
        dispatch_map_name(direction, family),
        FieldType.address(family),
        tuple(sorted(set(entries), key=entry_order)),
        comment=f"local pod -> {direction.value.lower()} chain",
    )


def node_set(node: str, family: Family, addresses: Iterable[IPAddress]) -> Set:
    return Set(
        node_set_name(family),
        (FieldType.address(family),),
        tuple((address_interval(a),) for a in addresses),
        interval=False,
        comment=f"addresses of node {node}"[:COMMENT_MAX_BYTES],
    )


def policed_set(direction: Direction, family: Family, addresses: Iterable[IPAddress]) -> Set:
    """The local pods that have a chain in ``direction`` (the dispatch map's addresses, each
    once), which the mid-stream rules look up."""
    return Set(
        policed_set_name(direction, family),
        (FieldType.address(family),),
        tuple((address_interval(a),) for a in sorted(set(addresses))),
        interval=False,
        comment=f"local pods with a {direction.value.lower()} chain",
    )


MIDSTREAM_COMMENTS = {
    Direction.INGRESS: "mid-stream TCP from a pod with an ingress chain: a revoked connection's server",
    Direction.EGRESS: "mid-stream TCP to a pod with an egress chain: a revoked connection's client",
}


def midstream_rules(mode: Mode, direction: Direction) -> list[Rule]:
    """Drop (audit mode: count) a TCP packet that conntrack picked up mid-stream as a new
    connection when the half it would skip is policed here. Such a packet has no SYN, so
    nothing tells who opened the connection; conntrack takes its sender for the opener. When
    the sender is a local pod with an ingress chain (``direction`` ingress, looked up by
    source) or the receiver one with an egress chain (egress, by destination), the connection
    may have been opened the other way, and that opening is what the API decides: "reply
    traffic for those connections will also be allowed" only while the connection is. Without
    this rule the server's next packet of a revoked connection would re-create its entry as
    the server's own egress, which nothing isolates (``docs/ruleset.md``). Each drop is logged
    first, rate-limited, by a rule with the same matches, so only what is dropped is logged."""
    source = direction is Direction.INGRESS
    tail: tuple[Counter | Verdict, ...] = (Counter(), Verdict.DROP) if mode is Mode.ENFORCE else (Counter(),)
    log = Log(rule_prefix(mode, MIDSTREAM, direction))
    rules: list[Rule] = []
    for family in FAMILIES:
        matches = (
            CtStateIn(("new",)),
            TcpNotSyn(),
            Lookup((Key.address(family, source=source),), policed_set_name(direction, family)),
        )
        rules += [Rule((*matches, LOG_RATE, log)), Rule((*matches, *tail), comment=MIDSTREAM_COMMENTS[direction])]
    return rules


def base_chains(mode: Mode, new_pods: Collection[Family] = ()) -> tuple[Chain, ...]:
    """The three base chains; ``new_pods``: the families whose unknown pod addresses each
    dispatch is followed by a drop of (:mod:`newpods`)."""
    established = Rule(
        (CtStateIn(("established", "related")), Verdict.ACCEPT), comment="replies of allowed connections"
    )
    nd = Rule((ND_TYPES, Verdict.ACCEPT), comment="ICMPv6 neighbour discovery")

    def dispatch(direction: Direction, *, source: bool) -> list[Rule]:
        return [
            Rule((VmapLookup(Key.address(family, source=source), dispatch_map_name(direction, family)),))
            for family in FAMILIES
        ] + new_pod_rules(mode, direction, new_pods)

    node_rules = [
        Rule((Lookup((Key.address(f, source=True),), node_set_name(f)), Verdict.ACCEPT), comment="from this node")
        for f in FAMILIES
    ]
    return (
        Chain(
            "egress",
            (established, nd, *midstream_rules(mode, Direction.INGRESS), *dispatch(Direction.EGRESS, source=True)),
            Hook.POSTROUTING,
            POSTROUTING_EGRESS_PRIORITY,
            Verdict.ACCEPT,
            comment="egress of local pods to other hosts",
        ),
        Chain(
            "ingress",
            (
                established,
                nd,
                *midstream_rules(mode, Direction.EGRESS),
                *node_rules,
                *dispatch(Direction.INGRESS, source=False),
            ),
            Hook.POSTROUTING,
            POSTROUTING_INGRESS_PRIORITY,
            Verdict.ACCEPT,
            comment="ingress of local pods",
        ),
        Chain(
            "input",
            (established, nd, *dispatch(Direction.EGRESS, source=True)),
            Hook.INPUT,
            INPUT_PRIORITY,
            Verdict.ACCEPT,
            comment="egress of local pods to this node",
        ),
    )
