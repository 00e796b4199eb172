"""Element-only transactions as nfnetlink messages, for sending without libnftables.

Most of what a node's agent sends is elements: a pod elsewhere in the cluster comes or goes,
and only the peer sets and maps that hold its address change. libnftables spends more on such
a transaction than the kernel does: before every command it fetches its cache of the table's
sets and chains (and of an interval set's elements), ~1.1 ms at 10k pods where the kernel
commits one element in 0.03-0.1 ms (bench/README.md, "where an event's time goes"). Sent as
the nfnetlink batch libnftables would have sent, the kernel does the same and nothing else.

Pure: a transaction's commands and the sets they name (from the state the enforcer committed
last, which it trusts while the table's handle is unchanged) in, an :class:`ElementBatch` out,
or None when any command is not an element command this module encodes exactly: another kind
of object, a set of another table, a key type or map data type not listed here, an element
with a timeout, counter or comment. Such a transaction goes through libnftables unchanged.

The encoding is the one ``nft --debug=netlink`` shows libnftables sending (nftables 1.0.6), per
the kernel's ``include/uapi/linux/netfilter/nf_tables.h``:

* a key is its fields' values in the type's byte order (addresses, protocols and ports in
  network order, ``mark`` in host order, but in network order in an interval set), each field
  of a concatenation padded to 4 bytes;
* in an interval set of one field, an interval is a start element and an end element one
  past its last value flagged ``NFT_SET_ELEM_INTERVAL_END`` (deleted the same way); an
  interval reaching the type's last value has no end element and says so in its user data
  (``NFTNL_UDATA_SET_ELEM_FLAGS`` = ``NFTNL_SET_ELEM_F_INTERVAL_OPEN``), as nft lists it;
* in an interval set of a concatenation, an element carries its first and last values
  (``NFTA_SET_ELEM_KEY`` and ``NFTA_SET_ELEM_KEY_END``);
* a verdict map element's data is ``NFTA_DATA_VERDICT`` with its code and, for a jump or goto,
  the chain's name; a delete names the key alone.

The kernel applies the set's own rules either way (an add of an element already there with
the same data is no change; with other data, or a delete of an absent element, fails the
whole batch), so the enforcer's transactions mean the same on both paths; the differential
tests hold both paths to equal listings and lookups.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from policyctl.enforcer.elements import element_key, split_map_element
from policyctl.enforcer.tables import SetState

#: nftables families as netlink numbers them (``NFPROTO_*``).
NFPROTO = {"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10}
NFT_MSG_NEWSETELEM = 12
NFT_MSG_DELSETELEM = 14
NLM_F_CREATE = 0x400

_LIST_TABLE, _LIST_SET, _LIST_ELEMENTS = 1, 2, 3
_LIST_ELEM = 1
_ELEM_KEY, _ELEM_DATA, _ELEM_FLAGS, _ELEM_USERDATA, _ELEM_KEY_END = 1, 2, 3, 6, 10
_DATA_VALUE, _DATA_VERDICT = 1, 2
_VERDICT_CODE, _VERDICT_CHAIN = 1, 2
_INTERVAL_END = 1
_NESTED = 0x8000
#: ``NFTNL_UDATA_SET_ELEM_FLAGS`` (type 1, 4 bytes, host order) = ``NFTNL_SET_ELEM_F_INTERVAL_OPEN``.
_OPEN_INTERVAL = struct.pack("=BBI", 1, 4, 1)
#: ``NF_DROP``, ``NF_ACCEPT``, ``NFT_CONTINUE``, ``NFT_JUMP``, ``NFT_GOTO``, ``NFT_RETURN``.
_VERDICT_CODES = {"drop": 0, "accept": 1, "continue": -1, "jump": -3, "goto": -4, "return": -5}
#: nla_len is 16 bits; elements go in messages of at most this many bytes of elements.
_ELEMENTS_PER_MESSAGE_BYTES = 32 * 1024
#: A netlink socket takes a send of at most its send buffer (212,992 bytes by default); a
#: larger transaction (a resync's worth, never an event's) is left to libnftables.
MAX_BATCH_BYTES = 128 * 1024


@dataclass(frozen=True, slots=True)
class _KeyType:
    """A set key type: its width in bytes, its byte order, and the key kind :func:`element_key`
    gives its values (``("ip", version)`` or ``("n",)``)."""

    width: int
    order: Literal["big", "little"]
    kind: tuple[Any, ...]

    @property
    def last(self) -> int:
        return (1 << (8 * self.width)) - 1

    def pack(self, value: int) -> bytes:
        return value.to_bytes(self.width, self.order)


KEY_TYPES: Mapping[str, _KeyType] = {
    "ipv4_addr": _KeyType(4, "big", ("ip", 4)),
    "ipv6_addr": _KeyType(16, "big", ("ip", 6)),
    "inet_proto": _KeyType(1, "big", ("n",)),
    "inet_service": _KeyType(2, "big", ("n",)),
    "mark": _KeyType(4, sys.byteorder, ("n",)),
}


#: nft keeps an interval set's host-order keys in network order (the kernel compares interval
#: bounds as bytes; nft's rules turn the packet's mark around before such a lookup).
_INTERVAL_MARK = _KeyType(4, "big", ("n",))


@dataclass(frozen=True, slots=True)
class ElementMessage:
    """One ``NFT_MSG_NEWSETELEM`` or ``NFT_MSG_DELSETELEM`` of a batch: its type, its flags
    beyond request and ack, its attributes (after the ``nfgenmsg``), and the index of the
    transaction's command it carries (a command of many elements may take several)."""

    command: int
    type: int
    flags: int
    body: bytes


