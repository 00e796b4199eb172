"""Render a :class:`~ruleset.Ruleset` as libnftables JSON in the ``nft -j list table`` format.

One format serves apply and readback: ``nft -j -f FILE`` adds every object that has no command
around it, and ``nft -j list table inet NAME`` prints the same objects back (plus handles). Key
order and value spellings follow what nft 1.0.6 lists (protocol names, prefixes for aligned
address ranges, ``range`` pairs otherwise), so a readback differs only by handles and counter
values.

:func:`replace_batch` wraps the objects in commands for an atomic whole-table replace that
touches no other table: ``add table`` (so that ``delete`` cannot fail), ``delete table``, then
``add`` of every object, in one transaction.

:func:`render_delta` renders a :class:`~delta.RulesetDelta` with the same functions, so an
object or element reached through a delta is written exactly as in the whole document.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from policyctl.policy.model import Family, IPAddress

from .delta import RulesetDelta
from .intervals import Interval, as_address, as_prefix
from .ruleset import (
    Chain,
    Counter,
    CtStateIn,
    Element,
    FieldType,
    Goto,
    Icmpv6TypeRange,
    Jump,
    Key,
    Limit,
    Log,
    Lookup,
    MarkSet,
    MarkTest,
    NotLocalAddress,
    Rule,
    Ruleset,
    Set,
    Statement,
    TcpNotSyn,
    Verdict,
    VerdictMap,
    VmapLookup,
)

JSON_SCHEMA_VERSION = 1
PROTOCOL_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}
ICMPV6_TYPE_NAMES = {
    133: "nd-router-solicit",
    134: "nd-router-advert",
    135: "nd-neighbor-solicit",
    136: "nd-neighbor-advert",
    137: "nd-redirect",
}
KEY_EXPRESSIONS: dict[Key, dict[str, Any]] = {
    Key.IP_SADDR: {"payload": {"protocol": "ip", "field": "saddr"}},
    Key.IP_DADDR: {"payload": {"protocol": "ip", "field": "daddr"}},
    Key.IP6_SADDR: {"payload": {"protocol": "ip6", "field": "saddr"}},
    Key.IP6_DADDR: {"payload": {"protocol": "ip6", "field": "daddr"}},
    Key.L4PROTO: {"meta": {"key": "l4proto"}},
    Key.TH_DPORT: {"payload": {"protocol": "th", "field": "dport"}},
    Key.META_MARK: {"meta": {"key": "mark"}},
}


TCP_FLAGS: dict[str, Any] = {"payload": {"protocol": "tcp", "field": "flags"}}
TCP_OPENING_MASK = ("fin", "syn", "rst", "ack")
"""The flags that tell a connection's opening SYN from every other packet (nft lists the mask
back in this order)."""


class _Place(Protocol):
    """Where objects go: a :class:`Ruleset` or a :class:`TablePlace`."""

    @property
    def family(self) -> str: ...

    @property
    def table(self) -> str: ...


@dataclass(frozen=True, slots=True)
class TablePlace:
    """A table named without its ruleset, for rendering a delta."""

    family: str
    table: str


def field_value(kind: FieldType, value: Interval) -> Any:
    """One field of an element: a single value, a prefix when the range is a CIDR, else a
    range."""
    if kind in (FieldType.IPV4, FieldType.IPV6):
        family = Family.IPV4 if kind is FieldType.IPV4 else Family.IPV6
        if value.is_single:
            return _address_text(value.low, family)
        prefix = as_prefix(value, family)
        if prefix is not None:
            return {"prefix": {"addr": str(prefix.network_address), "len": prefix.prefixlen}}
        return {"range": [str(as_address(value.low, family)), str(as_address(value.high, family))]}
    if kind is FieldType.PROTO:
        if not value.is_single:
            raise ValueError("protocol ranges are never emitted")
        return PROTOCOL_NAMES.get(value.low, value.low)
    return value.low if value.is_single else {"range": [value.low, value.high]}


@functools.lru_cache(maxsize=1 << 12)
def _address_text(value: int, family: Family) -> str:
    """Memoised in a table of the 4,096 latest addresses: in the marked layout a peer that
    changes identity is rendered into about half the bit sets in one event. Small, so that the
    whole ruleset's render at 100k pods does not keep its addresses alive."""
    return str(as_address(value, family))


