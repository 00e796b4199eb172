"""The sets a node compiler keeps and the change one step makes to its ruleset.

A set's elements are kept raw per local address group (``finish_elements`` groups by the
local pod's address, and groups never overlap) and per contributor (a local pod and a
direction), finished per group, with reference-counted sources that make the comments of
the set and of the lookup rules that read it (:class:`SetState`, :class:`Comments`).

The ruleset state lives in a :class:`RulesetStore`, which knows nothing of the compiler that
fills it. A step records, before it first changes a piece of the store, what that piece
held (:class:`Tracker`): a set's existence, interval flag and comment, a group's finished
elements, a chain, a peer map entry, a dispatch entry (and with it the policed set's count of
its address), a node set. At the end of the step it
re-finishes the touched groups, refreshes the peer identity chains and peer map claims that
follow from them, and reports each piece that changed as a :class:`RulesetDelta`: set
elements and map entries one by one, sets, maps and chains whole when they appear or are
re-created.

Invariants: a set exists in the ruleset exactly while it has finished elements (sets a step
empties are forgotten by ``cleanup``); a piece's recorded state is the one it had when the
step began, so the delta is exactly the difference between the rulesets before and after.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from policyctl.policy.model import Direction, Family, IPAddress

from .chains import node_set, peer_chain, peer_map, policed_set
from .delta import MapEntry, RulesetDelta
from .elements import finish_elements, finished_set
from .intervals import Interval, address_interval
from .layout import (
    FAMILIES,
    SetLayout,
    allow_chain_name,
    dispatch_map_name,
    peer_chain_name,
    peer_map_name,
    policed_set_name,
    sorted_terse_comment,
)
from .peeridentity import PeerIdentity
from .peerstate import Peers
from .ruleset import Chain, Element, Jump, Set, VerdictMap, entry_order

DIRECTIONS = (Direction.EGRESS, Direction.INGRESS)
PodDirection = tuple[str, Direction]
Counted = TypeVar("Counted", bound=Hashable)


def _has_range(element: Element) -> bool:
    return any(not iv.is_single for iv in element)


@dataclass(slots=True)
class SetState:
    """One set: raw elements per local address group and contributor, finished elements per
    group, and how many contributions brought each source."""

    name: str
    layout: SetLayout
    owner: PeerIdentity | None
    raw: dict[Interval, dict[PodDirection, frozenset[Element]]] = field(default_factory=dict)
    finished: dict[Interval, tuple[Element, ...]] = field(default_factory=dict)
    ranges: dict[Interval, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    ordered: list[str] = field(default_factory=list)
    """The sources in order, kept as they come and go: a comment reads only the first few
    (``layout.sorted_terse_comment``), and a shared set has hundreds at 100k pods."""
    cached_comment: str | None = None

    @property
    def interval(self) -> bool:
        return self.layout.blocks or any(self.ranges.values())

    @property
    def comment(self) -> str:
        if self.cached_comment is None:
            self.cached_comment = sorted_terse_comment(self.ordered)
        return self.cached_comment

    def add_source(self, source: str) -> None:
        """One more contribution brought ``source``."""
        count = self.sources.get(source, 0)
        self.sources[source] = count + 1
        if not count:
            bisect.insort(self.ordered, source)
            self.cached_comment = None

    def drop_source(self, source: str) -> None:
        """One contribution that brought ``source`` is gone."""
        count = self.sources[source] - 1
        if count:
            self.sources[source] = count
            return
        del self.sources[source]
        del self.ordered[bisect.bisect_left(self.ordered, source)]
        self.cached_comment = None


class Comments(Mapping[str, str]):
    """The comment of every set that exists, by name (what chain builders read)."""

    def __init__(self, sets: Mapping[str, SetState]) -> None:
        self._sets = sets

    def __getitem__(self, name: str) -> str:
        state = self._sets.get(name)
        if state is None or not state.finished:
            raise KeyError(name)
        return state.comment

    def __contains__(self, name: object) -> bool:
        state = self._sets.get(name) if isinstance(name, str) else None
        return state is not None and bool(state.finished)

    def __iter__(self) -> Iterator[str]:
        return (n for n, s in self._sets.items() if s.finished)

    def __len__(self) -> int:
        return sum(1 for s in self._sets.values() if s.finished)


@dataclass(slots=True)
class RulesetStore:
    """The ruleset state an incremental compiler keeps between steps: the sets, the chains,
    the peer maps with every claim on an address, the dispatch entries, the node sets, which
    shared allow chains exist (``allow``), each local pod's chain per direction
    (``pod_chains``) and how many pods share each such chain (``pod_chain_users``). What
    follows the cluster (local pods, selecting policies, peer identities) lives beside it
    (:mod:`nodeview`, :mod:`peerstate`); a :class:`Tracker` journals each step's changes to
    the store."""

    node: str
    sets: dict[str, SetState] = field(default_factory=dict)
    set_objects: dict[str, Set] = field(default_factory=dict)
    chains: dict[str, Chain] = field(default_factory=dict)
    peer_chains: dict[tuple[Direction, PeerIdentity], tuple[str, tuple[Family, ...]]] = field(default_factory=dict)
    pod_claims: dict[PodDirection, tuple[tuple[Family, IPAddress, PeerIdentity], ...]] = field(default_factory=dict)
    claims: dict[tuple[Direction, Family], dict[IPAddress, dict[PeerIdentity, int]]] = field(
        default_factory=lambda: {(d, f): {} for d in DIRECTIONS for f in FAMILIES}
    )
    peer_entries: dict[tuple[Direction, Family], dict[IPAddress, Jump]] = field(
        default_factory=lambda: {(d, f): {} for d in DIRECTIONS for f in FAMILIES}
    )
    dispatch: dict[tuple[Direction, Family], dict[str, MapEntry]] = field(
        default_factory=lambda: {(d, f): {} for d in DIRECTIONS for f in FAMILIES}
    )
    dispatch_held: dict[tuple[Direction, Family], dict[MapEntry, int]] = field(
        default_factory=lambda: {(d, f): {} for d in DIRECTIONS for f in FAMILIES}
    )
    """How many local pods hold each dispatch entry: two pods of one address whose chain is
    one shared chain hold one entry, which the map keeps while either does."""
    node_sets: dict[Family, tuple[IPAddress, ...]] = field(default_factory=lambda: {f: () for f in FAMILIES})
    policed: dict[tuple[Direction, Family], dict[IPAddress, int]] = field(
        default_factory=lambda: {(d, f): {} for d in DIRECTIONS for f in FAMILIES}
    )
    allow: dict[tuple[Direction, Family], bool] = field(
        default_factory=lambda: {(d, f): False for d in DIRECTIONS for f in FAMILIES}
    )
    pod_chains: dict[PodDirection, Chain] = field(default_factory=dict)
    pod_chain_users: dict[str, int] = field(default_factory=dict)
    comments: Comments = field(init=False)

    def __post_init__(self) -> None:
        self.comments = Comments(self.sets)

    def set_object(self, name: str) -> Set:
        found = self.set_objects.get(name)
        if found is None:
            state = self.sets[name]
            elements = tuple(sorted(itertools.chain.from_iterable(state.finished.values())))
            found = self.set_objects[name] = finished_set(name, state.layout, elements, state.ordered)
        return found

    def node_set(self, family: Family) -> Set:
        return node_set(self.node, family, self.node_sets[family])

    def peer_map(self, direction: Direction, family: Family) -> VerdictMap:
        return peer_map(direction, family, self.peer_entries[(direction, family)].items())

    def policed_set(self, direction: Direction, family: Family) -> Set:
        return policed_set(direction, family, self.policed[(direction, family)])


def _count_down(counts: dict[Counted, int], key: Counted) -> None:
    counts[key] -= 1
    if not counts[key]:
        del counts[key]


class Tracker:
    """What one step changed, with the state each changed piece had before it, so the step
    ends with the exact delta."""

    def __init__(self, store: RulesetStore) -> None:
        self.store = store
        self.set_before: dict[str, tuple[bool, bool, str]] = {}
        self.groups: dict[str, set[Interval]] = {}
        self.group_before: dict[tuple[str, Interval], tuple[Element, ...]] = {}
        self.chain_before: dict[str, Chain | None] = {}
        self.entry_before: dict[tuple[Direction, Family, IPAddress], Jump | None] = {}
        self.map_before = {k: bool(v) for k, v in store.peer_entries.items()}
        self.held_before: dict[tuple[Direction, Family, MapEntry], bool] = {}
        self.policed_before: dict[tuple[Direction, Family, IPAddress], bool] = {}
        self.node_before: dict[Family, tuple[IPAddress, ...]] = {}
        self.forced: set[str] = set()

    def touch_set(self, name: str) -> None:
        if name not in self.set_before:
            state = self.store.sets.get(name)
            if state is not None and state.finished:
                self.set_before[name] = (True, state.interval, state.comment)
            else:
                self.set_before[name] = (False, False, "")
            self.groups[name] = set()
            self.store.set_objects.pop(name, None)

    def touch_group(self, name: str, group: Interval) -> None:
        if (name, group) not in self.group_before:
            state = self.store.sets[name]
            self.group_before[(name, group)] = state.finished.get(group, ())
            self.groups[name].add(group)

    def set_chain(self, name: str, chain: Chain | None) -> None:
        if name not in self.chain_before:
            self.chain_before[name] = self.store.chains.get(name)
        if chain is None:
            self.store.chains.pop(name, None)
        else:
            self.store.chains[name] = chain

    def set_dispatch(self, direction: Direction, family: Family, key: str, entry: MapEntry | None) -> None:
        """Make ``entry`` local pod ``key``'s dispatch entry (None: it has none), and count its
        address in the policed set: one address may be held by two pods' entries."""
        entries = self.store.dispatch[(direction, family)]
        old = entries.get(key)
        if old == entry:
            return
        counts = self.store.policed[(direction, family)]
        held = self.store.dispatch_held[(direction, family)]
        if old is not None:
            self.policed_before.setdefault((direction, family, old[0]), True)
            self.held_before.setdefault((direction, family, old), True)
            _count_down(counts, old[0])
            _count_down(held, old)
            del entries[key]
        if entry is not None:
            self.policed_before.setdefault((direction, family, entry[0]), entry[0] in counts)
            self.held_before.setdefault((direction, family, entry), entry in held)
            counts[entry[0]] = counts.get(entry[0], 0) + 1
            held[entry] = held.get(entry, 0) + 1
            entries[key] = entry

    def touch_node_set(self, family: Family) -> None:
        self.node_before.setdefault(family, self.store.node_sets[family])

    def peer_map_toggled(self, direction: Direction, family: Family) -> bool:
        return self.map_before[(direction, family)] != bool(self.store.peer_entries[(direction, family)])

    def finish_sets(self) -> None:
        """Re-finish every touched group from its raw elements."""
        for name, groups in self.groups.items():
            state = self.store.sets[name]
            for group in groups:
                raw = state.raw.get(group)
                if not raw:
                    state.finished.pop(group, None)
                    state.ranges.pop(group, None)
                    continue
                union: set[Element] = set().union(*raw.values())
                finished = finish_elements(state.layout, union)
                state.finished[group] = finished
                state.ranges[group] = sum(1 for e in finished if _has_range(e))

    def refresh_peers(self, peers_of: Mapping[Direction, Peers]) -> dict[tuple[Direction, Family], bool]:
        """Refresh the chains of peer identities whose sets appeared, disappeared or changed
        comments (what a chain holds: a lookup rule per set that exists, saying what the set
        says), the peer map claims of pods that moved or whose identity's reached families
        changed, and the peer map entries of the addresses involved. Returns the (direction,
        family) pairs whose shared sets appeared, disappeared or changed comments."""
        c = self.store
        allow_dirty: dict[tuple[Direction, Family], bool] = {}
        owners: dict[Direction, set[PeerIdentity]] = {d: set() for d in DIRECTIONS}
        for name in self.groups:
            state = c.sets[name]
            existed, _, comment_before = self.set_before[name]
            if existed == bool(state.finished) and (not existed or state.comment == comment_before):
                continue
            direction = state.layout.direction
            if state.owner is None:
                allow_dirty[(direction, state.layout.family)] = True
            else:
                owners[direction].add(state.owner)
        for direction in DIRECTIONS:
            peers = peers_of[direction]
            claimants = set(peers.moved)
            for peer in sorted(owners[direction], key=lambda p: p.sort_key):
                chain, reached = peer_chain(direction, peer, c.comments)
                _, old_reached = c.peer_chains.get((direction, peer), ("", ()))
                name = peer_chain_name(direction, peer)
                self.set_chain(name, chain)
                if chain is None:
                    c.peer_chains.pop((direction, peer), None)
                else:
                    c.peer_chains[(direction, peer)] = (name, reached)
                if reached != old_reached:
                    claimants.update(peers.members.get(peer, {}))
            # Claims are counts and entries a function of them: the order pods are visited in
            # does not matter, and the delta sorts what it emits.
            claims_of = {f: c.claims[(direction, f)] for f in FAMILIES}
            touched: dict[Family, set[IPAddress]] = {f: set() for f in FAMILIES}
            pod_claims = c.pod_claims
            peer_chains = c.peer_chains
            for key in claimants:
                item = (key, direction)
                old = pod_claims.get(item, ())
                held = peers.of_pod.get(key)
                new: tuple[tuple[Family, IPAddress, PeerIdentity], ...] = ()
                if held is not None:
                    peer, pod = held
                    found = peer_chains.get((direction, peer))
                    if found is not None:
                        new = tuple((f, ip, peer) for f in found[1] if (ip := pod.ip(f)) is not None)
                if old == new:
                    continue
                for family, ip, peer in old:
                    claims = claims_of[family][ip]
                    claims[peer] -= 1
                    if not claims[peer]:
                        del claims[peer]
                    touched[family].add(ip)
                for family, ip, peer in new:
                    claims = claims_of[family].setdefault(ip, {})
                    claims[peer] = claims.get(peer, 0) + 1
                    touched[family].add(ip)
                if new:
                    pod_claims[item] = new
                else:
                    pod_claims.pop(item, None)
            for family, addresses in touched.items():
                claims_at = claims_of[family]
                entries = c.peer_entries[(direction, family)]
                for ip in addresses:
                    holders = claims_at.get(ip)
                    entry = None
                    if holders:
                        top = next(iter(holders)) if len(holders) == 1 else max(holders, key=lambda p: p.sort_key)
                        entry = Jump(peer_chains[(direction, top)][0])
                    else:
                        claims_at.pop(ip, None)
                    current = entries.get(ip)
                    if current != entry:
                        self.entry_before.setdefault((direction, family, ip), current)
                        if entry is None:
                            del entries[ip]
                        else:
                            entries[ip] = entry
        return allow_dirty

    def delta(self) -> RulesetDelta:
        c = self.store
        whole: list[Set] = []
        removed: list[str] = []
        added: list[tuple[str, tuple[Element, ...]]] = []
        dropped: list[tuple[str, tuple[Element, ...]]] = []
        comments: list[tuple[str, str]] = []
        for name in sorted(self.groups):
            existed, interval_before, comment_before = self.set_before[name]
            state = c.sets[name]
            if not state.finished:
                if existed:
                    removed.append(name)
                continue
            if not existed or interval_before != state.interval:
                whole.append(c.set_object(name))
                if existed:
                    self.forced.add(self._reader(name, state))
                continue
            before: set[Element] = set()
            after: set[Element] = set()
            for group in self.groups[name]:
                before.update(self.group_before[(name, group)])
                after.update(state.finished.get(group, ()))
            if after - before:
                added.append((name, tuple(sorted(after - before))))
            if before - after:
                dropped.append((name, tuple(sorted(before - after))))
            if state.comment != comment_before:
                comments.append((name, state.comment))
        for family, before_addresses in self.node_before.items():
            name = c.node_set(family).name
            b, a = set(before_addresses), set(c.node_sets[family])
            if a - b:
                added.append((name, tuple(sorted((address_interval(x),) for x in a - b))))
            if b - a:
                dropped.append((name, tuple(sorted((address_interval(x),) for x in b - a))))
        came: dict[str, list[Element]] = {}
        went: dict[str, list[Element]] = {}
        for (direction, family, ip), was in self.policed_before.items():
            held = ip in c.policed[(direction, family)]
            if held != was:
                (came if held else went).setdefault(policed_set_name(direction, family), []).append(
                    (address_interval(ip),)
                )
        added += [(name, tuple(sorted(elements))) for name, elements in came.items()]
        dropped += [(name, tuple(sorted(elements))) for name, elements in went.items()]
        maps: list[VerdictMap] = []
        entries_added: dict[str, list[MapEntry]] = {}
        entries_removed: dict[str, list[MapEntry]] = {}
        for (direction, family), had in self.map_before.items():
            has = bool(c.peer_entries[(direction, family)])
            if has and not had:
                maps.append(c.peer_map(direction, family))
            elif had and not has:
                removed.append(peer_map_name(direction, family))
        for (direction, family, ip), old in self.entry_before.items():
            if not self.map_before[(direction, family)] or not c.peer_entries[(direction, family)]:
                continue
            new = c.peer_entries[(direction, family)].get(ip)
            if old == new:
                continue
            name = peer_map_name(direction, family)
            if old is not None:
                entries_removed.setdefault(name, []).append((ip, old))
            if new is not None:
                entries_added.setdefault(name, []).append((ip, new))
        for (direction, family, entry), had in self.held_before.items():
            if had != (entry in c.dispatch_held[(direction, family)]):
                name = dispatch_map_name(direction, family)
                (entries_removed if had else entries_added).setdefault(name, []).append(entry)
        chains: list[Chain] = []
        removed_chains: list[str] = []
        for name, old_chain in self.chain_before.items():
            now = c.chains.get(name)
            if now is None:
                if old_chain is not None:
                    removed_chains.append(name)
            elif now != old_chain or name in self.forced:
                chains.append(now)
        for name in self.forced - set(self.chain_before):
            chains.append(c.chains[name])
        return RulesetDelta(
            sets=tuple(sorted(whole, key=lambda s: s.name)),
            maps=tuple(sorted(maps, key=lambda m: m.name)),
            removed=tuple(sorted(removed)),
            added_elements=tuple(sorted(added)),
            removed_elements=tuple(sorted(dropped)),
            added_entries=tuple((n, tuple(sorted(e, key=entry_order))) for n, e in sorted(entries_added.items())),
            removed_entries=tuple(
                (n, tuple(sorted(e, key=entry_order))) for n, e in sorted(entries_removed.items())
            ),
            chains=tuple(sorted(chains, key=lambda ch: ch.name)),
            removed_chains=tuple(sorted(removed_chains)),
            set_comments=tuple(sorted(comments)),
        )

    def cleanup(self) -> None:
        """Forget the sets this step emptied."""
        for name in self.groups:
            if not self.store.sets[name].finished:
                del self.store.sets[name]
                self.store.set_objects.pop(name, None)

    @staticmethod
    def _reader(name: str, state: SetState) -> str:
        """The chain that looks up a set: its peer identity's chain, or the shared allow chain."""
        if state.owner is not None:
            return peer_chain_name(state.layout.direction, state.owner)
        return allow_chain_name(state.layout.direction, state.layout.family)
