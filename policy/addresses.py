"""IP addresses and CIDRs parsed the way the API server parses them today.

The API server validates ``ipBlock.cidr``, ``ipBlock.except`` and ``status.podIPs`` as "legacy
fields" (``IsValidCIDRForLegacyField`` / ``IsValidIPForLegacyField`` in
``k8s.io/apimachinery/pkg/api/validation/ip.go``) with ``netutils.ParseCIDRSloppy`` /
``ParseIPSloppy``: Go's pre-1.17 parser, which accepts IPv4 octets and prefix lengths with
leading zeros and reads them as *decimal* (``010.0.0.0/08`` is ``10.0.0.0/8``), and accepts
host bits after the prefix (``10.0.0.7/4`` means ``0.0.0.0/4``). Strict parsing sits behind
the ``StrictIPCIDRValidation`` feature gate, alpha and off by default (1.33 onwards), so these
forms are accepted, with a warning that a future release will reject them
(``GetWarningsForCIDR``). Python's ``ipaddress`` rejects leading zeros and accepts forms Go
does not (netmasks, zones, no prefix), so the grammar is checked here first.

IPv4-mapped IPv6 values (``::ffff:10.0.0.1``) are IPv4 to Go's ``net.IP``; they are returned
as IPv4, marked non-standard.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from policyctl.policy.model import IPAddress, IPNetwork

_DECIMAL_RE = re.compile(r"^[0-9]+$")
_GO_DTOI_BIG = 0xFFFFFF


@dataclass(frozen=True, slots=True)
class ParsedAddress:
    """An IP as ``ParseIPSloppy`` reads it; ``non_standard`` when a strict parser would
    reject it (leading zeros, IPv4-mapped IPv6)."""

    address: IPAddress
    non_standard: bool = False


@dataclass(frozen=True, slots=True)
class ParsedCIDR:
    """A CIDR as ``ParseCIDRSloppy`` reads it: ``address`` as written (host bits kept) and
    ``network``, the masked network that the API server's ``IPNet`` holds."""

    address: IPAddress
    network: IPNetwork
    non_standard: bool = False

    @property
    def has_host_bits(self) -> bool:
        return self.address != self.network.network_address


def _decimal(text: str, *, limit: int) -> int | None:
    """Go's ``dtoi``: ASCII digits only, leading zeros allowed, value at most ``limit``."""
    if not _DECIMAL_RE.match(text):
        return None
    value = int(text)
    if value >= _GO_DTOI_BIG or value > limit:
        return None
    return value


def _parse_ipv4(text: str) -> tuple[ipaddress.IPv4Address, bool] | None:
    parts = text.split(".")
    if len(parts) != 4:
        return None
    octets = [_decimal(p, limit=255) for p in parts]
    if any(o is None for o in octets):
        return None
    leading_zero = any(len(p) > 1 and p.startswith("0") for p in parts)
    return ipaddress.IPv4Address(".".join(str(o) for o in octets)), leading_zero


def _parse_ipv6(text: str) -> ipaddress.IPv6Address | None:
    if "%" in text or not text or ":" not in text:
        return None
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def parse_ip_sloppy(text: str) -> ParsedAddress | None:
    """``ParseIPSloppy``; ``None`` when the API server would reject the value."""
    v4 = _parse_ipv4(text)
    if v4 is not None:
        return ParsedAddress(v4[0], non_standard=v4[1])
    v6 = _parse_ipv6(text)
    if v6 is None:
        return None
    if v6.ipv4_mapped is not None:
        return ParsedAddress(v6.ipv4_mapped, non_standard=True)
    return ParsedAddress(v6)


def parse_cidr_sloppy(text: str) -> ParsedCIDR | None:
    """``ParseCIDRSloppy``: ``address/prefix`` split at the first '/', the prefix a decimal
    number no larger than the family's bit length; ``None`` when the API server would reject
    the value."""
    address_text, slash, prefix_text = text.partition("/")
    if not slash:
        return None
    v4 = _parse_ipv4(address_text)
    if v4 is not None:
        prefix = _decimal(prefix_text, limit=32)
        if prefix is None:
            return None
        network4 = ipaddress.IPv4Network((v4[0], prefix), strict=False)
        non_standard = v4[1] or (len(prefix_text) > 1 and prefix_text.startswith("0"))
        return ParsedCIDR(v4[0], network4, non_standard=non_standard)
    v6 = _parse_ipv6(address_text)
    prefix = _decimal(prefix_text, limit=128)
    if v6 is None or prefix is None:
        return None
    non_standard = len(prefix_text) > 1 and prefix_text.startswith("0")
    network6 = ipaddress.IPv6Network((v6, prefix), strict=False)
    mapped = network6.network_address.ipv4_mapped
    if prefix >= 96 and mapped is not None and v6.ipv4_mapped is not None:
        # Go's IPNet.Contains reads a mapped network as IPv4 with the last 32 mask bits.
        network4 = ipaddress.IPv4Network((mapped, prefix - 96), strict=False)
        return ParsedCIDR(v6.ipv4_mapped, network4, non_standard=True)
    return ParsedCIDR(v6, network6, non_standard=non_standard or v6.ipv4_mapped is not None)
