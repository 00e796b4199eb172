"""Peer identities: the peer pods of one direction as this node's rules tell them apart.

Pods that the same used peer selectors select and that have the same named container ports are
treated alike by every local rule, so they share one chain and its sets (:class:`PeerIdentity`);
the number of chains grows with these classes, never with pods. :class:`PeerLookup` is what
gathering elements reads of them: a whole compile answers from one pass (:class:`Context`), the
incremental compiler from the state it keeps (:mod:`peerstate`).
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from policyctl.policy.model import Direction, Family, IPBlockPeer, Pod

from .graph import PolicyGraph, RuleView, SelectedIdentities
from .identities import Identity
from .layout import digest


NamedPorts = tuple[tuple[str, str, int], ...]


def named_ports(pod: Pod) -> NamedPorts:
    """A pod's named container ports as (name, protocol, number), sorted."""
    return tuple(sorted((c.name, c.protocol.value, c.port) for c in pod.ports if c.name is not None))


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """A peer pod as this node's rules of one direction see it: which of their peer selectors
    select it (namespace and pod labels decide that, once per selector identity) and its named
    container ports (an egress named port "resolves on the destination pod"). Pods equal in
    both are treated alike by every local rule, so they share one chain and its sets: all
    replicas of a workload do, and so do workloads no local rule tells apart. The name follows
    from the selectors and ports only, so relabelling a pod within the same selectors changes
    nothing in the ruleset."""

    selectors: tuple[str, ...]
    ports: NamedPorts

    @property
    def id(self) -> str:
        return _peer_id(self.selectors, self.ports)

    @property
    def sort_key(self) -> tuple[object, ...]:
        return (self.selectors, self.ports)


@functools.lru_cache(maxsize=1 << 16)
def _peer_id(selectors: tuple[str, ...], ports: NamedPorts) -> str:
    return digest(repr((selectors, ports)))


def by_ports(graph: PolicyGraph) -> dict[Identity, dict[NamedPorts, tuple[Pod, ...]]]:
    """Members of each selector identity with an address, split by named ports."""
    groups: dict[Identity, dict[NamedPorts, list[Pod]]] = {}
    for identity, members in graph.index.members.items():
        for member in members:
            if member.ips:
                groups.setdefault(identity, {}).setdefault(named_ports(member), []).append(member)
    return {i: {k: tuple(m) for k, m in sorted(g.items())} for i, g in groups.items()}


ANY_SELECTOR = "any"


@dataclass
class Peers:
    """The peer identities of one direction: each (selector identity, named ports) group of
    pods mapped to the :class:`PeerIdentity` the local rules give it, and its members."""

    of: dict[tuple[Identity, NamedPorts], PeerIdentity] = field(default_factory=dict)
    members: dict[PeerIdentity, list[Pod]] = field(default_factory=dict)
    families: dict[PeerIdentity, set[Family]] = field(default_factory=dict)
    by_selector: dict[str, list[PeerIdentity]] = field(default_factory=dict)

    def reached(
        self, peer: SelectedIdentities, groups: dict[Identity, dict[NamedPorts, tuple[Pod, ...]]]
    ) -> list[PeerIdentity]:
        """The peer identities a pod peer selects (computed once per selector)."""
        if peer.node not in self.by_selector:
            found = {self.of[(i, ports)] for i in peer.identities for ports in groups.get(i, {})}
            self.by_selector[peer.node] = sorted(found, key=lambda p: p.sort_key)
        return self.by_selector[peer.node]


def peers(groups: dict[Identity, dict[NamedPorts, tuple[Pod, ...]]], views: Iterable[RuleView]) -> Peers:
    """Which local peer selectors select each identity (an egress rule without peers but with
    a named port reaches every pod, marked ``any``), and the peer identities that follow."""
    selected: dict[Identity, set[str]] = {}
    everyone = False
    for view in views:
        if view.peers is None:
            everyone = everyone or (
                view.direction is Direction.EGRESS and any(isinstance(m.port, str) for m in view.ports)
            )
            continue
        for peer in view.peers:
            if not isinstance(peer, IPBlockPeer):
                for identity in peer.identities:
                    selected.setdefault(identity, set()).add(peer.node)
    found = Peers()
    for identity, by_ports in groups.items():
        names = selected.get(identity, set()) | ({ANY_SELECTOR} if everyone else set())
        if not names:
            continue
        for ports, members in by_ports.items():
            shared = PeerIdentity(tuple(sorted(names)), ports)
            found.of[(identity, ports)] = shared
            found.members.setdefault(shared, []).extend(members)
            found.families.setdefault(shared, set()).update(Family.of(a) for m in members for a in m.ips)
    return found


class PeerLookup(typing.Protocol):
    """What gathering one local pod's elements reads of the rest of the cluster: the peer
    identities of each direction and the pods a named egress port may resolve on. A whole
    compile answers from one pass over the cluster (:class:`Context`); an incremental
    compiler answers from state it keeps between snapshots."""

    def reached(self, direction: Direction, peer: SelectedIdentities) -> Sequence[PeerIdentity]:
        """The peer identities a pod peer selects, sorted by ``sort_key``."""
        ...

    def everyone(self, direction: Direction) -> Sequence[PeerIdentity]:
        """Every peer identity of the direction, sorted by ``sort_key``."""
        ...

    def families(self, direction: Direction, peer: PeerIdentity) -> AbstractSet[Family]:
        """The families the members of ``peer`` have addresses in."""
        ...

    def representative(self, direction: Direction, peer: PeerIdentity) -> Pod:
        """A member of ``peer`` (all members have the same named ports)."""
        ...

    def candidates(self) -> Iterable[Pod]:
        """Pods with an identity, on which a named egress port of an ipBlock rule resolves."""
        ...


@dataclass
class Context:
    """What one compile reads of the whole cluster, computed once: pods by selector identity
    and named ports, the pods a named egress port may resolve on (pods with an identity), and
    the peer identities of each direction."""

    groups: dict[Identity, dict[NamedPorts, tuple[Pod, ...]]]
    pods: list[Pod]
    peers: dict[Direction, Peers]

    def reached(self, direction: Direction, peer: SelectedIdentities) -> Sequence[PeerIdentity]:
        return self.peers[direction].reached(peer, self.groups)

    def everyone(self, direction: Direction) -> Sequence[PeerIdentity]:
        return sorted(self.peers[direction].members, key=lambda p: p.sort_key)

    def families(self, direction: Direction, peer: PeerIdentity) -> AbstractSet[Family]:
        return self.peers[direction].families[peer]

    def representative(self, direction: Direction, peer: PeerIdentity) -> Pod:
        return self.peers[direction].members[peer][0]

    def candidates(self) -> Iterable[Pod]:
        return self.pods
