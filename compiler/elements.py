"""The elements of a node's sets: what each local pod may do, gathered per direction, then made disjoint.

Every element carries the local pod's address, so the shared chains that read a set decide for
the pod whose chain was entered. Elements grow with local pods x distinct peer identities x port
ranges plus local pods x ipBlock ranges x port ranges, never with pods squared. Ports mean what
:func:`policy.matchers.port_ranges` says they mean, as in the oracle and the verifier.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from policyctl.policy.matchers import port_ranges, resolver_on
from policyctl.policy.model import Direction, Family, IPBlockPeer, Pod, PortMatch, Protocol

from .graph import RuleView
from .intervals import ALL_PORTS, Interval, address_interval, block_intervals, normalise
from .layout import FAMILIES, LAYOUTS, SetKind, SetLayout, peer_set_name, shared_set_name, terse_comment
from .peeridentity import PeerIdentity, PeerLookup
from .ruleset import Element, Set


PROTOCOL_NUMBERS = {Protocol.TCP: 6, Protocol.UDP: 17, Protocol.SCTP: 132}


def resolve_port(match: PortMatch, pod: Pod | None) -> tuple[Interval, ...]:
    """The ports a ``NetworkPolicyPort`` means on a destination pod: all ports of the protocol
    when ``port`` is unset, ``port..endPort`` for a range, and for a named port every container
    port of the pod with that name and the rule's protocol (none when the destination is not a
    pod on the pod network: a hostNetwork pod counts as its node's address). The rule is
    :func:`policy.matchers.port_ranges`, as in the oracle and the verifier."""
    ranges = port_ranges(match, resolver_on(pod))
    if ranges is None:
        return (ALL_PORTS,)
    return normalise(Interval(low, high) for low, high in ranges)


@dataclass
class GatheredSets:
    """Elements of one direction's sets while they are gathered, by set name, with their
    layout and the provenance of every rule that put something there."""

    layouts: dict[str, SetLayout] = field(default_factory=dict)
    elements: dict[str, set[tuple[Interval, ...]]] = field(default_factory=dict)
    sources: dict[str, set[str]] = field(default_factory=dict)

    def add(self, name: str, layout: SetLayout, element: tuple[Interval, ...], source: str) -> None:
        self.layouts[name] = layout
        self.elements.setdefault(name, set()).add(element)
        self.sources.setdefault(name, set()).add(source)


def collect(
    ctx: PeerLookup,
    pod: Pod,
    direction: Direction,
    views: Iterable[RuleView],
    sets: GatheredSets,
    admitted: set[PeerIdentity],
    *,
    peer_sets_only: bool = False,
) -> None:
    """Add what ``pod`` may do in ``direction`` to ``sets``. Every element carries the local
    pod's address, so the shared chains that read them decide for the pod whose chain was
    entered; peer pods are reached through their identity's chain, ipBlocks directly.

    With ``peer_sets_only`` only the sets of the peer identities ``ctx`` gives are gathered
    (not the ipBlock and peerless sets): what a pod adds to one peer identity's sets depends
    on nothing but the pod, its rules and that identity, so a caller whose ``ctx`` answers
    with some identities only gets exactly the part of the whole that concerns them."""
    ingress = direction is Direction.INGRESS
    for view in views:
        source = view.source
        numeric = [m for m in view.ports if not isinstance(m.port, str)]
        named = [] if ingress else [m for m in view.ports if isinstance(m.port, str)]
        static = [
            (PROTOCOL_NUMBERS[m.protocol], iv)
            for m in (view.ports if ingress else numeric)
            for iv in resolve_port(m, pod)
        ]
        for family in FAMILIES:
            ip = pod.ip(family)
            if ip is None:
                continue
            local = address_interval(ip)
            if view.peers is None:
                if not view.ports:
                    if not peer_sets_only:
                        anywhere = LAYOUTS[(direction, family, SetKind.ANY)]
                        sets.add(shared_set_name(direction, "any", family), anywhere, (local,), source)
                    continue
                any_ports = LAYOUTS[(direction, family, SetKind.ANY_PORTS)]
                any_ports_name = shared_set_name(direction, "any-ports", family)
                for proto, iv in () if peer_sets_only else static:
                    sets.add(any_ports_name, any_ports, (local, Interval(proto, proto), iv), source)
                if named:
                    for peer in ctx.everyone(direction):
                        if family in ctx.families(direction, peer):
                            sample = ctx.representative(direction, peer)
                            _peer_ports(sets, direction, peer, sample, family, local, named, [], source, admitted)
                continue
            for peer_view in view.peers:
                if isinstance(peer_view, IPBlockPeer):
                    if peer_sets_only or Family.of(peer_view.cidr) is not family:
                        continue
                    blocks = block_intervals(peer_view.cidr, peer_view.excepts)
                    if not view.ports:
                        blocks_any = LAYOUTS[(direction, family, SetKind.BLOCKS_ANY)]
                        for b in blocks:
                            sets.add(shared_set_name(direction, "blocks-any", family), blocks_any, (b, local), source)
                        continue
                    blocks_ports = LAYOUTS[(direction, family, SetKind.BLOCKS_PORTS)]
                    blocks_ports_name = shared_set_name(direction, "blocks-ports", family)
                    for b in blocks:
                        for proto, iv in static:
                            element = (b, local, Interval(proto, proto), iv)
                            sets.add(blocks_ports_name, blocks_ports, element, source)
                    for target in ctx.candidates() if named else ():
                        tip = target.ip(family)
                        if tip is None or not peer_view.contains(tip):
                            continue
                        for match in named:
                            for iv in resolve_port(match, target):
                                element = (
                                    address_interval(tip),
                                    local,
                                    Interval(PROTOCOL_NUMBERS[match.protocol], PROTOCOL_NUMBERS[match.protocol]),
                                    iv,
                                )
                                sets.add(blocks_ports_name, blocks_ports, element, source)
                    continue
                for peer in ctx.reached(direction, peer_view):
                    if family not in ctx.families(direction, peer):
                        continue
                    if not view.ports:
                        peer_any = LAYOUTS[(direction, family, SetKind.PEER_ANY)]
                        sets.add(peer_set_name(direction, peer, "any", family), peer_any, (local,), source)
                        admitted.add(peer)
                        continue
                    sample = ctx.representative(direction, peer)
                    _peer_ports(sets, direction, peer, sample, family, local, named, static, source, admitted)


def _peer_ports(
    sets: GatheredSets,
    direction: Direction,
    peer: PeerIdentity,
    sample: Pod,
    family: Family,
    local: Interval,
    named: list[PortMatch],
    static: list[tuple[int, Interval]],
    source: str,
    admitted: set[PeerIdentity],
) -> None:
    """Ports a local pod admits for one peer identity: ``static`` as given, ``named`` resolved
    on the peer (``sample`` is any member: every member of a peer identity has the same named
    ports)."""
    ports = list(static)
    ports += [(PROTOCOL_NUMBERS[m.protocol], iv) for m in named for iv in resolve_port(m, sample)]
    layout = LAYOUTS[(direction, family, SetKind.PEER_PORTS)]
    for proto, iv in ports:
        name = peer_set_name(direction, peer, "ports", family)
        sets.add(name, layout, (local, Interval(proto, proto), iv), source)
    if ports:
        admitted.add(peer)


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
            runs = normalise(covered[i])
            if merged and merged[-1][1] == runs and merged[-1][0].high + 1 == segment.low:
                merged[-1] = (Interval(merged[-1][0].low, segment.high), runs)
            else:
                merged.append((segment, runs))
        elements.extend((segment, Interval(proto, proto), p) for segment, runs in merged for p in runs)
    return tuple(sorted(elements))


def disjoint_ports(items: Iterable[tuple[int, Interval]]) -> tuple[Element, ...]:
    by_proto: dict[int, list[Interval]] = {}
    for proto, ports in items:
        by_proto.setdefault(proto, []).append(ports)
    return tuple((Interval(p, p), iv) for p in sorted(by_proto) for iv in normalise(by_proto[p]))


def local_group(layout: SetLayout, element: Element) -> Interval:
    """The local pod's address of an element: the second field of ipBlock sets, else the first."""
    return element[1] if layout.blocks else element[0]


