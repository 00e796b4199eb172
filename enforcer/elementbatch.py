"""Element commands as nfnetlink messages, for sending without libnftables.

Most of what a node's agent sends is elements: a pod elsewhere in the cluster comes or goes,
and only the peer sets and maps that hold its address change. libnftables spends more on such
a transaction than the kernel does: before every command it fetches its cache of the table's
sets and chains (and of an interval set's elements), ~1.1 ms at 10k pods where the kernel
commits one element in 0.03-0.1 ms (bench/README.md, "where an event's time goes"). Sent as
the nfnetlink batch libnftables would have sent, the kernel does the same and nothing else
(:mod:`policyctl.enforcer.batches` decides which transactions go so).

Pure: one element command and the set it names (as the enforcer committed it last, which it
trusts while the table's handle is unchanged, or as the transaction creates it) in, its
messages out, or :class:`~policyctl.enforcer.nfmessages.Unencodable` when it is not an element
command this module encodes exactly: a set the table does not hold, a key type or map data
type not listed here, an element with a timeout, counter or comment.

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
  the chain's name; a delete names the key alone;
* a message's elements are numbered from 1 (libmnl's nesting; the kernel reads any number).

The kernel applies the set's own rules either way (an add of an element already there with
the same data is no change; with other data, or a delete of an absent element, fails the
whole batch), so the enforcer's transactions mean the same on both paths; the differential
tests hold both paths to equal listings and lookups.
"""

from __future__ import annotations

import functools
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from policyctl.enforcer.elements import element_key, split_map_element
from policyctl.enforcer.nfmessages import (
    NFT_MSG_DELSETELEM,
    NFT_MSG_NEWSETELEM,
    NLM_F_CREATE,
    BatchMessage,
    Unencodable,
    attr,
    string,
    verdict,
)
from policyctl.enforcer.tables import SetState

_LIST_TABLE, _LIST_SET, _LIST_ELEMENTS = 1, 2, 3
_LIST_ELEM = 1
_ELEM_KEY, _ELEM_DATA, _ELEM_FLAGS, _ELEM_USERDATA, _ELEM_KEY_END = 1, 2, 3, 6, 10
_DATA_VALUE = 1
_INTERVAL_END = 1
_NESTED = 0x8000
#: ``NFTNL_UDATA_SET_ELEM_FLAGS`` (type 1, 4 bytes, host order) = ``NFTNL_SET_ELEM_F_INTERVAL_OPEN``.
_OPEN_INTERVAL = struct.pack("=BBI", 1, 4, 1)
#: nla_len is 16 bits; elements go in messages of at most this many bytes of elements.
_ELEMENTS_PER_MESSAGE_BYTES = 32 * 1024


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


def element_messages(
    index: int, verb: str, elements: Any, found: SetState | None, *, table: str
) -> list[BatchMessage]:
    """The messages of command ``index``, which adds (``verb`` add) or deletes ``elements`` of
    the set or map ``found`` of ``table`` (None: one the table does not hold), when its key
    type is one this module encodes; raises :class:`Unencodable` otherwise."""
    if verb not in ("add", "delete") or not isinstance(elements, list) or not elements or found is None:
        raise Unencodable
    encoder = _encoder(found, adding=verb == "add")
    encoded = [part for element in elements for part in encoder.elements(element)]
    header = string(_LIST_TABLE, table) + string(_LIST_SET, found.name)
    kind, flags = (NFT_MSG_NEWSETELEM, NLM_F_CREATE) if verb == "add" else (NFT_MSG_DELSETELEM, 0)
    return [BatchMessage(index, kind, flags, header + attr(_LIST_ELEMENTS, _numbered(chunk), nested=True))
            for chunk in _chunks(encoded)]


def _numbered(chunk: list[bytes]) -> bytes:
    """A message's elements, each attribute's type its position from 1, as libmnl nests
    them (the kernel reads any)."""
    return b"".join(part[:2] + struct.pack("=H", position | _NESTED) + part[4:]
                    for position, part in enumerate(chunk, start=1))


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


