"""Chain and rule commands as nfnetlink messages, for sending without libnftables.

A pod chain (shared by the local pods the same policies isolate) comes with its first pod and
goes with its last: ``add chain``, then rules that jump to the shared allow chains, log
rate-limited and count and drop (``compiler.chains.pod_chain``); its removal flushes and
deletes it. A policy's change, or a pod that brings or takes a
peer identity, adds or rewrites the lookup rules of identity and allow chains. libnftables
charges such a transaction its cache fetch (~1.1 ms at 10k pods) and its evaluation of every
command (~1.2 ms) before the kernel sees it (bench/README.md, "where an event's time goes");
encoded here, it goes to the kernel as the nfnetlink batch libnftables would have sent.

Pure: one command in, its message out, or :class:`~policyctl.enforcer.nfmessages.Unencodable`
for anything outside this vocabulary, which then goes through libnftables whole:

* ``add chain`` of a regular chain (no hook, no comment: libnftables 1.0.6 reads no chain
  comment from JSON, so the two paths would differ); ``flush chain``; ``delete chain`` by name;
* ``add rule`` appending statements of these kinds only: verdicts (accept, drop, continue,
  return, jump, goto) as ``immediate``; ``counter`` with its packets and bytes; ``limit`` of
  packets per second, minute, hour, day or week with a burst of at least one (libnftables
  reads a burst of 0 as its default, 5); ``log`` with a prefix and an NFLOG group; a lookup
  of a set (``match ==`` against ``@set``) or a verdict map (``vmap``) the table holds, keyed
  by an IPv4 or IPv6 address optionally followed by more addresses of that family, ``meta
  l4proto`` and ``th dport``, in the key types of that set; a verdict map keyed by marks
  looked up with the packet's mark under a mask; the mark set to itself under a mask or with
  bits added, or compared with a value under a mask (the marked peer layout,
  ``compiler.markedpeers``). A comment goes in the rule's user data.

A lookup's key is loaded as libnftables loads it: the family dependency first (``meta
nfproto`` compared with the address's family, as an inet table needs before an ``ip`` or
``ip6`` field), then each field into consecutive 4-byte words of the registers from ``reg 1``
(a field starting a 16-byte register named as that register, any other as its 32-bit one),
``meta l4proto`` turned to network order when the set has intervals (nft keeps such a set's
protocol field as 2 bytes in network order), then the lookup naming the set by name (the set
id libnftables adds is read by the kernel only when no set has that name).

The encoding is the one libnftables 1.0.6 sends for these commands (seen with ``strace`` on
``nft -j -f``): ``NFT_MSG_NEWCHAIN`` with ``NLM_F_CREATE``; ``NFT_MSG_NEWRULE`` with
``NLM_F_CREATE | NLM_F_APPEND`` (without append the kernel would insert at the chain's head);
``NFT_MSG_DELRULE`` naming the chain alone for a flush; ``NFT_MSG_DELCHAIN``. A counter's zero
values are left out, as libnftables leaves them; the kernel starts a counter at zero. The
kernel tests hold these bytes to libnftables' own for the same JSON (``nft -c`` read with
strace) and both paths to equal listings, refusals and packet verdicts.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policyctl.enforcer.nfmessages import (
    NFT_MSG_DELCHAIN,
    NFT_MSG_DELRULE,
    NFT_MSG_NEWCHAIN,
    NFT_MSG_NEWRULE,
    NLM_F_APPEND,
    NLM_F_CREATE,
    VERDICT_CODES,
    BatchMessage,
    Unencodable,
    attr,
    string,
    u32,
    user_comment,
    verdict,
)
from policyctl.enforcer.tables import SetState

_CHAIN_TABLE, _CHAIN_NAME = 1, 3
_RULE_TABLE, _RULE_CHAIN, _RULE_EXPRESSIONS, _RULE_USERDATA = 1, 2, 4, 7
_LIST_ELEM = 1
_EXPR_NAME, _EXPR_DATA = 1, 2
_IMMEDIATE_DREG, _IMMEDIATE_DATA = 1, 2
_REG_VERDICT = 0
_COUNTER_BYTES, _COUNTER_PACKETS = 1, 2
_LIMIT_RATE, _LIMIT_UNIT, _LIMIT_BURST, _LIMIT_TYPE, _LIMIT_FLAGS = 1, 2, 3, 4, 5
_LIMIT_PACKETS = 0
_LOG_GROUP, _LOG_PREFIX = 1, 2
_META_DREG, _META_KEY = 1, 2
_NFT_META_NFPROTO, _NFT_META_L4PROTO = 15, 16
_CMP_SREG, _CMP_OP, _CMP_DATA = 1, 2, 3
_CMP_EQ, _CMP_NEQ = 0, 1
_DATA_VALUE = 1
_PAYLOAD_DREG, _PAYLOAD_BASE, _PAYLOAD_OFFSET, _PAYLOAD_LEN = 1, 2, 3, 4
_NETWORK_HEADER, _TRANSPORT_HEADER = 1, 2
_BYTEORDER_SREG, _BYTEORDER_DREG, _BYTEORDER_OP, _BYTEORDER_LEN, _BYTEORDER_SIZE = 1, 2, 3, 4, 5
_BYTEORDER_HTON = 1
_LOOKUP_SET, _LOOKUP_SREG, _LOOKUP_DREG = 1, 2, 3
_REG_1, _REG32_00 = 1, 8
_NFT_META_MARK = 3
_META_SREG = 3
_BITWISE_SREG, _BITWISE_DREG, _BITWISE_LEN, _BITWISE_MASK, _BITWISE_XOR, _BITWISE_OP = 1, 2, 3, 4, 5, 6
_BITWISE_BOOL = 0
_MARK = {"meta": {"key": "mark"}}
_U32_MAX = 0xFFFFFFFF
#: ``NFPROTO_IPV4`` and ``NFPROTO_IPV6``, as ``meta nfproto`` holds them.
_IPV4, _IPV6 = 2, 10


@dataclass(frozen=True, slots=True)
class _Field:
    """A key field: where it is loaded from (``payload`` base, offset and length in bytes, or a
    ``meta`` key), the set key type it has, and the family it belongs to (None: any)."""

    type: str
    length: int
    family: int | None = None
    base: int = 0
    offset: int = 0
    meta: int | None = None

    @property
    def is_address(self) -> bool:
        return self.family is not None


_PAYLOAD_FIELDS = {
    ("ip", "saddr"): _Field("ipv4_addr", 4, _IPV4, _NETWORK_HEADER, 12),
    ("ip", "daddr"): _Field("ipv4_addr", 4, _IPV4, _NETWORK_HEADER, 16),
    ("ip6", "saddr"): _Field("ipv6_addr", 16, _IPV6, _NETWORK_HEADER, 8),
    ("ip6", "daddr"): _Field("ipv6_addr", 16, _IPV6, _NETWORK_HEADER, 24),
    ("th", "dport"): _Field("inet_service", 2, None, _TRANSPORT_HEADER, 2),
}
_L4PROTO = _Field("inet_proto", 1, meta=_NFT_META_L4PROTO)
#: ``limit``'s ``per`` in seconds, as nft's JSON parser reads it.
_LIMIT_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
_U64_MAX = (1 << 64) - 1


def chain_messages(index: int, verb: str, target: Mapping[str, Any], *, table: str) -> list[BatchMessage]:
    """The message of command ``index``, ``{verb: {"chain": target}}``."""
    name = target.get("name")
    if not isinstance(name, str):
        raise Unencodable
    if set(target) - {"family", "table", "name"}:
        raise Unencodable
    named = string(_CHAIN_TABLE, table) + string(_CHAIN_NAME, name)
    if verb == "add":
        return [BatchMessage(index, NFT_MSG_NEWCHAIN, NLM_F_CREATE, named)]
    if verb == "flush":
        return [BatchMessage(index, NFT_MSG_DELRULE, 0, string(_RULE_TABLE, table) + string(_RULE_CHAIN, name))]
    if verb == "delete":
        return [BatchMessage(index, NFT_MSG_DELCHAIN, 0, named)]
    raise Unencodable


def rule_messages(
    index: int, verb: str, target: Mapping[str, Any], sets: Mapping[str, SetState], *, table: str
) -> list[BatchMessage]:
    """The message of command ``index``, ``{"add": {"rule": target}}``, appending the rule;
    ``sets`` are the sets and maps of the table its lookups may name."""
    chain, statements = target.get("chain"), target.get("expr")
    if verb != "add" or set(target) - {"family", "table", "chain", "expr", "comment"}:
        raise Unencodable
    if not isinstance(chain, str) or not isinstance(statements, list) or not statements:
        raise Unencodable
    families: set[int] = set()
    expressions = b"".join(
        attr(_LIST_ELEM, e, nested=True) for s in statements for e in _expressions(s, sets, families))
    body = string(_RULE_TABLE, table) + string(_RULE_CHAIN, chain) + attr(_RULE_EXPRESSIONS, expressions, nested=True)
    if "comment" in target:
        body += attr(_RULE_USERDATA, user_comment(_text(target["comment"])))
    return [BatchMessage(index, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, body)]


def _expressions(statement: Any, sets: Mapping[str, SetState], families: set[int]) -> list[bytes]:
    """The expressions of one statement; ``families`` holds the families whose dependency the
    rule's earlier statements loaded."""
    if not isinstance(statement, dict) or len(statement) != 1:
        raise Unencodable
    (kind, body), = statement.items()
    if kind in VERDICT_CODES:
        data = attr(_IMMEDIATE_DREG, struct.pack(">I", _REG_VERDICT)) + attr(
            _IMMEDIATE_DATA, verdict(statement), nested=True)
        return [_named("immediate", data)]
    if kind == "counter":
        return [_named("counter", _counter(body))]
    if kind == "limit":
        return [_named("limit", _limit(body))]
    if kind == "log":
        return [_named("log", _log(body))]
    if kind == "match" and isinstance(body, dict) and set(body) == {"op", "left", "right"}:
        if isinstance(body["left"], dict) and "&" in body["left"]:
            return _mark_test(body["op"], body["left"], body["right"])
        if body["op"] == "==":
            return _lookup(body["left"], body["right"], sets, families, verdicts=False)
    if kind == "vmap" and isinstance(body, dict) and set(body) == {"key", "data"}:
        if isinstance(body["key"], dict) and "&" in body["key"]:
            return _mark_vmap(body["key"], body["data"], sets)
        return _lookup(body["key"], body["data"], sets, families, verdicts=True)
    if kind == "mangle" and isinstance(body, dict) and set(body) == {"key", "value"} and body["key"] == _MARK:
        return [*_masked_mark(body["value"]),
                _named("meta", u32(_META_KEY, _NFT_META_MARK) + u32(_META_SREG, _REG_1))]
    raise Unencodable


