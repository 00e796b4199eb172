"""Compile a cluster snapshot into the nftables ruleset one node must enforce.

Where each half of a verdict is enforced: egress "for the source pod" on the source pod's node,
ingress "for the destination pod" on the destination pod's node, so a connection between nodes
is checked once on each, and a same-node connection both ways on the one node.

Layout (``docs/ruleset.md`` has the why): base chains ``egress`` (postrouting, srcnat - 5),
``ingress`` (postrouting, srcnat - 4) and ``input`` (input, 101, egress of pods to the node
itself). Each starts with ``ct state established,related accept`` (replies of allowed
connections are allowed) and lets ICMPv6 neighbour discovery through, then dispatches through a
verdict map from local pod address to that pod's chain. A pod chain jumps to a shared allow
chain of at most five set lookups (``accept`` on a hit), then logs (rate-limited) and drops, or
in audit mode logs, counts and returns. Traffic from the node's own addresses to its pods is
accepted before ingress dispatch ("agents on a node ... can communicate with all pods on that
node").

Per-packet work is independent of the number of pods and policies; set sizes grow with the
distinct allow-contents of local pods (pods of one identity with the same named ports share
them) times peer addresses times port ranges.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from policyctl.policy.ipblocks import end_address
from policyctl.policy.model import (
    Cluster,
    Direction,
    Family,
    IPAddress,
    IPBlockPeer,
    Pod,
    PortMatch,
    Protocol,
)

from .graph import PolicyGraph, RuleView, SelectedIdentities
from .identities import identity_of
from .intervals import ALL_PORTS, Interval, address_interval, block_intervals, normalise
from .ruleset import (
    Chain,
    Counter,
    CtStateIn,
    Element,
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
    Statement,
    Verdict,
    VerdictMap,
    VmapLookup,
)

PROTOCOL_NUMBERS = {Protocol.TCP: 6, Protocol.UDP: 17, Protocol.SCTP: 132}
FAMILIES = (Family.IPV4, Family.IPV6)
POSTROUTING_EGRESS_PRIORITY = 95  # srcnat - 5: after DNAT (-100), before SNAT (100)
POSTROUTING_INGRESS_PRIORITY = 96  # srcnat - 4: a second base chain, so an egress accept does not skip ingress
INPUT_PRIORITY = 101  # srcnat + 1: after the IPVS LOCAL_IN hooks (98, 99)
LOG_RATE = Limit(rate=10, per="second", burst=20)
ND_TYPES = Icmpv6TypeRange(133, 137)
COMMENT_MAX_BYTES = 128
LOG_PREFIX_MAX = 127


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def terse_comment(sources: Iterable[str]) -> str:
    """Sources joined, within nft's 128-byte comment limit (``+N`` counts what did not fit)."""
    items = sorted(set(sources))
    for keep in range(len(items), 0, -1):
        text = "; ".join(items[:keep]) + (f" +{len(items) - keep}" if keep < len(items) else "")
        if len(text.encode()) <= COMMENT_MAX_BYTES:
            return text
    if not items:
        return ""
    suffix = f"~ +{len(items) - 1}" if len(items) > 1 else "~"
    head = items[0].encode()[: COMMENT_MAX_BYTES - len(suffix)].decode(errors="ignore")
    return head + suffix


def log_prefix(mode: Mode, direction: Direction, pod: Pod) -> str:
    """``policyctl drop ingress x/a `` (nft log prefixes hold at most 127 characters)."""
    verb = "drop" if mode is Mode.ENFORCE else "audit"
    head = f"policyctl {verb} {direction.value.lower()} "
    return head + pod.key[: LOG_PREFIX_MAX - len(head) - 1] + " "


def resolve_port(match: PortMatch, pod: Pod | None) -> tuple[Interval, ...]:
    """The ports a ``NetworkPolicyPort`` means on a destination pod: all ports of the protocol
    when ``port`` is unset, ``port..endPort`` for a range, and for a named port every container
    port of the pod with that name and the rule's protocol (none when the destination is not a
    pod on the pod network: a hostNetwork pod counts as its node's address)."""
    if match.port is None:
        return (ALL_PORTS,)
    if isinstance(match.port, int):
        high = match.end_port if match.end_port is not None else match.port
        return (Interval(match.port, high),) if high >= match.port else ()
    if pod is None or pod.host_network:
        return ()
    return normalise(
        Interval(c.port, c.port) for c in pod.ports if c.name == match.port and c.protocol is match.protocol
    )


