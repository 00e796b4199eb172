"""Set and map creations and deletions as nfnetlink messages, for sending without libnftables.

A policy that admits a new peer identity, or a pod that brings one, creates that identity's
sets; a pod's deletion that takes the last member away deletes them. Encoded here, such a
transaction can go to the kernel whole as a batch of our own (:mod:`policyctl.enforcer.batches`).

Pure. The encoding is libnftables 1.0.6's, for the set kinds the compiler makes and no other
(anything else raises :class:`~policyctl.enforcer.nfmessages.Unencodable`):

* a set of one IPv4 address, IPv6 address or mark, with or without intervals; a concatenation
  of an address, optionally a second address of its family, optionally ``inet_proto .
  inet_service``, with or without intervals; a verdict map keyed by an address or a mark;
* ``NFT_MSG_NEWSET`` (``NLM_F_CREATE``) with the table, the name, the flags (interval,
  concatenation when a concatenation has intervals, map), the key type (a concatenation's
  field types folded six bits each), the key length (fields padded to 4 bytes), a verdict
  map's data type, an interval concatenation's field lengths, and the user data nft reads back
  when it lists the set (key byte order; a concatenation's type description; a map's data
  byte order and data-interval flag); then the elements it is created with, as
  :mod:`~policyctl.enforcer.elementbatch` encodes them;
* ``NFT_MSG_DELSET`` naming the table and the set (a map is a set to the kernel).

A new set carries a set id, as libnftables gives one: the kernel refuses to create an interval
set without it. Ids are numbered within the batch; everything here still names sets, so no
message finds a set by its id.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from policyctl.enforcer.elementbatch import element_messages
from policyctl.enforcer.nfmessages import (
    NFT_MSG_DELSET,
    NFT_MSG_NEWSET,
    NLM_F_CREATE,
    BatchMessage,
    Unencodable,
    attr,
    string,
    u32,
    udata,
)
from policyctl.enforcer.tables import SetState

_SET_TABLE, _SET_NAME, _SET_FLAGS, _SET_KEY_TYPE, _SET_KEY_LEN = 1, 2, 3, 4, 5
_SET_DATA_TYPE, _SET_DATA_LEN, _SET_DESC, _SET_ID, _SET_USERDATA = 6, 7, 9, 10, 13
_DESC_CONCAT, _LIST_ELEM, _FIELD_LEN = 2, 1, 1
_NFT_SET_INTERVAL, _NFT_SET_MAP, _NFT_SET_CONCAT = 0x4, 0x8, 0x80
_NFT_DATA_VERDICT = 0xFFFFFF00
_TYPE_BITS = 6
#: nft's type ids, key lengths and byte orders (``BYTEORDER_HOST_ENDIAN`` 1, ``BIG_ENDIAN`` 2).
_TYPES = {
    "ipv4_addr": (7, 4, 2),
    "ipv6_addr": (8, 16, 2),
    "inet_proto": (12, 1, 2),
    "inet_service": (13, 2, 2),
    "mark": (19, 4, 1),
}
_ADDRESSES = ("ipv4_addr", "ipv6_addr")
#: libnftnl user data types (``NFTNL_UDATA_SET_*``).
_KEY_BYTEORDER, _DATA_BYTEORDER, _KEY_TYPEOF, _DATA_INTERVAL = 0, 1, 3, 6
#: What nft 1.0.6 stores as a concatenation's type description (its expression kind, 13).
_CONCAT_TYPEOF = struct.pack("=BBI", 0, 4, 13) + struct.pack("=BB", 1, 0)


def set_messages(
    index: int, verb: str, kind: str, target: Mapping[str, Any], *, table: str, set_id: int
) -> tuple[list[BatchMessage], SetState | None]:
    """The messages of command ``index``, ``{verb: {kind: target}}`` (``kind`` set or map),
    and the set it leaves (None for a deletion); a new set gets id ``set_id``."""
    name = target.get("name")
    if not isinstance(name, str):
        raise Unencodable
    if verb == "delete" and not set(target) - {"family", "table", "name"}:
        return [BatchMessage(index, NFT_MSG_DELSET, 0, string(_SET_TABLE, table) + string(_SET_NAME, name))], None
    if verb != "add" or set(target) - {"family", "table", "name", "type", "flags", "map", "elem"}:
        raise Unencodable
    types = target.get("type")
    names = [types] if isinstance(types, str) else types
    flags = target.get("flags", [])
    flags = [flags] if isinstance(flags, str) else flags
    if not isinstance(names, list) or not isinstance(flags, list) or set(flags) - {"interval"}:
        raise Unencodable
    is_map = kind == "map"
    if is_map != ("map" in target) or (is_map and (target["map"] != "verdict" or flags)):
        raise Unencodable
    interval = "interval" in flags
    body = string(_SET_TABLE, table) + string(_SET_NAME, name) + _key(names, interval=interval, is_map=is_map,
                                                                      set_id=set_id)
    messages = [BatchMessage(index, NFT_MSG_NEWSET, NLM_F_CREATE, body)]
    spec = {k: v for k, v in target.items() if k not in ("family", "table", "elem")}
    created = SetState(kind=kind, name=name, spec=spec, elements={}, values={})
    if target.get("elem"):
        messages += element_messages(index, "add", target["elem"], created, table=table)
    return messages, created


def _key(names: list[Any], *, interval: bool, is_map: bool, set_id: int) -> bytes:
    """The key's attributes, the map's data, the id and the user data, for a key shaped as
    the compiler shapes them."""
    if not _compiled_shape(names, is_map=is_map):
        raise Unencodable
    concat = len(names) > 1
    flags = (_NFT_SET_INTERVAL if interval else 0) | (_NFT_SET_CONCAT if concat and interval else 0)
    flags |= _NFT_SET_MAP if is_map else 0
    key_type = 0
    for name in names:
        key_type = (key_type << _TYPE_BITS) | _TYPES[name][0]
    length = sum((_TYPES[name][1] + 3) // 4 * 4 for name in names)
    body = u32(_SET_FLAGS, flags) + u32(_SET_KEY_TYPE, key_type) + u32(_SET_KEY_LEN, length)
    if is_map:
        body += u32(_SET_DATA_TYPE, _NFT_DATA_VERDICT) + u32(_SET_DATA_LEN, 0)
    body += u32(_SET_ID, set_id)
    if concat and interval:
        fields = b"".join(attr(_LIST_ELEM, u32(_FIELD_LEN, _TYPES[n][1]), nested=True) for n in names)
        body += attr(_SET_DESC, attr(_DESC_CONCAT, fields, nested=True), nested=True)
    if concat:
        user = udata(_KEY_BYTEORDER, struct.pack("=I", 0)) + udata(_KEY_TYPEOF, _CONCAT_TYPEOF)
    else:
        user = udata(_KEY_BYTEORDER, struct.pack("=I", _TYPES[names[0]][2]))
    if is_map:
        user += udata(_DATA_BYTEORDER, struct.pack("=I", 0)) + udata(_DATA_INTERVAL, struct.pack("=I", 0))
    return body + attr(_SET_USERDATA, user)


def _compiled_shape(names: list[Any], *, is_map: bool) -> bool:
    """One address or mark; or an address, optionally a second of its family, optionally
    protocol and port (no map keyed so)."""
    if len(names) == 1:
        return names[0] in (*_ADDRESSES, "mark")
    if is_map or names[0] not in _ADDRESSES:
        return False
    rest = names[2:] if names[1] == names[0] else names[1:]
    return rest == ["inet_proto", "inet_service"] or names == names[:1] * 2