@dataclass(frozen=True, slots=True)
class _SetEncoder:
    """How the elements of one set or map are encoded, read once from its spec."""

    types: tuple[_KeyType, ...]
    interval: bool
    is_map: bool
    adding: bool

    @classmethod
    def of(cls, found: SetState, *, adding: bool) -> _SetEncoder:
        spec = found.spec
        types = spec.get("type")
        names = [types] if isinstance(types, str) else types
        if not isinstance(names, list) or not names or any(n not in KEY_TYPES for n in names):
            raise Unencodable
        if found.kind == "map" and spec.get("map") != "verdict":
            raise Unencodable
        flags = spec.get("flags", [])
        flags = [flags] if isinstance(flags, str) else flags
        if not isinstance(flags, list) or set(flags) - {"interval"} or set(spec) & {"timeout", "stmt"}:
            raise Unencodable
        interval = "interval" in flags
        if "mark" in names and len(names) > 1:
            raise Unencodable
        return cls(
            types=tuple(_INTERVAL_MARK if n == "mark" and interval else KEY_TYPES[n] for n in names),
            interval=interval,
            is_map=found.kind == "map",
            adding=adding,
        )

    def elements(self, element: Any) -> tuple[bytes, ...]:
        if type(element) is str and not self.is_map:
            return _scalar_element(self, element)
        return self.encoded(element)

    def encoded(self, element: Any) -> tuple[bytes, ...]:
        if isinstance(element, dict) and "elem" in element:
            wrapped = element["elem"]
            if not isinstance(wrapped, dict) or set(wrapped) != {"val"}:
                raise Unencodable
            element = wrapped["val"]
        data = b""
        if self.is_map:
            pair = split_map_element(element)
            if self.adding:
                if pair is None:
                    raise Unencodable
                data = attr(_ELEM_DATA, verdict(pair[1]), nested=True)
            if pair is not None:
                element = pair[0]
        fields = self._fields(element)
        if len(self.types) > 1:
            key = b"".join(_padded(t.pack(low)) for t, (low, _) in zip(self.types, fields))
            attrs = attr(_ELEM_KEY, _value(key), nested=True)
            if self.interval:
                end = b"".join(_padded(t.pack(high)) for t, (_, high) in zip(self.types, fields))
                attrs += attr(_ELEM_KEY_END, _value(end), nested=True)
            elif any(low != high for low, high in fields):
                raise Unencodable
            return (attr(_LIST_ELEM, attrs + data, nested=True),)
        (kind,), ((low, high),) = self.types, fields
        start = attr(_ELEM_KEY, _value(kind.pack(low)), nested=True)
        if not self.interval:
            if low != high:
                raise Unencodable
            return (attr(_LIST_ELEM, start + data, nested=True),)
        if high == kind.last:
            opened = attr(_ELEM_USERDATA, _OPEN_INTERVAL) if self.adding else b""
            return (attr(_LIST_ELEM, start + data + opened, nested=True),)
        end = attr(_ELEM_KEY, _value(kind.pack(high + 1)), nested=True) + attr(
            _ELEM_FLAGS, struct.pack(">I", _INTERVAL_END))
        return attr(_LIST_ELEM, start + data, nested=True), attr(_LIST_ELEM, end, nested=True)

    def _fields(self, element: Any) -> list[tuple[int, int]]:
        key = element_key(element)
        parts = key[1] if isinstance(key, tuple) and key and key[0] == "concat" else (key,)
        if len(parts) != len(self.types):
            raise Unencodable
        fields = []
        for kind, part in zip(self.types, parts):
            if not isinstance(part, tuple) or part[:-2] != kind.kind:
                raise Unencodable
            low, high = part[-2], part[-1]
            if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high <= kind.last):
                raise Unencodable
            fields.append((low, high))
        return fields


#: The encoders of the latest sets, by the identity of their spec: a pod add sends elements to
#: 14 sets on average and 30 at most (the 10k bench's), and the states the enforcer patches for
#: each event keep their set's spec object, so a set's spec is read once, not once per event.
#: An entry holds its spec, so an identity is never reused while it is here.
_ENCODERS: dict[tuple[int, str, bool], tuple[Mapping[str, Any], _SetEncoder]] = {}
_MOST_ENCODERS = 1 << 12


def _encoder(found: SetState, *, adding: bool) -> _SetEncoder:
    key = (id(found.spec), found.kind, adding)
    held = _ENCODERS.get(key)
    if held is not None and held[0] is found.spec:
        return held[1]
    encoder = _SetEncoder.of(found, adding=adding)
    if len(_ENCODERS) >= _MOST_ENCODERS:
        _ENCODERS.clear()
    _ENCODERS[key] = (found.spec, encoder)
    return encoder


@functools.lru_cache(maxsize=1 << 12)
def _scalar_element(encoder: _SetEncoder, element: str) -> tuple[bytes, ...]:
    """A set element written as one string (an address, mostly), memoised per encoding in a
    table of the 4,096 latest: in the marked layout a peer that changes identity changes about
    half the bit sets in one event, with its one address in each."""
    return encoder.encoded(element)


def _value(data: bytes) -> bytes:
    return attr(_DATA_VALUE, data)


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)
