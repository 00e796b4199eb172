"""The peer identities a node's rules reach, kept per direction across snapshots.

A pod's peer identity (:class:`PeerIdentity`) is the used peer selectors that select it
(plus ``any`` when an egress rule without peers has a named port) and its named ports.
:class:`Peers` holds, for one direction, which pods on the pod network are members of which
identity and the families the members have addresses in, and records what a step changed: the
pods that moved and each touched identity's families before it.
:class:`Lookup` and :class:`Within` answer what ``elements.collect`` reads of the peers from
that state, for the whole of it or for some identities only.

Invariants: an identity is in ``members`` (and ``counts``, and ``by_selector`` under each of
its selectors) exactly while it has a member; ``counts`` holds, per family, how many of its
members have an address in it, and ``families`` is the set of those families as of the last
``settle``; the cached sorted answers of ``reached`` (for the identity's selectors) and of
``everyone`` are dropped whenever an identity appears or disappears.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet

from policyctl.policy.model import Direction, Family, Pod

from .peeridentity import PeerIdentity
from .graph import SelectedIdentities
from .identities import Identity


class Peers:
    """The peer identities of one direction, their members and the families they have
    addresses in, with what changed in the current step."""

    def __init__(self) -> None:
        self.names: dict[Identity, tuple[str, ...]] = {}
        self.of_pod: dict[str, tuple[PeerIdentity, Pod]] = {}
        self.members: dict[PeerIdentity, dict[str, Pod]] = {}
        self.counts: dict[PeerIdentity, dict[Family, int]] = {}
        self.families: dict[PeerIdentity, frozenset[Family]] = {}
        self.by_selector: dict[str, set[PeerIdentity]] = {}
        self._reached: dict[str, tuple[PeerIdentity, ...]] = {}
        self._everyone: tuple[PeerIdentity, ...] | None = None
        self.before: dict[PeerIdentity, frozenset[Family]] = {}
        self.moved: set[str] = set()

    def reached(self, selector: str) -> tuple[PeerIdentity, ...]:
        found = self._reached.get(selector)
        if found is None:
            found = self._reached[selector] = tuple(
                sorted(self.by_selector.get(selector, ()), key=lambda p: p.sort_key)
            )
        return found

    def everyone(self) -> tuple[PeerIdentity, ...]:
        if self._everyone is None:
            self._everyone = tuple(sorted(self.members, key=lambda p: p.sort_key))
        return self._everyone

    def place(self, key: str, pod: Pod | None, peer: PeerIdentity | None) -> None:
        """Make ``pod`` (under ``key``) a member of ``peer``, or of none."""
        old = self.of_pod.get(key)
        if old is None and peer is None:
            return
        if old is not None and peer is not None and old[1] is pod and old[0] == peer:
            return
        if old is not None:
            self._leave(key, *old)
        if peer is not None and pod is not None:
            self._join(key, peer, pod)
        self.moved.add(key)

    def _touch(self, peer: PeerIdentity) -> None:
        if peer not in self.before:
            self.before[peer] = self.families.get(peer, frozenset())

    def _join(self, key: str, peer: PeerIdentity, pod: Pod) -> None:
        self._touch(peer)
        members = self.members.get(peer)
        if members is None:
            members = self.members[peer] = {}
            self.counts[peer] = {}
            for selector in peer.selectors:
                self.by_selector.setdefault(selector, set()).add(peer)
                self._reached.pop(selector, None)
            self._everyone = None
        members[key] = pod
        counts = self.counts[peer]
        for address in pod.ips:
            family = Family.of(address)
            counts[family] = counts.get(family, 0) + 1
        self.of_pod[key] = (peer, pod)

    def _leave(self, key: str, peer: PeerIdentity, pod: Pod) -> None:
        self._touch(peer)
        members = self.members[peer]
        del members[key]
        del self.of_pod[key]
        counts = self.counts[peer]
        for address in pod.ips:
            family = Family.of(address)
            counts[family] -= 1
            if not counts[family]:
                del counts[family]
        if not members:
            del self.members[peer], self.counts[peer]
            for selector in peer.selectors:
                self.by_selector[selector].discard(peer)
                self._reached.pop(selector, None)
            self._everyone = None

    def settle(self) -> list[PeerIdentity]:
        """Refresh the families of the peers touched in this step; returns those that
        appeared, disappeared or changed families (their reach changed)."""
        changed = []
        for peer, before in self.before.items():
            counts = self.counts.get(peer)
            now = frozenset(counts) if counts is not None else frozenset()
            if counts is None:
                self.families.pop(peer, None)
            else:
                self.families[peer] = now
            if now != before:
                changed.append(peer)
        return changed


class Lookup:
    """What ``elements.collect`` reads of the peers, answered from the kept state."""

    def __init__(self, peers: Mapping[Direction, Peers], pods: Mapping[str, Pod]) -> None:
        self._peers = peers
        self._pods = pods

    def reached(self, direction: Direction, peer: SelectedIdentities) -> Sequence[PeerIdentity]:
        return self._peers[direction].reached(peer.node)

    def everyone(self, direction: Direction) -> Sequence[PeerIdentity]:
        return self._peers[direction].everyone()

    def families(self, direction: Direction, peer: PeerIdentity) -> AbstractSet[Family]:
        return self._peers[direction].families[peer]

    def representative(self, direction: Direction, peer: PeerIdentity) -> Pod:
        return next(iter(self._peers[direction].members[peer].values()))

    def candidates(self) -> Iterable[Pod]:
        return self._pods.values()


class Within:
    """What ``elements.collect`` reads of one direction's peers when it is asked about some
    peer identities only: those of them that exist, answered as the whole lookup would."""

    def __init__(self, peers: Peers, only: Iterable[PeerIdentity]) -> None:
        self._peers = peers
        self._only = tuple(sorted((p for p in only if p in peers.members), key=lambda p: p.sort_key))

    def reached(self, direction: Direction, peer: SelectedIdentities) -> Sequence[PeerIdentity]:
        return tuple(p for p in self._only if peer.node in p.selectors)

    def everyone(self, direction: Direction) -> Sequence[PeerIdentity]:
        return self._only

    def families(self, direction: Direction, peer: PeerIdentity) -> AbstractSet[Family]:
        return self._peers.families[peer]

    def representative(self, direction: Direction, peer: PeerIdentity) -> Pod:
        return next(iter(self._peers.members[peer].values()))

    def candidates(self) -> Iterable[Pod]:
        return ()