@dataclass
class _Allowed:
    """What one local pod may do in one direction, before sets are made. ``meaning`` holds,
    per set kind, what the set stands for (peers by selector or block, ports by number or
    name): sets are named from it, so pod churn changes elements but never names or rules."""

    allow_all: set[str] = field(default_factory=set)
    addresses: dict[Family, list[tuple[Interval, str]]] = field(default_factory=dict)
    address_ports: dict[Family, list[tuple[Interval, int, Interval, str]]] = field(default_factory=dict)
    ports: list[tuple[int, Interval, str]] = field(default_factory=list)
    meaning: dict[str, set[tuple[object, ...]]] = field(default_factory=dict)
    sources: dict[str, set[str]] = field(default_factory=dict)

    def mean(self, kind: str, descriptor: tuple[object, ...], source: str) -> None:
        self.meaning.setdefault(kind, set()).add(descriptor)
        self.sources.setdefault(kind, set()).add(source)


def _peer_pods(graph: PolicyGraph, peer: SelectedIdentities) -> list[Pod]:
    return [p for identity in peer.identities for p in graph.index.members.get(identity, ())]


def _address_candidates(cluster: Cluster) -> list[Pod]:
    """Pods a named egress port can resolve on for peers given by address: pods that have an
    identity (a hostNetwork pod is its node's address, not a pod, to a peer)."""
    return [p for p in cluster.pods if identity_of(p) is not None]


def cluster_families(cluster: Cluster) -> tuple[Family, ...]:
    """Families any pod or node has an address in: pod-peer sets exist only for these."""
    found = {Family.of(a) for p in cluster.pods for a in p.ips} | {Family.of(a) for n in cluster.nodes for a in n.addresses}
    return tuple(f for f in FAMILIES if f in found)


def _collect(
    graph: PolicyGraph,
    pod: Pod,
    direction: Direction,
    views: Iterable[RuleView],
    *,
    families: tuple[Family, ...],
    candidates: list[Pod],
) -> _Allowed:
    """``families`` and ``candidates`` are the cluster's (:func:`cluster_families`,
    :func:`_address_candidates`), computed once per compile: both scan every pod."""
    allowed = _Allowed()
    ingress = direction is Direction.INGRESS
    for view in views:
        source = view.source
        numeric = [m for m in view.ports if not isinstance(m.port, str)]
        # Ingress ports are the local destination pod's, egress named ports each destination pod's.
        static_ports = [
            (PROTOCOL_NUMBERS[m.protocol], iv) for m in (view.ports if ingress else numeric) for iv in resolve_port(m, pod)
        ]
        per_destination = [] if ingress else [m for m in view.ports if isinstance(m.port, str)]
        port_meaning = [("ports", proto, iv.low, iv.high) for proto, iv in static_ports]
        port_meaning += [("named", m.protocol.value, m.port) for m in per_destination]
        if view.peers is None:
            if not view.ports:
                allowed.allow_all.add(source)
                continue
            for proto, iv in static_ports:
                allowed.ports.append((proto, iv, source))
                allowed.mean("p", ("ports", proto, iv.low, iv.high), source)
            for family in families if per_destination else ():
                for m in per_destination:
                    allowed.mean(f"ap{_v(family)}", (("any",), ("named", m.protocol.value, m.port)), source)
            for target in candidates if per_destination else ():
                _add_pod_ports(allowed, target, per_destination, source)
            continue
        for peer in view.peers:
            for family in FAMILIES:
                if isinstance(peer, IPBlockPeer):
                    if Family.of(peer.cidr) is not family:
                        continue
                    descriptor: tuple[object, ...] = ("block", str(peer))
                    blocks = block_intervals(peer.cidr, peer.excepts)
                    targets = (
                        [p for p in candidates if (ip := p.ip(family)) and peer.contains(ip)]
                        if per_destination
                        else []
                    )
                else:
                    if family not in families:
                        continue
                    descriptor = ("pods", peer.node)
                    members = [p for p in _peer_pods(graph, peer) if p.ip(family) is not None]
                    blocks = tuple(address_interval(ip) for p in members if (ip := p.ip(family)) is not None)
                    targets = members if per_destination else []
                if not view.ports:
                    allowed.addresses.setdefault(family, []).extend((b, source) for b in blocks)
                    allowed.mean(f"a{_v(family)}", descriptor, source)
                    continue
                for meaning in port_meaning:
                    allowed.mean(f"ap{_v(family)}", (descriptor, meaning), source)
                allowed.address_ports.setdefault(family, []).extend(
                    (b, proto, iv, source) for b in blocks for proto, iv in static_ports
                )
                for target in targets:
                    _add_pod_ports(allowed, target, per_destination, source, family=family)
    return allowed


