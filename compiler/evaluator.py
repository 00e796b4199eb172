"""A packet-by-packet evaluator of libnftables JSON, for exactly what the compiler emits.

It reads the JSON document (not the typed ruleset), so it checks the artifact the kernel gets;
:meth:`Evaluator.over` reads the same objects where a caller already holds them parsed (the
enforcer's last commit, ``enforcer.stateevaluator``), through :class:`SetLookup`.
Kernel behaviour it reproduces: base chains of a hook run in priority order and an ``accept``
ends only the base chain it happened in, while ``drop`` is final; a rule's statements run left
to right and the first failing match ends the rule; ``jump`` returns to the rule after it,
``goto`` does not return to the chain it left; falling off a regular chain or ``return`` goes
back to the caller, off a base chain applies its policy; payload matches carry their implicit
protocol dependency (``ip saddr`` never matches an IPv6 packet, ``icmpv6 type`` only ICMPv6,
``tcp flags`` only TCP);
sets and verdict maps match an element when every field of the key lies in the element's
value, prefix or range. ``limit`` is taken as not exceeded and ``log``/``counter`` are recorded.
``fib saddr|daddr type local`` holds for the addresses the evaluator is told are the host's own.

Anything else raises :class:`UnsupportedExpression`: the evaluator never guesses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from policyctl.policy.diagnostics import PolicyctlError
from policyctl.policy.model import Family, IPAddress

PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "ipv6-icmp": 58}
PORT_PROTOCOLS = frozenset({6, 17, 132})
ICMPV6_TYPES = {
    "nd-router-solicit": 133,
    "nd-router-advert": 134,
    "nd-neighbor-solicit": 135,
    "nd-neighbor-advert": 136,
    "nd-redirect": 137,
}
CT_STATES = frozenset({"new", "established", "related", "invalid", "untracked"})
TCP_FLAG_BITS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20, "ecn": 0x40, "cwr": 0x80}
SYN = TCP_FLAG_BITS["syn"]
ACK = TCP_FLAG_BITS["ack"]
MAX_JUMP_DEPTH = 16  # NFT_JUMP_STACK_SIZE


class UnsupportedExpression(PolicyctlError):
    """The JSON holds something this evaluator does not interpret."""


@dataclass(frozen=True, slots=True)
class Packet:
    """The headers a verdict can depend on. ``protocol`` is an IANA number; ``dport`` is set
    for TCP, UDP and SCTP only; ``icmp_type`` for ICMP(v6); ``tcp_flags`` (bits, read for TCP
    only) default to the SYN that opens a connection, so a default packet is a new
    connection's first packet."""

    saddr: IPAddress
    daddr: IPAddress
    protocol: int
    dport: int | None = None
    icmp_type: int | None = None
    ct_state: str = "new"
    tcp_flags: int = SYN
    mark: int = 0

    @property
    def family(self) -> Family:
        return Family.of(self.saddr)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verdict at one hook and how it was reached: ``(chain, rule index)`` of every rule
    whose statements all ran or that ended evaluation, and the log prefixes written."""

    accepted: bool
    trace: tuple[tuple[str, int], ...] = ()
    logs: tuple[str, ...] = ()
    mark: int = 0


_UNDEFINED = object()
MARK: dict[str, Any] = {"meta": {"key": "mark"}}


def _address(text: str) -> int:
    return int(ipaddress.ip_address(text))


def _scalar(kind: str, value: Any) -> tuple[int, int]:
    """One field value of a set element or a match's right side as an inclusive range."""
    if isinstance(value, dict):
        if "prefix" in value:
            net = ipaddress.ip_network(f"{value['prefix']['addr']}/{value['prefix']['len']}")
            return int(net.network_address), int(net.broadcast_address)
        if "range" in value:
            low, high = value["range"]
            return _scalar(kind, low)[0], _scalar(kind, high)[1]
        raise UnsupportedExpression(f"set value {value!r}")
    if kind in ("ipv4_addr", "ipv6_addr"):
        if not isinstance(value, str):
            raise UnsupportedExpression(f"{kind} value {value!r}")
        address = _address(value)
        return address, address
    if kind == "inet_proto":
        number = PROTOCOLS.get(value) if isinstance(value, str) else value
    elif kind == "icmpv6_type":
        number = ICMPV6_TYPES.get(value) if isinstance(value, str) else value
    elif kind in ("inet_service", "mark"):
        number = value
    else:
        raise UnsupportedExpression(f"data type {kind!r}")
    if not isinstance(number, int) or isinstance(number, bool):
        raise UnsupportedExpression(f"{kind} value {value!r}")
    return number, number


