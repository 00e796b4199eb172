"""An address range cut where policies may treat its addresses differently, and ranges merged.

Policies see an address outside the pod network only through ipBlocks (and what the index
adds for cluster-scoped peers), so :meth:`PolicyIndex.atoms` cuts the address space where any
of them starts or ends. Two more facts depend on *which* address it is: ingress from the
destination pod's own node is always allowed ("agents on a node ... can communicate with all
pods on that node"), and node addresses may be matched as nodes; so every node address inside
the range is its own piece. :func:`pieces` clips the atoms to a range and gives each piece
what decides it: the index's view of its addresses and whether it is an address of a given
node. Pieces with equal views and flags get the same verdict with the same reasons (only the
address they name differs), so a caller needs to decide one piece per distinct pair at most.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from policyctl.compiler.intervals import as_address
from policyctl.policy.addressranges import AddressRange
from policyctl.policy.model import Family, IPAddress, IPNetwork
from policyctl.policy.cluster import Cluster

from .index import PolicyIndex, View


@dataclass(frozen=True, slots=True)
class Piece:
    """Addresses that every policy treats alike (``view``); ``own_node``: they are the
    address of the node of the pod at the other end."""

    range: AddressRange
    view: View
    own_node: bool


@dataclass(frozen=True, slots=True)
class RangeSet:
    """Disjoint, non-adjacent ranges in address order (the addresses one answer covers)."""

    ranges: tuple[AddressRange, ...]

    @classmethod
    def merged(cls, ranges: Iterable[AddressRange]) -> RangeSet:
        joined: list[AddressRange] = []
        for piece in sorted(ranges, key=lambda r: int(r.first)):
            if joined and int(joined[-1].last) + 1 >= int(piece.first):
                last = max(joined[-1].last, piece.last)
                joined[-1] = AddressRange(joined[-1].first, last)
            else:
                joined.append(piece)
        return cls(tuple(joined))

    @property
    def networks(self) -> tuple[IPNetwork, ...]:
        """Every range as the fewest CIDRs, in order."""
        return tuple(n for r in self.ranges for n in r.networks)

    @property
    def first(self) -> IPAddress:
        return self.ranges[0].first

    def within(self, spans: Iterable[tuple[int, int]]) -> RangeSet:
        """The addresses of this set inside ``spans`` (inclusive integer bounds)."""
        starts = [int(r.first) for r in self.ranges]
        found: list[AddressRange] = []
        for low, high in spans:
            at = max(bisect.bisect_right(starts, low) - 1, 0)
            for piece in self.ranges[at:]:
                first, last = max(int(piece.first), low), min(int(piece.last), high)
                if int(piece.first) > high:
                    break
                if first <= last:
                    family = Family.of(piece.first)
                    found.append(AddressRange(as_address(first, family), as_address(last, family)))
        return RangeSet.merged(found)

    def __str__(self) -> str:
        return ", ".join(str(r) for r in self.ranges)


def pieces(index: PolicyIndex, network: IPNetwork, *, own_node: Iterable[IPAddress] = ()) -> tuple[Piece, ...]:
    """``network`` cut at every boundary the index knows and around every node address in it;
    ``own_node``: the addresses of the node of the pod at the other end (the own-node bypass)."""
    cluster: Cluster = index.cluster
    family = Family.of(network)
    low, high = int(network.network_address), int(network.broadcast_address)
    own = frozenset(own_node)
    points = [a for n in cluster.nodes for a in n.addresses if Family.of(a) is family and low <= int(a) <= high]
    found = []
    for atom in index.atoms(family, points=points):
        if atom.high < low or atom.low > high:
            continue
        first, last = as_address(max(atom.low, low), family), as_address(min(atom.high, high), family)
        found.append(Piece(AddressRange(first, last), index.view_of_address(first), first in own and first == last))
    return tuple(found)

