"""Address and port intervals: ipBlock ``except`` by subtraction, and disjoint canonical forms.

An ipBlock "cidr" minus its "except" CIDRs ("CIDRs that should not be included within an
IPBlock") is not a CIDR, so it is compiled into disjoint inclusive integer intervals. nftables
interval sets reject overlapping elements and a concatenated interval set (pipapo) matches the
first field, then the next, so everything handed to a set is made disjoint here and merged
where adjacent: one canonical form for one set of points, which keeps output deterministic and
lets equal sets compare equal.

Invariants: every interval is inclusive, ``low <= high``; a normalised list is sorted, disjoint
and has no two adjacent intervals (they would have been merged).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from policyctl.policy.model import Family, IPAddress, IPNetwork

PORT_MIN = 0
PORT_MAX = 65535


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    """An inclusive range of integers: addresses of one family, or ports."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"empty interval {self.low}..{self.high}")

    def contains(self, value: int) -> bool:
        return self.low <= value <= self.high

    @property
    def is_single(self) -> bool:
        return self.low == self.high


def network_interval(network: IPNetwork) -> Interval:
    return Interval(int(network.network_address), int(network.broadcast_address))


def address_interval(address: IPAddress) -> Interval:
    return Interval(int(address), int(address))


def normalise(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """The union of ``intervals`` as sorted, disjoint, non-adjacent intervals."""
    merged: list[Interval] = []
    for current in sorted(intervals):
        if merged and current.low <= merged[-1].high + 1:
            last = merged[-1]
            merged[-1] = Interval(last.low, max(last.high, current.high))
        else:
            merged.append(current)
    return tuple(merged)


def subtract(base: Iterable[Interval], removed: Iterable[Interval]) -> tuple[Interval, ...]:
    """``base`` minus ``removed``, normalised."""
    result = list(normalise(base))
    for cut in normalise(removed):
        kept: list[Interval] = []
        for part in result:
            if cut.high < part.low or cut.low > part.high:
                kept.append(part)
                continue
            if part.low < cut.low:
                kept.append(Interval(part.low, cut.low - 1))
            if cut.high < part.high:
                kept.append(Interval(cut.high + 1, part.high))
        result = kept
    return normalise(result)


def block_intervals(cidr: IPNetwork, excepts: Iterable[IPNetwork]) -> tuple[Interval, ...]:
    """The addresses an ipBlock matches; excepts of the other family cannot overlap and are
    ignored."""
    return subtract([network_interval(cidr)], [network_interval(e) for e in excepts if e.version == cidr.version])


def as_address(value: int, family: Family) -> IPAddress:
    return ipaddress.IPv4Address(value) if family is Family.IPV4 else ipaddress.IPv6Address(value)


def as_prefix(interval: Interval, family: Family) -> IPNetwork | None:
    """The CIDR that covers exactly ``interval``, or None when it is not prefix-aligned."""
    bits = 32 if family is Family.IPV4 else 128
    size = interval.high - interval.low + 1
    if size & (size - 1) or interval.low % size:
        return None
    length = bits - (size.bit_length() - 1)
    return ipaddress.ip_network((as_address(interval.low, family), length))


ALL_PORTS = Interval(PORT_MIN, PORT_MAX)
