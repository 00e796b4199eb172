"""Canonical keys for set and map elements, so a listing and a desired ruleset compare equal
when the kernel holds the same elements.

The kernel does not hand elements back the way they were written: in an interval set a /32
prefix lists as a plain address, a range that is exactly a prefix lists as ``prefix``, a
protocol number lists by name, and elements of sets with counters or timeouts come wrapped in
``{"elem": {"val": ...}}``. Each element is therefore reduced to the closed interval of values
it covers, per field of a concatenation; two elements are the same element iff their keys are
equal. The original representation is kept beside the key: deleting an element names it as
the kernel listed it, or as it was written when the enforcer diffs against its own last commit
(the same interval either way; the kernel matches the value, not its spelling).

An element that comes from the compiler already is its intervals: :func:`typed_element_key` and
:func:`entry_keys` build the key from them directly instead of parsing the rendered spelling
back, and give the key :func:`element_key` gives that spelling. :func:`key_order` is the order
in which elements are sent.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import socket
from collections.abc import Hashable, Iterable
from json.encoder import encode_basestring_ascii
from typing import Any

from policyctl.compiler.intervals import Interval
from policyctl.compiler.ruleset import Element, FieldType, Goto, Jump, Verdict
from policyctl.policy.model import IPAddress

ElementKey = Hashable

#: ``inet_proto`` names as nft lists them (``/etc/protocols``), so ``6`` and ``"tcp"`` agree.
PROTOCOL_NUMBERS = {
    "icmp": 1,
    "igmp": 2,
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "sctp": 132,
    "udplite": 136,
}

VERDICTS = ("accept", "drop", "continue", "return")


_FAMILIES = ((socket.AF_INET, 4), (socket.AF_INET6, 6))


@functools.lru_cache(maxsize=1 << 17)
def _address_range(text: str) -> tuple[str, int, int, int] | None:
    """Pure in ``text``, and called for every address of every listing: memoised, as a
    node's addresses repeat from one apply to the next. A plain address is read by
    ``inet_pton`` first (a tenth of ``ipaddress``' time, and a whole apply reads tens of
    thousands of them once); whatever it refuses, ``ipaddress`` decides
    (:func:`_parsed_range`, which gives every text the same key)."""
    if "/" not in text:
        for family, version in _FAMILIES:
            try:
                value = int.from_bytes(socket.inet_pton(family, text), "big")
            except (OSError, UnicodeError, ValueError):
                continue
            return ("ip", version, value, value)
    return _parsed_range(text)


def _parsed_range(text: str) -> tuple[str, int, int, int] | None:
    """An address or prefix as ``ipaddress`` reads it, None when it is neither."""
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            return ("ip", net.version, int(net.network_address), int(net.broadcast_address))
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return ("ip", addr.version, int(addr), int(addr))


def element_key(value: Any) -> ElementKey:
    """The canonical key of one element value (a set element, or a map element's key).

    Called for every element the enforcer reads back or sends as a batch of its own, so the
    spellings the compiler and nft write most (an address, a protocol, a port, a
    concatenation of them) are tried first by their exact type; any other value takes the
    general path, which gives every value the same key as before."""
    kind = type(value)
    if kind is str:
        return _string_key(value)
    if kind is int:
        return ("n", value, value)
    if kind is dict and len(value) == 1:
        body = value.get("concat")
        if type(body) is list:
            return ("concat", tuple(element_key(part) for part in body))
    return _general_key(value)


def _string_key(value: str) -> ElementKey:
    """An address or prefix keys as its range, a protocol name as its number (nft lists
    ``tcp`` where the compiler may have written 6), any other string as itself."""
    address = _address_range(value)
    if address is not None:
        return address
    number = PROTOCOL_NUMBERS.get(value)
    return ("s", value) if number is None else ("n", number, number)


def _general_key(value: Any) -> ElementKey:
    if isinstance(value, dict) and set(value) == {"elem"} and isinstance(value["elem"], dict):
        return element_key(value["elem"].get("val"))
    if isinstance(value, bool):
        return ("json", json.dumps(value))
    if isinstance(value, int):
        return ("n", value, value)
    if isinstance(value, str):
        return _string_key(value)
    if isinstance(value, dict) and len(value) == 1:
        (kind, body), = value.items()
        if kind == "prefix" and isinstance(body, dict):
            found = _address_range(f"{body.get('addr')}/{body.get('len')}")
            if found is not None:
                return found
        if kind == "range" and isinstance(body, list) and len(body) == 2:
            low, high = element_key(body[0]), element_key(body[1])
            if (
                isinstance(low, tuple)
                and isinstance(high, tuple)
                and low[0] == high[0]
                and low[0] in ("ip", "n")
                and low[:-2] == high[:-2]
            ):
                return (*low[:-1], high[-1])
        if kind == "concat" and isinstance(body, list):
            return ("concat", tuple(element_key(part) for part in body))
    return ("json", json.dumps(value, sort_keys=True))


def element_value(element: Any) -> Any:
    """An element with any ``{"elem": {"val": ...}}`` wrapper (counters, timeouts,
    comments) removed."""
    if isinstance(element, dict) and set(element) == {"elem"} and isinstance(element["elem"], dict):
        return element["elem"].get("val")
    return element


def split_map_element(element: Any) -> tuple[Any, Any] | None:
    """A map element ``[key, value]`` (possibly wrapped) as its two halves, None when it is
    not shaped like one."""
    element = element_value(element)
    if isinstance(element, list) and len(element) == 2:
        return element[0], element[1]
    return None


def value_key(value: Any) -> ElementKey:
    """The canonical key of a map element's value: verdicts written as ``"accept"`` and
    listed as ``{"accept": null}`` agree; data values compare like element keys."""
    if isinstance(value, str) and value in VERDICTS:
        return ("verdict", json.dumps({value: None}))
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in (*VERDICTS, "jump", "goto"):
        return ("verdict", json.dumps(value, sort_keys=True))
    return element_key(value)


def element_keys(kind: str, element: Any) -> tuple[ElementKey, ElementKey | None]:
    """The canonical key of one element of a set (``kind == "set"``) or map, and for a map
    element its value's key; ``ValueError`` when a map element is not ``[key, value]``."""
    if kind != "map":
        return element_key(element), None
    pair = split_map_element(element)
    if pair is None:
        raise ValueError(f"a map element must be [key, value], not {element!r}")
    return element_key(pair[0]), value_key(pair[1])


_ADDRESS_VERSIONS = {FieldType.IPV4: 4, FieldType.IPV6: 6}


def interval_key(kind: FieldType, value: Interval) -> ElementKey:
    """The key of one field of a compiler element: an address interval keeps its family (an
    IPv4 and an IPv6 address may be the same integer), a protocol or port is a plain number
    interval, as a protocol's name and number are the same element."""
    version = _ADDRESS_VERSIONS.get(kind)
    if version is not None:
        return ("ip", version, value.low, value.high)
    return ("n", value.low, value.high)


def typed_element_key(types: tuple[FieldType, ...], element: Element) -> ElementKey:
    """The key :func:`element_key` gives the rendering of ``element`` in a set of key types
    ``types``: one field is its own key, several are a concatenation."""
    if len(element) == 1:
        return interval_key(types[0], element[0])
    return ("concat", tuple(interval_key(kind, value) for kind, value in zip(types, element)))


def entry_keys(address: IPAddress | int, target: Jump | Goto | Verdict) -> tuple[ElementKey, ElementKey]:
    """The keys :func:`element_keys` gives the rendering of a verdict-map entry: the address
    (or mark value), and the verdict as nft lists it."""
    number = int(address)
    if isinstance(target, Verdict):
        verdict = f'{{"{target.value}": null}}'
    else:
        verb = "jump" if isinstance(target, Jump) else "goto"
        verdict = f'{{"{verb}": {{"target": {encode_basestring_ascii(target.target)}}}}}'
    if isinstance(address, int):
        return ("n", number, number), ("verdict", verdict)
    return ("ip", address.version, number, number), ("verdict", verdict)


def key_order(keys: Iterable[ElementKey]) -> list[ElementKey]:
    """``keys`` sorted: the order elements are sent in, one order whoever computed the keys (a
    listing or the compiler's intervals give equal keys). Keys compare as tuples: each is a
    tuple whose first item, a tag, fixes the types of the rest (``("ip", version, low,
    high)``, ``("n", low, high)``, ``("s", text)``, ``("json", text)``, ``("concat", keys)``),
    so any two keys compare."""
    return sorted(keys)  # type: ignore[type-var]