@dataclass(frozen=True, slots=True)
class ElementBatch:
    """The messages of one transaction, in order, for tables of ``family`` (``NFPROTO_*``)."""

    family: int
    messages: tuple[ElementMessage, ...]



class _Unencodable(Exception):
    """This command is not one the module encodes exactly: the transaction goes to libnftables."""


def element_batch(
    commands: Sequence[Mapping[str, Any]], sets: Mapping[str, SetState], *, family: str, table: str
) -> ElementBatch | None:
    """The nfnetlink messages of ``commands`` when every one adds or deletes elements of a set
    or verdict map in ``sets`` (of table ``family`` ``table``) and they fit one send, else
    None."""
    nfproto = NFPROTO.get(family)
    if not commands or nfproto is None:
        return None
    messages: list[ElementMessage] = []
    try:
        for index, command in enumerate(commands):
            messages.extend(_command_messages(index, command, sets, family=family, table=table))
    except _Unencodable:
        return None
    if sum(len(m.body) for m in messages) > MAX_BATCH_BYTES:
        return None
    return ElementBatch(nfproto, tuple(messages))


def _command_messages(
    index: int, command: Mapping[str, Any], sets: Mapping[str, SetState], *, family: str, table: str
) -> list[ElementMessage]:
    if len(command) != 1:
        raise _Unencodable
    (verb, body), = command.items()
    if verb not in ("add", "delete") or not isinstance(body, Mapping) or set(body) != {"element"}:
        raise _Unencodable
    target = body["element"]
    name, elements = target.get("name"), target.get("elem")
    if target.get("family") != family or target.get("table") != table or not isinstance(elements, list):
        raise _Unencodable
    found = sets.get(name) if isinstance(name, str) else None
    if found is None:
        raise _Unencodable
    if not elements:
        raise _Unencodable
    encoder = _SetEncoder(found, adding=verb == "add")
    encoded = [part for element in elements for part in encoder.elements(element)]
    header = _attr(_LIST_TABLE, table.encode() + b"\0") + _attr(_LIST_SET, found.name.encode() + b"\0")
    kind, flags = (NFT_MSG_NEWSETELEM, NLM_F_CREATE) if verb == "add" else (NFT_MSG_DELSETELEM, 0)
    return [ElementMessage(index, kind, flags, header + _attr(_LIST_ELEMENTS, b"".join(chunk), nested=True))
            for chunk in _chunks(encoded)]


def _chunks(encoded: list[bytes]) -> list[list[bytes]]:
    chunks: list[list[bytes]] = [[]]
    size = 0
    for part in encoded:
        if chunks[-1] and size + len(part) > _ELEMENTS_PER_MESSAGE_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(part)
        size += len(part)
    return chunks