def _masked_mark(value: Any) -> list[bytes]:
    """The packet's mark loaded into ``reg 1`` and masked: ``meta mark & keep`` keeps bits,
    ``meta mark | bits`` adds them (nft's bitwise is ``(reg & mask) ^ xor``, its values in
    host order)."""
    operator, operands = next(iter(value.items())) if isinstance(value, dict) and len(value) == 1 else (None, None)
    if operator not in ("&", "|") or not isinstance(operands, list) or len(operands) != 2 or operands[0] != _MARK:
        raise Unencodable
    number = _number(operands[1], _U32_MAX)
    mask, xor = (number, 0) if operator == "&" else (~number & _U32_MAX, number)
    bitwise = (u32(_BITWISE_SREG, _REG_1) + u32(_BITWISE_DREG, _REG_1) + u32(_BITWISE_OP, _BITWISE_BOOL)
               + u32(_BITWISE_LEN, 4) + attr(_BITWISE_MASK, attr(_DATA_VALUE, struct.pack("=I", mask)), nested=True)
               + attr(_BITWISE_XOR, attr(_DATA_VALUE, struct.pack("=I", xor)), nested=True))
    return [_named("meta", u32(_META_KEY, _NFT_META_MARK) + u32(_META_DREG, _REG_1)), _named("bitwise", bitwise)]