def element_value(types: tuple[FieldType, ...], element: Element) -> Any:
    fields = [field_value(t, v) for t, v in zip(types, element)]
    return fields[0] if len(fields) == 1 else {"concat": fields}


def _set(ruleset: _Place, s: Set) -> dict[str, Any]:
    body: dict[str, Any] = {
        "family": ruleset.family,
        "name": s.name,
        "table": ruleset.table,
        "type": s.types[0].value if len(s.types) == 1 else [t.value for t in s.types],
    }
    if s.interval:
        body["flags"] = ["interval"]
    if s.elements:
        body["elem"] = [element_value(s.types, e) for e in s.elements]
    return {"set": body}


def _verdict(v: Verdict | Jump | Goto) -> dict[str, Any]:
    if isinstance(v, Jump):
        return {"jump": {"target": v.target}}
    if isinstance(v, Goto):
        return {"goto": {"target": v.target}}
    return {v.value: None}


def map_entry(address: IPAddress | int, target: Jump) -> list[Any]:
    """One verdict-map element, ``[address, verdict]`` (a mark value stays a number)."""
    return [address if isinstance(address, int) else str(address), _verdict(target)]


def _map(ruleset: _Place, m: VerdictMap) -> dict[str, Any]:
    body: dict[str, Any] = {
        "family": ruleset.family,
        "name": m.name,
        "table": ruleset.table,
        "type": m.key.value,
        "map": "verdict",
    }
    if m.elements:
        body["elem"] = [map_entry(address, target) for address, target in m.elements]
    return {"map": body}


def _chain(ruleset: _Place, c: Chain) -> dict[str, Any]:
    body: dict[str, Any] = {"family": ruleset.family, "table": ruleset.table, "name": c.name}
    if c.is_base:
        assert c.hook is not None and c.priority is not None and c.policy is not None
        body.update({"type": "filter", "hook": c.hook.value, "prio": c.priority, "policy": c.policy.value})
    return {"chain": body}