@dataclass
class _Set:
    types: tuple[str, ...]
    exact: set[tuple[int, ...]] = field(default_factory=set)
    ranges: list[tuple[tuple[int, int], ...]] = field(default_factory=list)
    verdicts: dict[tuple[int, ...], Any] = field(default_factory=dict)
    range_verdicts: list[tuple[tuple[tuple[int, int], ...], Any]] = field(default_factory=list)

    def add(self, value: Any, verdict: Any = None, *, is_map: bool = False) -> None:
        if isinstance(value, dict) and "elem" in value:
            value = value["elem"]["val"]
        parts = value["concat"] if isinstance(value, dict) and "concat" in value else [value]
        if len(parts) != len(self.types):
            raise UnsupportedExpression(f"element {value!r} does not fit type {self.types}")
        fields = tuple(_scalar(t, v) for t, v in zip(self.types, parts))
        if all(low == high for low, high in fields):
            key = tuple(low for low, _ in fields)
            if is_map:
                self.verdicts[key] = verdict
            else:
                self.exact.add(key)
        elif is_map:
            self.range_verdicts.append((fields, verdict))
        else:
            self.ranges.append(fields)

    def contains(self, key: tuple[int, ...]) -> bool:
        if key in self.exact:
            return True
        return any(all(lo <= k <= hi for k, (lo, hi) in zip(key, f)) for f in self.ranges)

    def lookup(self, key: tuple[int, ...]) -> Any:
        if key in self.verdicts:
            return self.verdicts[key]
        for fields, verdict in self.range_verdicts:
            if all(lo <= k <= hi for k, (lo, hi) in zip(key, fields)):
                return verdict
        return None


class SetLookup(Protocol):
    """A named set or verdict map as evaluation uses it: keys are tuples of integers, one per
    field of the set's type."""

    def contains(self, key: tuple[int, ...]) -> bool: ...

    def lookup(self, key: tuple[int, ...]) -> Any: ...


@dataclass
class Chain:
    """A chain as evaluation uses it: its rules' statements and, for a base chain, its hook,
    priority and policy."""

    name: str
    rules: list[list[dict[str, Any]]] = field(default_factory=list)
    hook: str | None = None
    priority: int = 0
    policy: str = "accept"

    @classmethod
    def of(cls, name: str, body: Mapping[str, Any]) -> Chain:
        """The chain declared by ``body`` (a JSON chain object), without its rules."""
        chain = cls(name)
        if "hook" in body:
            if body.get("type") != "filter":
                raise UnsupportedExpression(f"chain type {body.get('type')!r}")
            chain.hook, chain.priority, chain.policy = body["hook"], int(body["prio"]), body.get("policy", "accept")
        return chain


def _types(value: Any) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list) else (value,)