def _mark_test(op: Any, left: Any, right: Any) -> list[bytes]:
    """``meta mark & mask ==/!= value``: the masked mark compared in ``reg 1``."""
    if op not in ("==", "!=") or set(left) != {"&"}:
        raise Unencodable
    value = _number(right, _U32_MAX)
    compare = u32(_CMP_SREG, _REG_1) + u32(_CMP_OP, _CMP_EQ if op == "==" else _CMP_NEQ) + attr(
        _CMP_DATA, attr(_DATA_VALUE, struct.pack("=I", value)), nested=True)
    return [*_masked_mark(left), _named("cmp", compare)]


def _mark_vmap(key: Any, right: Any, sets: Mapping[str, SetState]) -> list[bytes]:
    """A lookup of the packet's mark under a mask in a verdict map keyed by marks."""
    found = sets.get(right[1:]) if isinstance(right, str) and right.startswith("@") else None
    if found is None or found.kind != "map" or found.spec.get("map") != "verdict" or found.spec.get("type") != "mark":
        raise Unencodable
    if found.spec.get("flags"):
        raise Unencodable
    lookup = u32(_LOOKUP_SREG, _REG_1) + u32(_LOOKUP_DREG, _REG_VERDICT) + string(_LOOKUP_SET, found.name)
    return [*_masked_mark(key), _named("lookup", lookup)]