def _add_pod_ports(
    allowed: _Allowed, target: Pod, named: list[PortMatch], source: str, *, family: Family | None = None
) -> None:
    for fam in FAMILIES if family is None else (family,):
        ip = target.ip(fam)
        if ip is None:
            continue
        for match in named:
            for iv in resolve_port(match, target):
                allowed.address_ports.setdefault(fam, []).append(
                    (address_interval(ip), PROTOCOL_NUMBERS[match.protocol], iv, source)
                )


def needs_interval(meaning: Iterable[object]) -> bool:
    """Whether a set's meaning has CIDRs (ipBlocks) or port ranges: then it needs ``flags
    interval``; sets of pod addresses and single ports are plain hash sets. Decided from the
    meaning, not the elements, so churn never changes a set's flags."""
    for item in meaning:
        if isinstance(item, tuple):
            if item and item[0] == "block":
                return True
            if item and item[0] == "ports" and item[2] != item[3]:
                return True
            if needs_interval(item):
                return True
    return False


def disjoint_boxes(boxes: Iterable[tuple[Interval, int, Interval]]) -> tuple[Element, ...]:
    """``address . protocol . port`` boxes as disjoint elements covering the same points:
    addresses are cut at every box boundary, each cut gets the union of its ports, and
    neighbouring cuts with equal ports are merged again."""
    by_proto: dict[int, list[tuple[Interval, Interval]]] = {}
    for address, proto, ports in boxes:
        by_proto.setdefault(proto, []).append((address, ports))
    elements: list[Element] = []
    for proto in sorted(by_proto):
        items = by_proto[proto]
        cuts = sorted({a.low for a, _ in items} | {a.high + 1 for a, _ in items})
        covered: dict[int, list[Interval]] = {}
        for address, ports in items:
            start = bisect.bisect_left(cuts, address.low)
            stop = bisect.bisect_left(cuts, address.high + 1)
            for i in range(start, stop):
                covered.setdefault(i, []).append(ports)
        merged: list[tuple[Interval, tuple[Interval, ...]]] = []
        for i in sorted(covered):
            segment = Interval(cuts[i], cuts[i + 1] - 1)
            ports = normalise(covered[i])
            if merged and merged[-1][1] == ports and merged[-1][0].high + 1 == segment.low:
                merged[-1] = (Interval(merged[-1][0].low, segment.high), ports)
            else:
                merged.append((segment, ports))
        elements.extend((segment, Interval(proto, proto), p) for segment, ports in merged for p in ports)
    return tuple(sorted(elements))


def disjoint_ports(items: Iterable[tuple[int, Interval]]) -> tuple[Element, ...]:
    by_proto: dict[int, list[Interval]] = {}
    for proto, ports in items:
        by_proto.setdefault(proto, []).append(ports)
    return tuple((Interval(p, p), iv) for p in sorted(by_proto) for iv in normalise(by_proto[p]))


def _address_elements(allowed: _Allowed, kind: str, family: Family) -> tuple[Element, ...]:
    items = allowed.addresses.get(family, [])
    if needs_interval(allowed.meaning[kind]):
        return tuple((iv,) for iv in normalise(b for b, _ in items))
    return tuple(sorted({(b,) for b, _ in items}))


def _address_port_elements(allowed: _Allowed, kind: str, family: Family) -> tuple[Element, ...]:
    boxes = allowed.address_ports.get(family, [])
    if needs_interval(allowed.meaning[kind]):
        return disjoint_boxes((a, p, iv) for a, p, iv, _ in boxes)
    return tuple(sorted({(a, Interval(p, p), iv) for a, p, iv, _ in boxes}))