class _SetEncoder:
    """How the elements of one set or map are encoded, read once from its spec."""

    def __init__(self, found: SetState, *, adding: bool) -> None:
        spec = found.spec
        types = spec.get("type")
        names = [types] if isinstance(types, str) else types
        if not isinstance(names, list) or not names or any(n not in KEY_TYPES for n in names):
            raise _Unencodable
        if found.kind == "map" and spec.get("map") != "verdict":
            raise _Unencodable
        flags = spec.get("flags", [])
        flags = [flags] if isinstance(flags, str) else flags
        if not isinstance(flags, list) or set(flags) - {"interval"} or set(spec) & {"timeout", "stmt"}:
            raise _Unencodable
        self.interval = "interval" in flags
        if "mark" in names and len(names) > 1:
            raise _Unencodable
        self.types = tuple(_INTERVAL_MARK if n == "mark" and self.interval else KEY_TYPES[n] for n in names)
        self.is_map = found.kind == "map"
        self.adding = adding

    def elements(self, element: Any) -> list[bytes]:
        if isinstance(element, dict) and "elem" in element:
            wrapped = element["elem"]
            if not isinstance(wrapped, dict) or set(wrapped) != {"val"}:
                raise _Unencodable
            element = wrapped["val"]
        data = b""
        if self.is_map:
            pair = split_map_element(element)
            if self.adding:
                if pair is None:
                    raise _Unencodable
                data = _attr(_ELEM_DATA, _attr(_DATA_VERDICT, _verdict(pair[1]), nested=True), nested=True)
            if pair is not None:
                element = pair[0]
        fields = self._fields(element)
        if len(self.types) > 1:
            key = b"".join(_padded(t.pack(low)) for t, (low, _) in zip(self.types, fields))
            attrs = _attr(_ELEM_KEY, _value(key), nested=True)
            if self.interval:
                end = b"".join(_padded(t.pack(high)) for t, (_, high) in zip(self.types, fields))
                attrs += _attr(_ELEM_KEY_END, _value(end), nested=True)
            elif any(low != high for low, high in fields):
                raise _Unencodable
            return [_attr(_LIST_ELEM, attrs + data, nested=True)]
        (kind,), ((low, high),) = self.types, fields
        start = _attr(_ELEM_KEY, _value(kind.pack(low)), nested=True)
        if not self.interval:
            if low != high:
                raise _Unencodable
            return [_attr(_LIST_ELEM, start + data, nested=True)]
        if high == kind.last:
            opened = _attr(_ELEM_USERDATA, _OPEN_INTERVAL) if self.adding else b""
            return [_attr(_LIST_ELEM, start + data + opened, nested=True)]
        end = _attr(_ELEM_KEY, _value(kind.pack(high + 1)), nested=True) + _attr(
            _ELEM_FLAGS, struct.pack(">I", _INTERVAL_END))
        return [_attr(_LIST_ELEM, start + data, nested=True), _attr(_LIST_ELEM, end, nested=True)]

    def _fields(self, element: Any) -> list[tuple[int, int]]:
        key = element_key(element)
        parts = key[1] if isinstance(key, tuple) and key and key[0] == "concat" else (key,)
        if len(parts) != len(self.types):
            raise _Unencodable
        fields = []
        for kind, part in zip(self.types, parts):
            if not isinstance(part, tuple) or part[:-2] != kind.kind:
                raise _Unencodable
            low, high = part[-2], part[-1]
            if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high <= kind.last):
                raise _Unencodable
            fields.append((low, high))
        return fields


def _verdict(value: Any) -> bytes:
    if not isinstance(value, dict) or len(value) != 1:
        raise _Unencodable
    (verb, body), = value.items()
    code = _VERDICT_CODES.get(verb)
    if code is None:
        raise _Unencodable
    encoded = _attr(_VERDICT_CODE, struct.pack(">i", code))
    if verb in ("jump", "goto"):
        chain = body.get("target") if isinstance(body, dict) else None
        if not isinstance(chain, str):
            raise _Unencodable
        encoded += _attr(_VERDICT_CHAIN, chain.encode() + b"\0")
    elif body is not None:
        raise _Unencodable
    return encoded


def _value(data: bytes) -> bytes:
    return _attr(_DATA_VALUE, data)


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _attr(kind: int, payload: bytes, *, nested: bool = False) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind | (_NESTED if nested else 0)) + payload + b"\0" * (-length % 4)