class Evaluator:
    """One table's JSON document, parsed once, evaluated for any number of packets; or, through
    :meth:`over`, a table already held as sets and chains (the enforcer's last commit), read
    only as far as the packets evaluated reach."""

    def __init__(self, document: Mapping[str, Any], *, local_addresses: Iterable[IPAddress] = ()) -> None:
        self.local_addresses = frozenset(local_addresses)
        self.sets: Mapping[str, SetLookup] = {}
        self.chains: Mapping[str, Chain] = {}
        self._sets: dict[str, _Set] = {}
        self._chains: dict[str, Chain] = {}
        self._base: dict[str, list[Chain]] = {}
        for item in document.get("nftables", ()):
            self._load(item)
        self.sets, self.chains = self._sets, self._chains

    @classmethod
    def over(
        cls, sets: Mapping[str, SetLookup], chains: Mapping[str, Chain], *, local_addresses: Iterable[IPAddress] = ()
    ) -> Evaluator:
        """An evaluator of the table holding ``sets`` and ``chains`` (by name)."""
        evaluator = cls({}, local_addresses=local_addresses)
        evaluator.sets, evaluator.chains = sets, chains
        return evaluator

    def _load(self, item: Mapping[str, Any]) -> None:
        if len(item) != 1:
            raise UnsupportedExpression(f"object {item!r}")
        (kind, body), = item.items()
        if kind in ("metainfo", "table"):
            if kind == "table" and body.get("family") != "inet":
                raise UnsupportedExpression(f"table family {body.get('family')!r}")
            return
        if kind == "set":
            flags = set(body.get("flags", ()))
            if flags - {"interval"}:
                raise UnsupportedExpression(f"set flags {sorted(flags)}")
            s = _Set(_types(body["type"]))
            for element in body.get("elem", ()):
                s.add(element)
            self._sets[body["name"]] = s
        elif kind == "map":
            if body.get("map") != "verdict":
                raise UnsupportedExpression(f"map data {body.get('map')!r}")
            m = _Set(_types(body["type"]))
            for key, verdict in body.get("elem", ()):
                m.add(key, verdict, is_map=True)
            self._sets[body["name"]] = m
        elif kind == "chain":
            self._chains[body["name"]] = Chain.of(body["name"], body)
        elif kind == "rule":
            self._chains[body["chain"]].rules.append(list(body["expr"]))
        else:
            raise UnsupportedExpression(f"object kind {kind!r}")

    def evaluate(self, hook: str, packet: Packet) -> Outcome:
        """Run every base chain of ``hook`` in priority order."""
        run = _Run(self, packet)
        base = self._base.get(hook)
        if base is None:
            base = self._base[hook] = sorted(
                (c for c in self.chains.values() if c.hook == hook), key=lambda c: (c.priority, c.name)
            )
        for chain in base:
            verdict = run.chain(chain, depth=0)
            if verdict is None:
                verdict = chain.policy
            if verdict == "drop":
                return Outcome(False, tuple(run.trace), tuple(run.logs), run.mark)
        return Outcome(True, tuple(run.trace), tuple(run.logs), run.mark)


