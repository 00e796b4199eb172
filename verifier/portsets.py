"""Sets of (protocol, port) as disjoint interval lists: the port dimension of every proof.

A ``NetworkPolicyPort`` names "the specified protocol AND port", a range ``port``..``endPort``
(inclusive), a named port (numbers on the destination pod) or, without ``port``, every port of
its protocol. Whatever policies allow between two ends is therefore a union of such pieces per
protocol, which this module keeps as normalised inclusive intervals over 1-65535: never a
per-port enumeration.

Invariants: a :class:`PortSet` holds one normalised interval tuple per protocol (sorted,
disjoint, non-adjacent, inside 1-65535), so two sets are equal exactly when they contain the
same (protocol, port) pairs; every operation returns a new normalised set.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from policyctl.compiler.intervals import Interval, normalise, subtract
from policyctl.policy.model import Protocol

FIRST_PORT = 1
LAST_PORT = 65535
PROTOCOLS: tuple[Protocol, ...] = (Protocol.TCP, Protocol.UDP, Protocol.SCTP)
_FULL = (Interval(FIRST_PORT, LAST_PORT),)


def _clip(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    kept = []
    for i in intervals:
        low, high = max(i.low, FIRST_PORT), min(i.high, LAST_PORT)
        if low <= high:
            kept.append(Interval(low, high))
    return normalise(kept)


def _intersect(a: tuple[Interval, ...], b: tuple[Interval, ...]) -> tuple[Interval, ...]:
    found: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        low, high = max(a[i].low, b[j].low), min(a[i].high, b[j].high)
        if low <= high:
            found.append(Interval(low, high))
        if a[i].high < b[j].high:
            i += 1
        else:
            j += 1
    return tuple(found)


@dataclass(frozen=True, slots=True)
class PortSet:
    """Ports per protocol: ``tcp``, ``udp``, ``sctp`` are normalised interval tuples."""

    tcp: tuple[Interval, ...] = ()
    udp: tuple[Interval, ...] = ()
    sctp: tuple[Interval, ...] = ()

    @classmethod
    def of(cls, pieces: Iterable[tuple[Protocol, Interval]]) -> PortSet:
        by: dict[Protocol, list[Interval]] = {p: [] for p in PROTOCOLS}
        for protocol, interval in pieces:
            by[protocol].append(interval)
        return cls(_clip(by[Protocol.TCP]), _clip(by[Protocol.UDP]), _clip(by[Protocol.SCTP]))

    @classmethod
    def whole(cls, protocol: Protocol) -> PortSet:
        return cls.of([(protocol, _FULL[0])])

    def get(self, protocol: Protocol) -> tuple[Interval, ...]:
        if protocol is Protocol.TCP:
            return self.tcp
        return self.udp if protocol is Protocol.UDP else self.sctp

    def items(self) -> Iterator[tuple[Protocol, tuple[Interval, ...]]]:
        for protocol in PROTOCOLS:
            yield protocol, self.get(protocol)

    def __bool__(self) -> bool:
        return bool(self.tcp or self.udp or self.sctp)

    def __or__(self, other: PortSet) -> PortSet:
        return PortSet(*(normalise(self.get(p) + other.get(p)) for p in PROTOCOLS))

    def __and__(self, other: PortSet) -> PortSet:
        return PortSet(*(_intersect(self.get(p), other.get(p)) for p in PROTOCOLS))

    def __sub__(self, other: PortSet) -> PortSet:
        return PortSet(*(subtract(self.get(p), other.get(p)) for p in PROTOCOLS))

    def contains(self, protocol: Protocol, port: int) -> bool:
        return any(i.low <= port <= i.high for i in self.get(protocol))

    def issubset(self, other: PortSet) -> bool:
        return not (self - other)

    @property
    def is_all(self) -> bool:
        return all(self.get(p) == _FULL for p in PROTOCOLS)

    def first(self) -> tuple[Protocol, int] | None:
        """The lowest (protocol, port) in the set, in TCP, UDP, SCTP order: a witness."""
        for protocol, intervals in self.items():
            if intervals:
                return protocol, intervals[0].low
        return None

    def count(self) -> int:
        return sum(i.high - i.low + 1 for _, intervals in self.items() for i in intervals)

    def __str__(self) -> str:
        """``TCP 80-81, 443; UDP 53``; ``all``; ``none``."""
        if not self:
            return "none"
        if self.is_all:
            return "all"
        parts = []
        for protocol, intervals in self.items():
            if intervals == _FULL:
                parts.append(f"{protocol.value} (all ports)")
            elif intervals:
                spans = ", ".join(str(i.low) if i.is_single else f"{i.low}-{i.high}" for i in intervals)
                parts.append(f"{protocol.value} {spans}")
        return "; ".join(parts)

    def ranges(self) -> tuple[tuple[Protocol, int, int], ...]:
        """Every (protocol, first, last) run, for machine output."""
        return tuple((p, i.low, i.high) for p, intervals in self.items() for i in intervals)


ALL = PortSet(_FULL, _FULL, _FULL)
NONE = PortSet()


def parse_ports(text: str) -> PortSet:
    """``80``, ``80/TCP``, ``1000-2000/udp``, ``TCP`` or ``all``: the form assertions and the CLI
    accept. Raises ValueError with the reason."""
    value = text.strip()
    if value.lower() in ("all", "any", "*"):
        return ALL
    number, _, protocol_text = value.partition("/")
    if not protocol_text and number.upper() in Protocol.__members__:
        return PortSet.whole(Protocol(number.upper()))
    try:
        protocol = Protocol((protocol_text or "TCP").upper())
    except ValueError:
        raise ValueError(f"{text!r}: the protocol must be TCP, UDP or SCTP") from None
    low_text, dash, high_text = number.partition("-")
    try:
        low = int(low_text)
        high = int(high_text) if dash else low
    except ValueError:
        raise ValueError(f"{text!r}: expected PORT, PORT-PORT or PROTOCOL, e.g. 8080/TCP") from None
    if not FIRST_PORT <= low <= high <= LAST_PORT:
        raise ValueError(f"{text!r}: ports must be 1-65535 with the first not above the last")
    return PortSet.of([(protocol, Interval(low, high))])