def finish_elements(layout: SetLayout, raw: set[tuple[Interval, ...]]) -> tuple[Element, ...]:
    """A set's elements made disjoint: grouped by the local pod's address (exact, so groups
    never overlap), then port ranges merged per protocol and ipBlock boxes cut apart."""
    grouped: dict[Interval, list[tuple[Interval, ...]]] = {}
    for element in raw:
        grouped.setdefault(local_group(layout, element), []).append(element)
    out: list[Element] = []
    for local in sorted(grouped):
        items = grouped[local]
        if not layout.blocks and not layout.ports:
            out.append((local,))
        elif not layout.blocks:
            out.extend((local, proto, iv) for proto, iv in disjoint_ports((e[1].low, e[2]) for e in items))
        elif not layout.ports:
            out.extend((b, local) for b in normalise(e[0] for e in items))
        else:
            out.extend((b, local, proto, iv) for b, proto, iv in disjoint_boxes((e[0], e[2].low, e[3]) for e in items))
    return tuple(sorted(out))


def finished_set(name: str, layout: SetLayout, elements: tuple[Element, ...], sources: Collection[str]) -> Set:
    """A set of disjoint, sorted elements. It needs the ``interval`` flag when some element is
    a range or a CIDR, and every ipBlock set is declared with it."""
    interval = layout.blocks or any(not iv.is_single for e in elements for iv in e)
    return Set(name, layout.types, elements, interval, terse_comment(sources), tuple(sorted(sources)))