class _Run:
    """The state of one packet's traversal."""

    def __init__(self, evaluator: Evaluator, packet: Packet) -> None:
        self.evaluator = evaluator
        self.packet = packet
        self.trace: list[tuple[str, int]] = []
        self.logs: list[str] = []
        self.mark = packet.mark

    def chain(self, chain: Chain, *, depth: int) -> str | None:
        """``accept``/``drop`` when one was reached, None when the chain returned."""
        if depth > MAX_JUMP_DEPTH:
            raise UnsupportedExpression(f"jump depth over {MAX_JUMP_DEPTH} at {chain.name}")
        for index, rule in enumerate(chain.rules):
            outcome = self.rule(chain, index, rule, depth)
            if outcome == "continue":
                continue
            if outcome == "return":
                return None
            return outcome
        return None

    def rule(self, chain: Chain, index: int, rule: Sequence[dict[str, Any]], depth: int) -> str:
        for statement in rule:
            if len(statement) != 1:
                raise UnsupportedExpression(f"statement {statement!r}")
            (kind, body), = statement.items()
            if kind == "match":
                if not self.match(body):
                    return "continue"
            elif kind == "counter" or kind == "limit":
                continue
            elif kind == "log":
                self.logs.append(body.get("prefix", "") if body else "")
            elif kind == "mangle":
                self.mark = self.mangled_mark(body)
            elif kind == "vmap":
                key = self.key(body["key"])
                data = body["data"]
                if key is _UNDEFINED:
                    return "continue"
                if not (isinstance(data, str) and data.startswith("@")):
                    raise UnsupportedExpression(f"vmap data {data!r}")
                verdict = self.evaluator.sets[data[1:]].lookup(key)
                if verdict is None:
                    return "continue"
                self.trace.append((chain.name, index))
                return self.verdict(verdict, depth)
            elif kind in ("accept", "drop", "return", "jump", "goto"):
                self.trace.append((chain.name, index))
                return self.verdict(statement, depth)
            else:
                raise UnsupportedExpression(f"statement {kind!r}")
        self.trace.append((chain.name, index))
        return "continue"

    def verdict(self, statement: Mapping[str, Any], depth: int) -> str:
        (kind, body), = statement.items()
        if kind in ("accept", "drop"):
            return kind
        if kind == "return":
            return "return"
        if kind in ("jump", "goto"):
            target = self.evaluator.chains.get(body["target"])
            if target is None or target.hook is not None:
                raise UnsupportedExpression(f"{kind} to {body['target']!r}")
            result = self.chain(target, depth=depth + 1)
            if result is not None:
                return result
            return "continue" if kind == "jump" else "return"
        raise UnsupportedExpression(f"verdict {kind!r}")

    def key(self, expression: Mapping[str, Any]) -> Any:
        """The key a lookup uses: a tuple of integers, or undefined when a field's protocol
        dependency does not hold for this packet."""
        parts = expression["concat"] if "concat" in expression else [expression]
        values = [self.field(p) for p in parts]
        if any(v is _UNDEFINED for v in values):
            return _UNDEFINED
        if {"payload": {"protocol": "th", "field": "dport"}} in parts and {"meta": {"key": "l4proto"}} not in parts:
            raise UnsupportedExpression("th dport without meta l4proto in the same key")
        return tuple(values)

    def mangled_mark(self, body: Mapping[str, Any]) -> int:
        """``meta mark set meta mark & C`` or ``| C``, the two forms the compiler emits."""
        value = body.get("value")
        if body.get("key") == MARK and isinstance(value, Mapping) and len(value) == 1:
            (op, operands), = value.items()
            if op in ("&", "|") and isinstance(operands, list) and len(operands) == 2 and operands[0] == MARK:
                constant = operands[1]
                if isinstance(constant, int) and not isinstance(constant, bool):
                    return self.mark & constant if op == "&" else self.mark | constant
        raise UnsupportedExpression(f"mangle {body!r}")

    def field(self, expression: Mapping[str, Any]) -> Any:
        p = self.packet
        if expression == MARK:
            return self.mark
        if "&" in expression:
            operands = expression["&"]
            if isinstance(operands, list) and len(operands) == 2 and operands[0] == MARK:
                if isinstance(operands[1], int):
                    return self.mark & operands[1]
            raise UnsupportedExpression(f"expression {expression!r}")
        if "payload" in expression:
            protocol, name = expression["payload"].get("protocol"), expression["payload"].get("field")
            if protocol in ("ip", "ip6") and name in ("saddr", "daddr"):
                if (protocol == "ip") != (p.family is Family.IPV4):
                    return _UNDEFINED
                return int(p.saddr if name == "saddr" else p.daddr)
            if protocol == "th" and name == "dport":
                # The kernel reads two bytes at offset 2 of any transport header; compiled keys
                # always pair it with meta l4proto, whose set values are TCP, UDP or SCTP.
                return p.dport if p.protocol in PORT_PROTOCOLS and p.dport is not None else -1
            if protocol == "icmpv6" and name == "type":
                return p.icmp_type if p.protocol == 58 and p.icmp_type is not None else _UNDEFINED
        if "meta" in expression and expression["meta"].get("key") == "l4proto":
            return p.protocol
        raise UnsupportedExpression(f"expression {expression!r}")

    def match(self, body: Mapping[str, Any]) -> bool:
        op, left, right = body.get("op"), body["left"], body["right"]
        if left == {"ct": {"key": "state"}}:
            states = right if isinstance(right, list) else [right]
            if op not in ("in", "==") or not set(states) <= CT_STATES:
                raise UnsupportedExpression(f"ct state match {body!r}")
            return self.packet.ct_state in states
        if isinstance(left, Mapping) and "fib" in left:
            return self.fib_type(op, left["fib"], right)
        if isinstance(left, Mapping) and "&" in left:
            return self.masked(op, left["&"], right)
        if op != "==":
            raise UnsupportedExpression(f"match operator {op!r}")
        key = self.key(left)
        if key is _UNDEFINED:
            return False
        if isinstance(right, str) and right.startswith("@"):
            found = self.evaluator.sets.get(right[1:])
            if found is None:
                raise UnsupportedExpression(f"unknown set {right!r}")
            return found.contains(key)
        if len(key) != 1:
            raise UnsupportedExpression(f"concatenation against {right!r}")
        kind = "icmpv6_type" if left == {"payload": {"protocol": "icmpv6", "field": "type"}} else _kind_of(left)
        values = right["set"] if isinstance(right, dict) and "set" in right else [right]
        return any(lo <= key[0] <= hi for lo, hi in (_scalar(kind, v) for v in values))

    def masked(self, op: Any, operands: Any, right: Any) -> bool:
        """``tcp flags & MASK ==/!= VALUE``, flags named as nft lists them. Like every ``tcp``
        payload match it carries ``meta l4proto tcp``: it never matches another protocol.
        ``meta mark & MASK ==/!= VALUE`` compares the packet's mark as the rules left it."""
        if (
            op in ("==", "!=")
            and isinstance(operands, list)
            and len(operands) == 2
            and operands[0] == MARK
            and all(isinstance(v, int) and not isinstance(v, bool) for v in (operands[1], right))
        ):
            return (self.mark & operands[1] == right) is (op == "==")
        if (
            op not in ("==", "!=")
            or not isinstance(operands, list)
            or len(operands) != 2
            or operands[0] != {"payload": {"protocol": "tcp", "field": "flags"}}
        ):
            raise UnsupportedExpression(f"masked match {operands!r}")
        if self.packet.protocol != 6:
            return False
        masked = self.packet.tcp_flags & _flag_bits(operands[1])
        return (masked == _flag_bits(right)) is (op == "==")

    def fib_type(self, op: Any, fib: Any, right: Any) -> bool:
        """``fib saddr|daddr type ==/!= local``: whether that address is one of the host's own."""
        flags = fib.get("flags") if isinstance(fib, Mapping) else None
        if op not in ("==", "!=") or right != "local" or flags not in (["saddr"], ["daddr"]) or fib["result"] != "type":
            raise UnsupportedExpression(f"fib match {fib!r} {op} {right!r}")
        address = self.packet.saddr if flags == ["saddr"] else self.packet.daddr
        return (address in self.evaluator.local_addresses) is (op == "==")


def _flag_bits(value: Any) -> int:
    names = value if isinstance(value, list) else [value]
    if not all(isinstance(n, str) and n in TCP_FLAG_BITS for n in names):
        raise UnsupportedExpression(f"tcp flags {value!r}")
    bits = 0
    for name in names:
        bits |= TCP_FLAG_BITS[name]
    return bits


def _kind_of(expression: Mapping[str, Any]) -> str:
    payload = expression.get("payload", {})
    if payload.get("protocol") == "ip":
        return "ipv4_addr"
    if payload.get("protocol") == "ip6":
        return "ipv6_addr"
    if payload.get("protocol") == "th":
        return "inet_service"
    if expression.get("meta", {}).get("key") == "l4proto":
        return "inet_proto"
    raise UnsupportedExpression(f"expression {expression!r}")