class _Builder:
    """Shares sets and chains by content and gathers the provenance of every user."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self.sets: dict[str, tuple[tuple[FieldType, ...], tuple[Element, ...], bool]] = {}
        self.set_sources: dict[str, set[str]] = {}
        self.allow_chains: dict[str, tuple[tuple[tuple[Statement, ...], ...], list[set[str]]]] = {}

    def add_set(
        self,
        kind: str,
        types: tuple[FieldType, ...],
        meaning: set[tuple[object, ...]],
        elements: Callable[[], tuple[Element, ...]],
        sources: set[str],
    ) -> str:
        """The set named from its meaning. A set's elements follow from its meaning alone,
        so they are computed only for the first pod that needs the set; the pods sharing
        it add only their provenance."""
        name = f"{kind}-{_digest(repr((types, sorted(meaning, key=repr))))}"
        if name not in self.sets:
            self.sets[name] = (types, elements(), needs_interval(meaning))
        self.set_sources.setdefault(name, set()).update(sources)
        return name

    def allow_chain(self, allowed: _Allowed, direction: Direction) -> str | None:
        source_side = direction is Direction.INGRESS
        rules: list[tuple[tuple[Statement, ...], set[str]]] = []
        if allowed.allow_all:
            rules.append(((Counter(), Verdict.ACCEPT), set(allowed.allow_all)))
        else:
            for family in FAMILIES:
                kind = f"a{_v(family)}"
                if kind in allowed.meaning:
                    sources = allowed.sources[kind]
                    name = self.add_set(kind, (FieldType.address(family),), allowed.meaning[kind],
                                        partial(_address_elements, allowed, kind, family), sources)
                    key = Key.address(family, source=source_side)
                    rules.append(((Lookup((key,), name), Counter(), Verdict.ACCEPT), sources))
            for family in FAMILIES:
                kind = f"ap{_v(family)}"
                if kind in allowed.meaning:
                    types = (FieldType.address(family), FieldType.PROTO, FieldType.SERVICE)
                    sources = allowed.sources[kind]
                    name = self.add_set(kind, types, allowed.meaning[kind],
                                        partial(_address_port_elements, allowed, kind, family), sources)
                    keys = (Key.address(family, source=source_side), Key.L4PROTO, Key.TH_DPORT)
                    rules.append(((Lookup(keys, name), Counter(), Verdict.ACCEPT), sources))
            if "p" in allowed.meaning:
                sources = allowed.sources["p"]
                name = self.add_set("p", (FieldType.PROTO, FieldType.SERVICE), allowed.meaning["p"],
                                    lambda: disjoint_ports((p, iv) for p, iv, _ in allowed.ports), sources)
                rules.append(((Lookup((Key.L4PROTO, Key.TH_DPORT), name), Counter(), Verdict.ACCEPT), sources))
        if not rules:
            return None
        body = tuple(r for r, _ in rules)
        name = f"allow-{_digest(repr(body))}"
        if name not in self.allow_chains:
            self.allow_chains[name] = (body, [set() for _ in body])
        for bucket, (_, sources) in zip(self.allow_chains[name][1], rules):
            bucket.update(sources)
        return name


def _v(family: Family) -> str:
    return "4" if family is Family.IPV4 else "6"


def _pod_chain(builder: _Builder, pod: Pod, direction: Direction, allow: str | None, sources: set[str]) -> Chain:
    rules: list[Rule] = []
    if allow is not None:
        rules.append(Rule((Jump(allow),)))
    rules.append(Rule((LOG_RATE, Log(log_prefix(builder.mode, direction, pod)))))
    final = Verdict.DROP if builder.mode is Mode.ENFORCE else Verdict.RETURN
    rules.append(Rule((Counter(), final), comment=terse_comment(sources) if sources else "isolated, no rule allows"))
    body = repr((direction, pod.key, allow, builder.mode))
    prefix = "in" if direction is Direction.INGRESS else "out"
    return Chain(f"{prefix}-{_digest(body)}", tuple(rules), comment=f"{direction.value.lower()} of {pod.key}")


def _isolating_sources(graph: PolicyGraph, pod: Pod, direction: Direction) -> set[str]:
    identity = identity_of(pod)
    assert identity is not None
    return {
        f"{p.ref} isolates {direction.value.lower()} {p.provenance or ''}".strip()
        for p in graph.selecting(identity)
        if p.isolates(direction)
    }


def _base_chains() -> tuple[Chain, ...]:
    established = Rule((CtStateIn(("established", "related")), Verdict.ACCEPT), comment="replies of allowed connections")
    nd = Rule((ND_TYPES, Verdict.ACCEPT), comment="ICMPv6 neighbour discovery")

    def dispatch(direction: str, *, source: bool) -> list[Rule]:
        return [
            Rule((VmapLookup(Key.address(family, source=source), f"{direction}-v{_v(family)}"),))
            for family in FAMILIES
        ]

    node_rules = [
        Rule((Lookup((Key.address(f, source=True),), f"node-v{_v(f)}"), Verdict.ACCEPT), comment="from this node")
        for f in FAMILIES
    ]
    return (
        Chain(
            "egress",
            (established, nd, *dispatch("egress", source=True)),
            Hook.POSTROUTING,
            POSTROUTING_EGRESS_PRIORITY,
            Verdict.ACCEPT,
            comment="egress of local pods to other hosts",
        ),
        Chain(
            "ingress",
            (established, nd, *node_rules, *dispatch("ingress", source=False)),
            Hook.POSTROUTING,
            POSTROUTING_INGRESS_PRIORITY,
            Verdict.ACCEPT,
            comment="ingress of local pods",
        ),
        Chain(
            "input",
            (established, nd, *dispatch("egress", source=True)),
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
    cluster: Cluster, node: str, *, table: str = "policyctl", mode: Mode = Mode.ENFORCE, graph: PolicyGraph | None = None
) -> Ruleset:
    """The ruleset ``node`` must enforce for ``cluster``. Pure and deterministic: equal input
    gives an equal (and identically rendered) ruleset."""
    graph = graph if graph is not None else PolicyGraph(cluster)
    builder = _Builder(mode)
    pod_chains: list[Chain] = []
    map_elements: dict[str, list[tuple[IPAddress, Jump]]] = {
        f"{d}-v{_v(f)}": [] for d in ("egress", "ingress") for f in FAMILIES
    }
    families = cluster_families(cluster)
    candidates = _address_candidates(cluster)
    for pod in local_pods(cluster, node):
        identity = identity_of(pod)
        assert identity is not None
        for direction in (Direction.EGRESS, Direction.INGRESS):
            if not graph.isolated(identity, direction):
                continue
            views = graph.rules_for(identity, direction)
            allowed = _collect(graph, pod, direction, views, families=families, candidates=candidates)
            allow = builder.allow_chain(allowed, direction)
            chain = _pod_chain(builder, pod, direction, allow, _isolating_sources(graph, pod, direction))
            pod_chains.append(chain)
            for family in FAMILIES:
                ip = pod.ip(family)
                if ip is not None:
                    map_elements[f"{direction.value.lower()}-v{_v(family)}"].append((ip, Jump(chain.name)))
    maps = tuple(
        VerdictMap(name, FieldType.address(Family.IPV4 if name.endswith("4") else Family.IPV6), tuple(sorted(elements, key=lambda e: e[0])),
                   comment=f"local pod -> {name.split('-')[0]} chain")
        for name, elements in sorted(map_elements.items())
    )
    node_sets = tuple(
        Set(
            f"node-v{_v(f)}",
            (FieldType.address(f),),
            tuple((address_interval(a),) for a in node_addresses(cluster, node, f)),
            interval=False,
            comment=f"addresses of node {node}"[:COMMENT_MAX_BYTES],
        )
        for f in FAMILIES
    )
    shared_sets = tuple(
        Set(name, types, elements, interval, terse_comment(builder.set_sources[name]), tuple(sorted(builder.set_sources[name])))
        for name, (types, elements, interval) in builder.sets.items()
    )
    allow_chains = tuple(
        Chain(name, tuple(Rule(body, terse_comment(src)) for body, src in zip(bodies, sources)))  # type: ignore[arg-type]
        for name, (bodies, sources) in builder.allow_chains.items()
    )
    return Ruleset(
        table=table,
        node=node,
        mode=mode,
        sets=tuple(sorted(node_sets + shared_sets, key=lambda s: s.name)),
        maps=maps,
        chains=_base_chains() + tuple(sorted(allow_chains + tuple(pod_chains), key=lambda c: c.name)),
    )
