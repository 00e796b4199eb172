"""IP addresses and CIDRs parsed the way the API server parses them today.

The API server validates ``ipBlock.cidr``, ``ipBlock.except`` and ``status.podIPs`` as "legacy
fields" (``IsValidCIDRForLegacyField`` / ``IsValidIPForLegacyField`` in
``k8s.io/apimachinery/pkg/util/validation/ip.go``) with ``netutils.ParseCIDRSloppy`` /
``ParseIPSloppy`` (``k8s.io/utils/net``, a fork of Go 1.16's ``net.ParseIP`` and
``net.ParseCIDR``). Strict parsing sits behind the ``StrictIPCIDRValidation`` feature gate,
alpha and off by default (1.33 onwards), so every form the fork reads is accepted, with a
warning that a future release will reject it (``GetWarningsForCIDR``).

The fork is transcribed here function by function (``dtoi``, ``xtoi``, ``parseIPv4``,
``parseIPv6``, ``ParseIP``, ``ParseCIDR``) because no Python parser reads the same language:

* IPv4 octets and prefix lengths are decimal with any number of leading zeros
  (``010.0.0.0/08`` is ``10.0.0.0/8``, never octal); an IPv6 group is hexadecimal with any
  number of leading zeros (``00001::/16``), and an embedded IPv4 part is read as IPv4 above
  (``::ffff:010.0.0.0/104``); ``ipaddress`` rejects all three.
* Nothing else is: no netmask, no zone, no sign, no space, no trailing newline (Go compares
  every byte; a regular expression with ``$`` lets ``"10.0.0.0/8\\n"`` through).
* Host bits after the prefix are kept in the address and masked off in the network
  (``10.0.0.7/4`` means ``0.0.0.0/4``).

Go's ``net.IP`` holds an IPv4 address written in IPv6 (``::ffff:10.0.0.1``) as IPv4, and
``IPNet.Contains`` reads an IPv4-mapped network through the last 32 bits of its mask, so
``::ffff:10.0.0.0/104`` contains exactly what ``10.0.0.0/8`` does. :attr:`ParsedCIDR.network`
is that network. The mask length Go compares (``Mask.Size()``) is the one written, 104, kept
as :attr:`ParsedCIDR.prefix_length`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from policyctl.policy.model import IPAddress, IPNetwork

_BIG = 0xFFFFFF
_IPV4_LEN = 4
_IPV6_LEN = 16
_V4_IN_V6_PREFIX = bytes(10) + b"\xff\xff"
_DECIMAL_DIGITS = re.compile(r"[0-9]+")
_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]+")


@dataclass(frozen=True, slots=True)
class ParsedAddress:
    """An IP as ``ParseIPSloppy`` reads it; ``non_standard`` when a strict parser would
    reject it (leading zeros, IPv4-mapped IPv6)."""

    address: IPAddress
    non_standard: bool = False


@dataclass(frozen=True, slots=True)
class ParsedCIDR:
    """A CIDR as ``ParseCIDRSloppy`` reads it: ``address`` as written (host bits kept),
    ``network`` the masked network as Go's ``IPNet.Contains`` sees it, and ``prefix_length``
    the mask length written, which is what ``Mask.Size()`` returns (104 for
    ``::ffff:10.0.0.0/104``, whose ``network`` is ``10.0.0.0/8``)."""

    address: IPAddress
    network: IPNetwork
    prefix_length: int
    non_standard: bool = False

    @property
    def has_host_bits(self) -> bool:
        return self.address != self.network.network_address

    def strict_superset_of(self, other: ParsedCIDR) -> bool:
        """``ValidateIPBlock``'s test for an except: ``cidrIPNet.Contains(exceptCIDR.IP)`` and
        ``cidrMaskLen < exceptMaskLen``. Go compares the written mask lengths, so an IPv4 except
        under an IPv4-mapped ``cidr`` (104 against at most 32) never passes, and an
        IPv4-mapped except under an IPv4 ``cidr`` (8 against 103) can, even when it covers
        more than ``cidr``."""
        inner = other.network.network_address
        return (
            inner.version == self.network.version
            and inner in self.network
            and self.prefix_length < other.prefix_length
        )


def _number(text: str, digits: re.Pattern[str], base: int) -> tuple[int, int, bool]:
    """Go's ``dtoi`` / ``xtoi``: the number at the start of ``text``, the characters read,
    and whether there was one below 0xFFFFFF. Go stops at the first value that reaches
    0xFFFFFF; values only grow, so testing the whole run of digits once is the same (and
    keeps a run of a million zeros linear)."""
    run = digits.match(text)
    read = run.end() if run else 0
    if read == 0:
        return 0, 0, False
    significant = text[:read].lstrip("0")
    if len(significant) > 8:
        return _BIG, read, False
    value = int(significant or "0", base)
    if value >= _BIG:
        return _BIG, read, False
    return value, read, True


def _dtoi(text: str) -> tuple[int, int, bool]:
    return _number(text, _DECIMAL_DIGITS, 10)


def _xtoi(text: str) -> tuple[int, int, bool]:
    return _number(text, _HEX_DIGITS, 16)


def _parse_ipv4(text: str) -> tuple[bytes, bool] | None:
    """``parseIPv4`` of the fork (leading zeros allowed); the 4 bytes and whether any octet
    had a leading zero (which Go's strict ``netip`` parser refuses)."""
    octets = bytearray()
    leading_zero = False
    rest = text
    for i in range(_IPV4_LEN):
        if not rest:
            return None
        if i > 0:
            if rest[0] != ".":
                return None
            rest = rest[1:]
        n, c, ok = _dtoi(rest)
        if not ok or n > 0xFF:
            return None
        leading_zero = leading_zero or (c > 1 and rest[0] == "0")
        rest = rest[c:]
        octets.append(n)
    if rest:
        return None
    return bytes(octets), leading_zero


def _parse_ipv6(text: str) -> tuple[bytes, bool] | None:
    """``parseIPv6`` of the fork; the 16 bytes and whether Go's strict ``netip`` parser would
    refuse them (a group of more than 4 digits, an embedded IPv4 part with leading zeros)."""
    ip = bytearray(_IPV6_LEN)
    ellipsis = -1
    rest = text
    non_standard = False
    if len(rest) >= 2 and rest[0] == ":" and rest[1] == ":":
        ellipsis = 0
        rest = rest[2:]
        if not rest:
            return bytes(ip), False
    i = 0
    while i < _IPV6_LEN:
        n, c, ok = _xtoi(rest)
        if not ok or n > 0xFFFF:
            return None
        if c < len(rest) and rest[c] == ".":
            if ellipsis < 0 and i != _IPV6_LEN - _IPV4_LEN:
                return None
            if i + _IPV4_LEN > _IPV6_LEN:
                return None
            v4 = _parse_ipv4(rest)
            if v4 is None:
                return None
            ip[i : i + _IPV4_LEN] = v4[0]
            non_standard = non_standard or v4[1]
            rest = ""
            i += _IPV4_LEN
            break
        non_standard = non_standard or c > 4
        ip[i] = n >> 8
        ip[i + 1] = n & 0xFF
        i += 2
        rest = rest[c:]
        if not rest:
            break
        if rest[0] != ":" or len(rest) == 1:
            return None
        rest = rest[1:]
        if rest[0] == ":":
            if ellipsis >= 0:
                return None
            ellipsis = i
            rest = rest[1:]
            if not rest:
                break
    if rest:
        return None
    if i < _IPV6_LEN:
        if ellipsis < 0:
            return None
        n = _IPV6_LEN - i
        ip[ellipsis + n : _IPV6_LEN] = ip[ellipsis:i]
        ip[ellipsis : ellipsis + n] = bytes(n)
    elif ellipsis >= 0:
        return None
    return bytes(ip), non_standard


def _address(raw: bytes) -> IPAddress:
    """A Go ``net.IP`` as Python reads it: an IPv4-mapped IPv6 address is IPv4 (``To4``)."""
    if len(raw) == _IPV6_LEN and raw[:12] == _V4_IN_V6_PREFIX:
        return ipaddress.IPv4Address(raw[12:])
    if len(raw) == _IPV4_LEN:
        return ipaddress.IPv4Address(raw)
    return ipaddress.IPv6Address(raw)


def parse_ip_sloppy(text: object) -> ParsedAddress | None:
    """``ParseIPSloppy``: the first '.' or ':' decides the family; ``None`` when the API
    server would reject the value (or it is not a string at all)."""
    if not isinstance(text, str):
        return None
    for char in text:
        if char == ".":
            v4 = _parse_ipv4(text)
            return None if v4 is None else ParsedAddress(_address(v4[0]), non_standard=v4[1])
        if char == ":":
            v6 = _parse_ipv6(text)
            if v6 is None:
                return None
            mapped = v6[0][:12] == _V4_IN_V6_PREFIX
            return ParsedAddress(_address(v6[0]), non_standard=v6[1] or mapped)
    return None


def parse_cidr_sloppy(text: object) -> ParsedCIDR | None:
    """``ParseCIDRSloppy``: ``address/prefix`` split at the first '/', the address IPv4 if it
    reads as one, else IPv6, the prefix a decimal number no larger than that family's bit
    length; ``None`` when the API server would reject the value (or it is not a string)."""
    if not isinstance(text, str):
        return None
    address_text, slash, mask_text = text.partition("/")
    if not slash:
        return None
    v4 = _parse_ipv4(address_text)
    parsed = v4 if v4 is not None else _parse_ipv6(address_text)
    bits = 8 * (_IPV4_LEN if v4 is not None else _IPV6_LEN)
    n, read, ok = _dtoi(mask_text)
    if parsed is None or not ok or read != len(mask_text) or n > bits:
        return None
    raw, written_non_standard = parsed
    non_standard = written_non_standard or (len(mask_text) > 1 and mask_text[0] == "0")
    mask = ((1 << bits) - 1) ^ ((1 << (bits - n)) - 1)
    masked = (int.from_bytes(raw, "big") & mask).to_bytes(len(raw), "big")
    if bits == 8 * _IPV4_LEN:
        network: IPNetwork = ipaddress.IPv4Network((masked, n))
    elif masked[:12] == _V4_IN_V6_PREFIX:
        network = ipaddress.IPv4Network((masked[12:], n - 96))
    else:
        network = ipaddress.IPv6Network((masked, n))
    mapped = bits == 8 * _IPV6_LEN and raw[:12] == _V4_IN_V6_PREFIX
    return ParsedCIDR(_address(raw), network, n, non_standard=non_standard or mapped)
