"""The typed nftables ruleset one node enforces: a table, its sets and verdict maps, its chains.

This is what the compiler produces and what both renderers (:mod:`render_json` for libnftables,
:mod:`render_text` for people) and the evaluator's tests read. It holds only the statement kinds
the compiler emits, so every renderer and the evaluator can be exhaustive over them.

Invariants: set elements are sorted and disjoint (see :mod:`intervals`); a set has
``interval=True`` only when some element is a range or a CIDR; names of sets and chains are
fixed by what they stand for (a direction and family, a peer identity, a local pod), so pod
churn changes elements, not names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union

from policyctl.policy.model import Family, IPAddress

from .intervals import Interval


class Mode(str, enum.Enum):
    """What a denied new connection meets: ``enforce`` drops it after a rate-limited log;
    ``audit`` logs and counts it and lets it through."""

    ENFORCE = "enforce"
    AUDIT = "audit"


class Hook(str, enum.Enum):
    POSTROUTING = "postrouting"
    INPUT = "input"


class FieldType(str, enum.Enum):
    """nftables data types of set keys."""

    IPV4 = "ipv4_addr"
    IPV6 = "ipv6_addr"
    PROTO = "inet_proto"
    SERVICE = "inet_service"
    MARK = "mark"

    @classmethod
    def address(cls, family: Family) -> FieldType:
        return cls.IPV4 if family is Family.IPV4 else cls.IPV6


class Key(str, enum.Enum):
    """Packet fields the compiler looks up (``ip saddr`` is only defined for IPv4 packets,
    ``th dport`` only for TCP, UDP and SCTP)."""

    IP_SADDR = "ip saddr"
    IP_DADDR = "ip daddr"
    IP6_SADDR = "ip6 saddr"
    IP6_DADDR = "ip6 daddr"
    L4PROTO = "meta l4proto"
    TH_DPORT = "th dport"
    META_MARK = "meta mark"

    @classmethod
    def address(cls, family: Family, *, source: bool) -> Key:
        if family is Family.IPV4:
            return cls.IP_SADDR if source else cls.IP_DADDR
        return cls.IP6_SADDR if source else cls.IP6_DADDR


Element = tuple[Interval, ...]
"""One set element: one inclusive interval per key field (a single value is ``low == high``;
protocols are their IANA numbers)."""


@dataclass(frozen=True, slots=True)
class Set:
    name: str
    types: tuple[FieldType, ...]
    elements: tuple[Element, ...]
    interval: bool
    comment: str = ""
    sources: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Jump:
    target: str


@dataclass(frozen=True, slots=True)
class Goto:
    target: str


class Verdict(str, enum.Enum):
    ACCEPT = "accept"
    DROP = "drop"
    RETURN = "return"


@dataclass(frozen=True, slots=True)
class VerdictMap:
    """An address -> chain map: per-packet dispatch to a local pod's chain in one lookup. A
    map keyed by ``mark`` holds mark values instead (``markedpeers``). Its elements are in
    :func:`entry_order`."""

    name: str
    key: FieldType
    elements: tuple[tuple[IPAddress | int, Jump], ...]
    comment: str = ""


def entry_order(entry: tuple[IPAddress | int, Jump]) -> tuple[IPAddress | int, str]:
    """The order of a verdict map's entries: by key, then by target. Two local pods sharing an
    address give the dispatch map two entries for one key (a ruleset the enforcer refuses
    until one is gone); ordered by target too, a map's entries are in one order however they
    were gathered or patched (from sets, whose order follows string hashes)."""
    return entry[0], entry[1].target


@dataclass(frozen=True, slots=True)
class CtStateIn:
    states: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Icmpv6TypeRange:
    """``icmpv6 type low-high`` (implies ``meta l4proto ipv6-icmp``)."""

    low: int
    high: int


@dataclass(frozen=True, slots=True)
class TcpNotSyn:
    """``tcp flags & (fin | syn | rst | ack) != syn`` (implies ``meta l4proto tcp``): a TCP
    packet that does not open a connection. With ``ct state new`` it is a mid-stream pickup:
    conntrack (``nf_conntrack_tcp_loose=1``, the default) made a new entry from a packet of a
    connection it no longer tracked, in whatever direction that packet went."""


@dataclass(frozen=True, slots=True)
class NotLocalAddress:
    """``fib saddr type != local`` (``daddr`` when not ``source``): the address is none of
    this host's own. CNIs put host addresses inside a node's pod range (the bridge plugin's
    gateway, Cilium's router address), and those are the node, never a pod."""

    source: bool


@dataclass(frozen=True, slots=True)
class Lookup:
    """``k1 . k2 ... @set``."""

    keys: tuple[Key, ...]
    set: str


@dataclass(frozen=True, slots=True)
class VmapLookup:
    """``key vmap @map``; with ``mask``, ``key & mask vmap @map``."""

    key: Key
    map: str
    mask: int | None = None


@dataclass(frozen=True, slots=True)
class MarkSet:
    """``meta mark set meta mark & keep`` (``bits`` 0) or ``meta mark set meta mark | bits``
    (``keep`` all ones): the packet mark changed only in the bits policyctl was given
    (``markedpeers``), every other bit kept as its owner left it."""

    keep: int = 0xFFFFFFFF
    bits: int = 0

    def __post_init__(self) -> None:
        if (self.bits == 0) == (self.keep == 0xFFFFFFFF):
            raise ValueError("a mark statement either clears bits or sets bits")

    def apply(self, mark: int) -> int:
        return (mark & self.keep) | self.bits


@dataclass(frozen=True, slots=True)
class MarkTest:
    """``meta mark & mask == 0`` (``zero``) or ``!= 0``: whether any bit policyctl was given
    is set on arrival. The marked peer layout sets and clears its bits only on packets that
    arrive with all of them clear, so clearing them again restores the mark exactly; a packet
    that arrives with some set (another component uses them) is decided without marks
    (``markedpeers``)."""

    mask: int
    zero: bool


@dataclass(frozen=True, slots=True)
class Counter:
    pass


@dataclass(frozen=True, slots=True)
class Limit:
    rate: int
    per: str
    burst: int


@dataclass(frozen=True, slots=True)
class Log:
    """``log prefix P``; with ``group`` the packet goes to that NFLOG group (read by
    ``policyctl drops`` and the agent) instead of the kernel log."""

    prefix: str
    group: int | None = None


Statement = Union[
    CtStateIn, Icmpv6TypeRange, TcpNotSyn, NotLocalAddress, Lookup, VmapLookup, MarkSet, MarkTest, Counter, Limit, Log,
    Verdict, Jump, Goto,
]


@dataclass(frozen=True, slots=True)
class Rule:
    statements: tuple[Statement, ...]
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Chain:
    """A chain; ``hook``/``priority``/``policy`` only for base chains. ``comment`` is shown in
    the text rendering only (libnftables 1.0.6 JSON does not carry chain comments)."""

    name: str
    rules: tuple[Rule, ...]
    hook: Hook | None = None
    priority: int | None = None
    policy: Verdict | None = None
    comment: str = ""

    @property
    def is_base(self) -> bool:
        return self.hook is not None


@dataclass(frozen=True, slots=True)
class Ruleset:
    """The whole ``inet`` table for one node."""

    table: str
    node: str
    mode: Mode
    sets: tuple[Set, ...]
    maps: tuple[VerdictMap, ...]
    chains: tuple[Chain, ...]
    family: str = "inet"

    @property
    def set_element_counts(self) -> dict[str, int]:
        """Elements per set and per map, by name."""
        counts = {s.name: len(s.elements) for s in self.sets}
        counts.update({m.name: len(m.elements) for m in self.maps})
        return dict(sorted(counts.items()))

    @property
    def element_count(self) -> int:
        return sum(self.set_element_counts.values())

    def chain(self, name: str) -> Chain:
        return next(c for c in self.chains if c.name == name)
