"""Compile a cluster snapshot into the nftables ruleset one node must enforce.

Where each half of a verdict is enforced: egress "for the source pod" on the source pod's node,
ingress "for the destination pod" on the destination pod's node, so a connection between nodes
is checked once on each, and a same-node connection both ways on the one node.

Layout (``docs/ruleset.md`` has the why): base chains ``egress`` (postrouting, srcnat - 5),
``ingress`` (postrouting, srcnat - 4) and ``input`` (input, 101, egress of pods to the node
itself). Each starts with ``ct state established,related accept`` (replies of allowed
connections are allowed) and lets ICMPv6 neighbour discovery through, then dispatches through a
verdict map from local pod address to that pod's chain. A pod chain jumps to the shared allow
chain of its direction and family, then logs (rate-limited) and drops, or in audit mode logs,
counts and returns. Traffic from the node's own addresses to its pods is accepted before ingress
dispatch ("agents on a node ... can communicate with all pods on that node").

The allow chain is a two-level lookup: a verdict map from peer pod address to the chain of the
peer's identity (:class:`PeerIdentity`), whose sets hold local pod address x protocol x port;
then ipBlock sets (peer range x local address [x protocol x port]) and sets for rules without
peers. Every element carries the local pod's address, so shared chains decide per local pod.

A local pod some cluster policy applies to (ClusterNetworkPolicy and the kinds mapped to its
tiers) gets a chain that runs its Admin-tier rules first, then the stage above (when
NetworkPolicy isolates it) or its Baseline-tier rules, then returns to the default allow
(:mod:`tiers`).

Per-packet work is independent of the number of pods and of NetworkPolicies. Elements: peer addresses
once per direction and family, plus local pods x distinct peer identities x port ranges, plus
local pods x ipBlock ranges x port ranges; never pods squared.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from policyctl.policy.ipblocks import end_address
from policyctl.policy.matchers import isolating
from policyctl.policy.model import (
    Cluster,
    Direction,
    Family,
    IPAddress,
    NetworkPolicy,
    Pod,
)

from .droplog import log_prefix
from .graph import PolicyGraph, RuleView
from .identities import identity_of
from .elements import GatheredSets, collect, finish_elements, finished_set
from .peeridentity import (
    Context,
    PeerIdentity,
    Peers,
    by_ports,
    peers,
)
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
    prefix,
    shared_set_name,
    terse_comment,
)
from .intervals import address_interval
from .tiers import Denial, Stages, TierSets, tier_chains
from .ruleset import (
    Chain,
    Counter,
    CtStateIn,
    FieldType,
    Hook,
    Icmpv6TypeRange,
    Jump,
    Key,
    Limit,
    Log,
    Lookup,
    Mode,
    Rule,
    Ruleset,
    Set,
    Verdict,
    VerdictMap,
    VmapLookup,
)

POSTROUTING_EGRESS_PRIORITY = 95  # srcnat - 5: after DNAT (-100), before SNAT (100)
POSTROUTING_INGRESS_PRIORITY = 96  # srcnat - 4: a second base chain, so an egress accept does not skip ingress
INPUT_PRIORITY = 101  # srcnat + 1: after the IPVS LOCAL_IN hooks (98, 99)
LOG_RATE = Limit(rate=10, per="second", burst=20)
ND_TYPES = Icmpv6TypeRange(133, 137)


def cluster_families(cluster: Cluster) -> tuple[Family, ...]:
    """Families any pod or node has an address in."""
    found = {Family.of(a) for p in cluster.pods for a in p.ips} | {
        Family.of(a) for n in cluster.nodes for a in n.addresses
    }
    return tuple(f for f in FAMILIES if f in found)


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
        tuple(sorted(entries, key=lambda e: e[0])),
        comment=f"peer pod -> {prefix(direction)} identity chain",
    )


@dataclass
class _Layout:
    """The sets, chains and peer maps of one node, gathered per direction."""

    sets: list[Set] = field(default_factory=list)
    chains: list[Chain] = field(default_factory=list)
    maps: list[VerdictMap] = field(default_factory=list)
    allow: dict[tuple[Direction, Family], str] = field(default_factory=dict)


def _direction_layout(
    layout: _Layout, direction: Direction, sets: GatheredSets, admitted: set[PeerIdentity], peers: Peers
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


def deny_rules(mode: Mode, pod: Pod, direction: Direction, comment: str) -> tuple[Rule, ...]:
    """Log (rate-limited) and drop; in audit mode log, count and return."""
    log = Rule((LOG_RATE, Log(log_prefix(mode, direction, pod))))
    return (log, Rule((Counter(), final_verdict(mode)), comment=comment))


def network_policy_rules(
    mode: Mode, pod: Pod, direction: Direction, allows: tuple[str, ...], sources: Collection[str]
) -> tuple[Rule, ...]:
    """The NetworkPolicy stage of an isolated pod: jump to the allow chains of its families,
    then log and drop (audit: log, count and return)."""
    rules = tuple(Rule((Jump(allow),)) for allow in allows)
    return rules + deny_rules(mode, pod, direction, terse_comment(sources) if sources else "isolated, no rule allows")


def pod_chain(mode: Mode, pod: Pod, direction: Direction, allows: tuple[str, ...], sources: Collection[str]) -> Chain:
    """A local pod's chain of one direction when no cluster policy applies to it: the
    NetworkPolicy stage alone. Its name follows from what it does."""
    rules = network_policy_rules(mode, pod, direction, allows, sources)
    body = repr((direction, pod.key, allows, mode))
    return Chain(f"{prefix(direction)}-{digest(body)}", rules, comment=f"{direction.value.lower()} of {pod.key}")


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
    """A dispatch map, local pod address -> its chain (a stable sort: equal addresses keep
    the order they come in)."""
    return VerdictMap(
        dispatch_map_name(direction, family),
        FieldType.address(family),
        tuple(sorted(entries, key=lambda e: e[0])),
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


def base_chains() -> tuple[Chain, ...]:
    established = Rule(
        (CtStateIn(("established", "related")), Verdict.ACCEPT), comment="replies of allowed connections"
    )
    nd = Rule((ND_TYPES, Verdict.ACCEPT), comment="ICMPv6 neighbour discovery")

    def dispatch(direction: Direction, *, source: bool) -> list[Rule]:
        return [
            Rule((VmapLookup(Key.address(family, source=source), dispatch_map_name(direction, family)),))
            for family in FAMILIES
        ]

    node_rules = [
        Rule((Lookup((Key.address(f, source=True),), node_set_name(f)), Verdict.ACCEPT), comment="from this node")
        for f in FAMILIES
    ]
    return (
        Chain(
            "egress",
            (established, nd, *dispatch(Direction.EGRESS, source=True)),
            Hook.POSTROUTING,
            POSTROUTING_EGRESS_PRIORITY,
            Verdict.ACCEPT,
            comment="egress of local pods to other hosts",
        ),
        Chain(
            "ingress",
            (established, nd, *node_rules, *dispatch(Direction.INGRESS, source=False)),
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


def node_addresses(cluster: Cluster, node: str, family: Family) -> tuple[IPAddress, ...]:
    """The source addresses of "agents on a node": the node's own addresses and those its
    hostNetwork pods use (the node's, or their own podIPs when the node has none)."""
    found: set[IPAddress] = set()
    this = cluster.node_by_name.get(node)
    if this is not None:
        found.update(a for a in this.addresses if Family.of(a) is family)
    for pod in cluster.pods:
        if pod.host_network and pod.node == node:
            address = end_address(cluster, pod, family).address
            if address is not None:
                found.add(address)
    return tuple(sorted(found))


def local_pods(cluster: Cluster, node: str) -> tuple[Pod, ...]:
    """Pods this node enforces for: scheduled here, not hostNetwork (never selected)."""
    return tuple(sorted((p for p in cluster.pods if p.node == node and not p.host_network), key=lambda p: p.key))


def compile_node(
    cluster: Cluster,
    node: str,
    *,
    table: str = "policyctl",
    mode: Mode = Mode.ENFORCE,
    graph: PolicyGraph | None = None,
) -> Ruleset:
    """The ruleset ``node`` must enforce for ``cluster``. Pure and deterministic: equal input
    gives an equal (and identically rendered) ruleset."""
    graph = graph if graph is not None else PolicyGraph(cluster)
    tier_sets = TierSets(cluster, graph.index) if cluster.cluster_policies else None
    isolated: list[tuple[Pod, Direction, tuple[RuleView, ...]]] = []
    enforced: list[tuple[Pod, Direction, bool, Stages | None]] = []
    for pod in local_pods(cluster, node):
        identity = identity_of(pod)
        assert identity is not None
        for direction in (Direction.EGRESS, Direction.INGRESS):
            is_isolated = graph.isolated(identity, direction)
            stages = tier_sets.stages(pod, direction) if tier_sets is not None else None
            if stages is not None and stages.empty:
                stages = None
            if is_isolated:
                isolated.append((pod, direction, tuple(graph.rules_for(identity, direction))))
            if is_isolated or stages is not None:
                enforced.append((pod, direction, is_isolated, stages))
    groups = by_ports(graph)
    ctx = Context(
        groups,
        [p for p in cluster.pods if identity_of(p) is not None],
        {
            d: peers(groups, (v for _, direction, views in isolated if direction is d for v in views))
            for d in Direction
        },
    )
    gathered: dict[Direction, tuple[GatheredSets, set[PeerIdentity]]] = {
        d: (GatheredSets(), set()) for d in (Direction.EGRESS, Direction.INGRESS)
    }
    for pod, direction, views in isolated:
        sets, admitted = gathered[direction]
        collect(ctx, pod, direction, views, sets, admitted)
    layout = _Layout()
    for direction, (sets, admitted) in gathered.items():
        _direction_layout(layout, direction, sets, admitted, ctx.peers[direction])
    pod_chains: list[Chain] = []
    map_elements: dict[tuple[Direction, Family], list[tuple[IPAddress, Jump]]] = {
        (d, f): [] for d in (Direction.EGRESS, Direction.INGRESS) for f in FAMILIES
    }
    for pod, direction, is_isolated, stages in enforced:
        families = [f for f in FAMILIES if pod.ip(f) is not None]
        allows = tuple(layout.allow[(direction, f)] for f in families if (direction, f) in layout.allow)
        identity = identity_of(pod)
        assert identity is not None
        sources = isolating_sources(graph.selecting(identity), direction)
        if stages is None:
            chain = pod_chain(mode, pod, direction, allows, sources)
            pod_chains.append(chain)
        else:
            assert tier_sets is not None
            name = tiered_chain_name(mode, pod, direction, allows if is_isolated else None)
            stage = network_policy_rules(mode, pod, direction, allows, sources) if is_isolated else None
            denial = Denial((LOG_RATE, Log(log_prefix(mode, direction, pod))), final_verdict(mode))
            chains = tier_chains(tier_sets, stages, direction, pod, name=name, network_policy=stage, denial=denial,
                                 comment=f"{direction.value.lower()} of {pod.key}")
            pod_chains.extend(chains)
            chain = chains[0]
        for family in families:
            ip = pod.ip(family)
            assert ip is not None
            map_elements[(direction, family)].append((ip, Jump(chain.name)))
    dispatch = tuple(dispatch_map(d, f, elements) for (d, f), elements in map_elements.items())
    node_sets = tuple(node_set(node, f, node_addresses(cluster, node, f)) for f in FAMILIES)
    tier_used = tier_sets.used() if tier_sets is not None else ()
    return Ruleset(
        table=table,
        node=node,
        mode=mode,
        sets=tuple(sorted(node_sets + tuple(layout.sets) + tier_used, key=lambda s: s.name)),
        maps=tuple(sorted(dispatch + tuple(layout.maps), key=lambda m: m.name)),
        chains=base_chains() + tuple(sorted(tuple(layout.chains) + tuple(pod_chains), key=lambda c: c.name)),
    )