def _lookup(
    left: Any, right: Any, sets: Mapping[str, SetState], families: set[int], *, verdicts: bool
) -> list[bytes]:
    """A lookup of ``left``'s key in the set or verdict map ``right`` (``"@name"``). As
    libnftables, a rule loads its family's dependency once, and refuses a second family (no
    packet is both)."""
    found = sets.get(right[1:]) if isinstance(right, str) and right.startswith("@") else None
    if found is None or (found.kind == "map") != verdicts or (verdicts and found.spec.get("map") != "verdict"):
        raise Unencodable
    fields = _key_fields(left)
    types = found.spec.get("type")
    if [f.type for f in fields] != ([types] if isinstance(types, str) else types):
        raise Unencodable
    flags = found.spec.get("flags", [])
    interval = "interval" in ([flags] if isinstance(flags, str) else flags)
    family = fields[0].family
    if family is None or any(f.family not in (None, family) for f in fields) or families - {family}:
        raise Unencodable
    expressions = [] if family in families else [
        _named("meta", u32(_META_KEY, _NFT_META_NFPROTO) + u32(_META_DREG, _REG_1)),
        _named("cmp", u32(_CMP_SREG, _REG_1) + u32(_CMP_OP, _CMP_EQ)
               + attr(_CMP_DATA, attr(_DATA_VALUE, bytes([family])), nested=True)),
    ]
    families.add(family)
    word = 0
    for field in fields:
        register = _register(word)
        if field.meta is not None:
            expressions.append(_named("meta", u32(_META_KEY, field.meta) + u32(_META_DREG, register)))
            if interval and len(fields) > 1:
                expressions.append(_named("byteorder", u32(_BYTEORDER_SREG, register) + u32(_BYTEORDER_DREG, register)
                                          + u32(_BYTEORDER_OP, _BYTEORDER_HTON) + u32(_BYTEORDER_LEN, 1)
                                          + u32(_BYTEORDER_SIZE, 2)))
        else:
            expressions.append(_named("payload", u32(_PAYLOAD_DREG, register) + u32(_PAYLOAD_BASE, field.base)
                                      + u32(_PAYLOAD_OFFSET, field.offset) + u32(_PAYLOAD_LEN, field.length)))
        word += (field.length + 3) // 4
    lookup = u32(_LOOKUP_SREG, _REG_1) + (u32(_LOOKUP_DREG, _REG_VERDICT) if verdicts else b"")
    expressions.append(_named("lookup", lookup + string(_LOOKUP_SET, found.name)))
    return expressions


def _key_fields(left: Any) -> list[_Field]:
    """The fields of a key: an address first, as every key the compiler looks up has."""
    parts = left["concat"] if isinstance(left, dict) and set(left) == {"concat"} else [left]
    if not isinstance(parts, list) or not parts:
        raise Unencodable
    fields = [_key_field(part) for part in parts]
    if not fields[0].is_address:
        raise Unencodable
    return fields


def _key_field(part: Any) -> _Field:
    if part == {"meta": {"key": "l4proto"}}:
        return _L4PROTO
    payload = part.get("payload") if isinstance(part, dict) and set(part) == {"payload"} else None
    if not isinstance(payload, dict) or set(payload) != {"protocol", "field"}:
        raise Unencodable
    found = _PAYLOAD_FIELDS.get((payload["protocol"], payload["field"]))
    if found is None:
        raise Unencodable
    return found


def _register(word: int) -> int:
    """The register holding the key's 4-byte word ``word``, numbered as libnftables numbers it:
    a 16-byte register where one starts, else the 32-bit one."""
    return _REG_1 + word // 4 if word % 4 == 0 else _REG32_00 + word


def _named(name: str, data: bytes) -> bytes:
    return string(_EXPR_NAME, name) + attr(_EXPR_DATA, data, nested=True)


def _counter(body: Any) -> bytes:
    if not isinstance(body, dict) or set(body) - {"packets", "bytes"}:
        raise Unencodable
    packets, octets = _number(body.get("packets", 0), _U64_MAX), _number(body.get("bytes", 0), _U64_MAX)
    data = attr(_COUNTER_BYTES, struct.pack(">Q", octets)) if octets else b""
    return data + (attr(_COUNTER_PACKETS, struct.pack(">Q", packets)) if packets else b"")


def _limit(body: Any) -> bytes:
    if not isinstance(body, dict) or set(body) != {"rate", "per", "burst"}:
        raise Unencodable
    unit = _LIMIT_UNITS.get(body["per"]) if isinstance(body["per"], str) else None
    if unit is None or body["burst"] == 0:
        raise Unencodable
    return (attr(_LIMIT_RATE, struct.pack(">Q", _number(body["rate"], _U64_MAX)))
            + attr(_LIMIT_UNIT, struct.pack(">Q", unit))
            + attr(_LIMIT_BURST, struct.pack(">I", _number(body["burst"], 0xFFFFFFFF)))
            + attr(_LIMIT_TYPE, struct.pack(">I", _LIMIT_PACKETS))
            + attr(_LIMIT_FLAGS, struct.pack(">I", 0)))


def _log(body: Any) -> bytes:
    if not isinstance(body, dict) or not body or set(body) - {"prefix", "group"}:
        raise Unencodable
    data = string(_LOG_PREFIX, _text(body["prefix"])) if "prefix" in body else b""
    if "group" in body:
        data += attr(_LOG_GROUP, struct.pack(">H", _number(body["group"], 0xFFFF)))
    return data


def _number(value: Any, largest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= largest:
        raise Unencodable
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or "\0" in value:
        raise Unencodable
    return value