def statement(s: Statement) -> dict[str, Any]:
    if isinstance(s, CtStateIn):
        states: list[str] | str = list(s.states) if len(s.states) > 1 else s.states[0]
        return {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": states}}
    if isinstance(s, TcpNotSyn):
        return {"match": {"op": "!=", "left": {"&": [TCP_FLAGS, list(TCP_OPENING_MASK)]}, "right": "syn"}}
    if isinstance(s, NotLocalAddress):
        fib = {"fib": {"result": "type", "flags": ["saddr" if s.source else "daddr"]}}
        return {"match": {"op": "!=", "left": fib, "right": "local"}}
    if isinstance(s, Icmpv6TypeRange):
        right = {"range": [ICMPV6_TYPE_NAMES.get(s.low, s.low), ICMPV6_TYPE_NAMES.get(s.high, s.high)]}
        return {"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}}, "right": right}}
    if isinstance(s, Lookup):
        left = KEY_EXPRESSIONS[s.keys[0]] if len(s.keys) == 1 else {"concat": [KEY_EXPRESSIONS[k] for k in s.keys]}
        return {"match": {"op": "==", "left": left, "right": f"@{s.set}"}}
    if isinstance(s, VmapLookup):
        key = KEY_EXPRESSIONS[s.key]
        if s.mask is not None:
            key = {"&": [key, s.mask]}
        return {"vmap": {"key": key, "data": f"@{s.map}"}}
    if isinstance(s, MarkSet):
        mark = KEY_EXPRESSIONS[Key.META_MARK]
        value = {"&": [mark, s.keep]} if s.bits == 0 else {"|": [mark, s.bits]}
        return {"mangle": {"key": mark, "value": value}}
    if isinstance(s, MarkTest):
        left = {"&": [KEY_EXPRESSIONS[Key.META_MARK], s.mask]}
        return {"match": {"op": "==" if s.zero else "!=", "left": left, "right": 0}}
    if isinstance(s, Counter):
        return {"counter": {"packets": 0, "bytes": 0}}
    if isinstance(s, Limit):
        return {"limit": {"rate": s.rate, "burst": s.burst, "per": s.per}}
    if isinstance(s, Log):
        if s.group is not None:
            return {"log": {"prefix": s.prefix, "group": s.group}}
        return {"log": {"prefix": s.prefix}}
    return _verdict(s)


def _rule(ruleset: _Place, chain: Chain, r: Rule) -> dict[str, Any]:
    body: dict[str, Any] = {"family": ruleset.family, "table": ruleset.table, "chain": chain.name}
    if r.comment:
        body["comment"] = r.comment
    body["expr"] = [statement(s) for s in r.statements]
    return {"rule": body}


def objects(ruleset: Ruleset) -> list[dict[str, Any]]:
    """The table's objects: table, sets, chains, verdict maps, then every rule. Maps come after
    chains (``nft list`` prints them before) because a map element that jumps to a chain can
    only be added once the chain exists."""
    out: list[dict[str, Any]] = [{"table": {"family": ruleset.family, "name": ruleset.table}}]
    out += [_set(ruleset, s) for s in ruleset.sets]
    out += [_chain(ruleset, c) for c in ruleset.chains]
    out += [_map(ruleset, m) for m in ruleset.maps]
    out += [_rule(ruleset, c, r) for c in ruleset.chains for r in c.rules]
    return out


def to_document(ruleset: Ruleset) -> dict[str, Any]:
    return {"nftables": [{"metainfo": {"json_schema_version": JSON_SCHEMA_VERSION}}, *objects(ruleset)]}


def render_json(ruleset: Ruleset, *, indent: int | None = None) -> str:
    """The JSON text; byte-identical for equal rulesets."""
    return json.dumps(to_document(ruleset), indent=indent, sort_keys=False, ensure_ascii=True)


def replace_batch(ruleset: Ruleset) -> dict[str, Any]:
    """Commands that atomically replace this table (and only it) with ``ruleset``."""
    table = {"table": {"family": ruleset.family, "name": ruleset.table}}
    commands: list[dict[str, Any]] = [{"add": table}, {"delete": table}]
    commands += [{"add": o} for o in objects(ruleset)]
    return {"nftables": [{"metainfo": {"json_schema_version": JSON_SCHEMA_VERSION}}, *commands]}


@dataclass(frozen=True, slots=True)
class RenderedDelta:
    """A :class:`~delta.RulesetDelta` in libnftables JSON, for one table.

    ``objects`` is a document in the ``nft -j list table`` object format holding what the
    delta carries whole: new or re-created sets and maps (with their elements), then chains,
    then every rule of those chains, in that order (as :func:`objects` orders a table).
    ``added``/``removed`` are the elements that come to or leave kept sets and maps, by name,
    each element written as the whole document writes it (a map element as
    ``[address, verdict]``). ``removed_sets``/``removed_chains`` are names only."""

    objects: dict[str, Any]
    added: tuple[tuple[str, tuple[Any, ...]], ...]
    removed: tuple[tuple[str, tuple[Any, ...]], ...]
    removed_sets: tuple[str, ...]
    removed_chains: tuple[str, ...]


def render_delta(
    delta: RulesetDelta,
    *,
    family: str,
    table: str,
    types: Mapping[str, tuple[FieldType, ...]],
) -> RenderedDelta:
    """Render ``delta`` for table ``family``/``table``. A delta names kept sets without their
    key types, which decide how an element is spelled (an address or a port is the same
    interval of integers), so ``types`` gives them for every kept set whose elements change;
    a missing one raises ``KeyError``. Costs as much as the delta is large."""
    place = TablePlace(family, table)
    whole: list[dict[str, Any]] = [_set(place, s) for s in delta.sets]
    whole += [_chain(place, c) for c in delta.chains]
    whole += [_map(place, m) for m in delta.maps]
    whole += [_rule(place, c, r) for c in delta.chains for r in c.rules]
    added = [(name, tuple(element_value(types[name], e) for e in elements)) for name, elements in delta.added_elements]
    added += [(name, tuple(map_entry(a, t) for a, t in entries)) for name, entries in delta.added_entries]
    removed = [
        (name, tuple(element_value(types[name], e) for e in elements)) for name, elements in delta.removed_elements
    ]
    removed += [(name, tuple(map_entry(a, t) for a, t in entries)) for name, entries in delta.removed_entries]
    return RenderedDelta(
        objects={"nftables": whole},
        added=tuple(sorted(added, key=lambda item: item[0])),
        removed=tuple(sorted(removed, key=lambda item: item[0])),
        removed_sets=tuple(sorted(delta.removed)),
        removed_chains=tuple(sorted(delta.removed_chains)),
    )
