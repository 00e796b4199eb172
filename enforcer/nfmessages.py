"""nf_tables messages as the enforcer sends them itself: their records and their attributes.

A transaction libnftables would have sent can go to the kernel as the same nfnetlink batch
without libnftables (:mod:`policyctl.enforcer.batches`): the encoders of elements
(:mod:`~policyctl.enforcer.elementbatch`) and of chains and rules
(:mod:`~policyctl.enforcer.rulebatch`) turn each command into :class:`BatchMessage` records,
or raise :class:`Unencodable` for anything they do not encode exactly, and the backend frames
them. Attributes are netlink TLVs (``struct nlattr``: length and type in host order, payload
padded to 4 bytes), as the kernel's ``include/uapi/linux/netfilter/nf_tables.h`` lays them out;
:func:`attributes` reads them back for every nfnetlink reply the enforcer reads itself (the
table-handle query's, NFLOG's packets), so the framing is written once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: nftables families as netlink numbers them (``NFPROTO_*``).
NFPROTO = {"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10}

NFT_MSG_NEWCHAIN = 3
NFT_MSG_DELCHAIN = 5
NFT_MSG_NEWRULE = 6
NFT_MSG_DELRULE = 8
NFT_MSG_NEWSET = 9
NFT_MSG_DELSET = 11
NFT_MSG_NEWSETELEM = 12
NFT_MSG_DELSETELEM = 14
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800

_NESTED = 0x8000
_HEADER = struct.Struct("=HH")
#: ``NLA_TYPE_MASK``: the type without ``NLA_F_NESTED`` and ``NLA_F_NET_BYTEORDER``.
_TYPE_MASK = 0x3FFF
_DATA_VERDICT = 2
_VERDICT_CODE, _VERDICT_CHAIN = 1, 2
#: ``NF_DROP``, ``NF_ACCEPT``, ``NFT_CONTINUE``, ``NFT_JUMP``, ``NFT_GOTO``, ``NFT_RETURN``.
VERDICT_CODES = {"drop": 0, "accept": 1, "continue": -1, "jump": -3, "goto": -4, "return": -5}


@dataclass(frozen=True, slots=True)
class BatchMessage:
    """One nf_tables message of a batch: the index of the transaction's command it carries (a
    command of many elements may take several messages), its ``NFT_MSG_*`` type, its flags
    beyond request and ack, and its attributes (after the ``nfgenmsg``)."""

    command: int
    type: int
    flags: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Batch:
    """The messages of one transaction, in order, for tables of ``family`` (``NFPROTO_*``)."""

    family: int
    messages: tuple[BatchMessage, ...]


class Unencodable(Exception):
    """This command is not one the encoders encode exactly: the transaction goes to libnftables."""


#: The padding after an attribute of each length modulo 4.
_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")


def attr(kind: int, payload: bytes, *, nested: bool = False) -> bytes:
    length = _HEADER.size + len(payload)
    return _HEADER.pack(length, kind | _NESTED if nested else kind) + payload + _PADDING[length & 3]


def attributes(data: bytes, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(type with its flags, payload)`` of each attribute from ``offset`` to the end of
    ``data``, in order. An attribute shorter than its header or longer than what is left ends
    the reading there, as the kernel's ``nla_ok`` does: what follows cannot be framed."""
    while offset + _HEADER.size <= len(data):
        length, kind = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size or offset + length > len(data):
            return
        yield kind, data[offset + _HEADER.size: offset + length]
        offset += (length + 3) & ~3


def attributes_by_type(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """The payload of each attribute of :func:`attributes` by its type without flags (the last
    one of a type wins), for replies read by the attributes they carry."""
    return {kind & _TYPE_MASK: payload for kind, payload in attributes(data, offset)}


def string(kind: int, text: str) -> bytes:
    """A NUL-terminated string attribute (names, prefixes)."""
    return attr(kind, text.encode() + b"\0")


def u32(kind: int, value: int) -> bytes:
    """A 32-bit attribute in network order, as nf_tables reads registers, lengths and flags."""
    return attr(kind, struct.pack(">I", value))


def udata(kind: int, value: bytes) -> bytes:
    """One TLV of libnftnl's user data (what nft keeps beside an object to print it back): its
    type and length a byte each."""
    if len(value) > 255:
        raise Unencodable
    return struct.pack("=BB", kind, len(value)) + value


def user_comment(text: str) -> bytes:
    """libnftnl's user data holding a rule's comment: a TLV of type 0
    (``NFTNL_UDATA_RULE_COMMENT``), the text NUL-terminated. nft keeps comments within 128
    bytes."""
    return udata(0, text.encode() + b"\0")


def verdict(value: Any) -> bytes:
    """``NFTA_DATA_VERDICT`` of a JSON verdict (``{"accept": null}``, ``{"jump": {"target":
    c}}``): its code and, for a jump or goto, the chain's name."""
    if not isinstance(value, dict) or len(value) != 1:
        raise Unencodable
    (verb, body), = value.items()
    code = VERDICT_CODES.get(verb)
    if code is None:
        raise Unencodable
    encoded = attr(_VERDICT_CODE, struct.pack(">i", code))
    if verb in ("jump", "goto"):
        chain = body.get("target") if isinstance(body, dict) and set(body) == {"target"} else None
        if not isinstance(chain, str):
            raise Unencodable
        encoded += string(_VERDICT_CHAIN, chain)
    elif body is not None:
        raise Unencodable
    return attr(_DATA_VERDICT, encoded, nested=True)
