"""The addresses, protocol and destination port of a packet, from its first bytes.

NFLOG hands over a packet from its network header on (``NFULA_PAYLOAD``). A drop is reported
as a flow, so only what a flow needs is read: the IP addresses, the transport protocol and,
for TCP, UDP and SCTP (the protocols NetworkPolicy ports name), the ports, which sit in the
first four bytes of each of those headers. IPv6 extension headers (hop-by-hop, routing,
destination options, fragment, AH) are walked to reach the transport header. A non-first
fragment has no transport header, so it has no ports.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from policyctl.policy.model import Family, IPAddress, Protocol

#: IANA protocol numbers of the protocols NetworkPolicy ports name.
PROTOCOLS = {6: Protocol.TCP, 17: Protocol.UDP, 132: Protocol.SCTP}
PROTOCOL_NAMES = {1: "ICMP", 58: "ICMPv6", **{n: p.value for n, p in PROTOCOLS.items()}}
_IPV6_EXTENSIONS = {0, 43, 60}
_IPV6_FRAGMENT = 44
_IPV6_AH = 51


class HeaderError(ValueError):
    """The bytes are not the start of an IP packet of the family given."""


@dataclass(frozen=True, slots=True)
class Headers:
    """A packet's flow fields. ``protocol`` is the IANA number; ``source_port`` and
    ``port`` (the destination's) are None when the packet has no TCP, UDP or SCTP header
    (another protocol, a non-first fragment, or too few bytes copied)."""

    family: Family
    source: IPAddress
    destination: IPAddress
    protocol: int
    source_port: int | None = None
    port: int | None = None

    @property
    def protocol_name(self) -> str:
        return PROTOCOL_NAMES.get(self.protocol, str(self.protocol))

    @property
    def policy_protocol(self) -> Protocol | None:
        """The protocol as NetworkPolicy names it, None when it names no such protocol."""
        return PROTOCOLS.get(self.protocol)


def _ports(data: bytes, offset: int, protocol: int) -> tuple[int | None, int | None]:
    if protocol not in PROTOCOLS or offset + 4 > len(data):
        return None, None
    return int.from_bytes(data[offset: offset + 2], "big"), int.from_bytes(data[offset + 2: offset + 4], "big")


def _ipv4(data: bytes) -> Headers:
    if len(data) < 20 or data[0] >> 4 != 4:
        raise HeaderError("not an IPv4 header")
    length = (data[0] & 0x0F) * 4
    protocol = data[9]
    fragment_offset = int.from_bytes(data[6:8], "big") & 0x1FFF
    ports = (None, None) if fragment_offset else _ports(data, length, protocol)
    source, destination = ipaddress.IPv4Address(data[12:16]), ipaddress.IPv4Address(data[16:20])
    return Headers(Family.IPV4, source, destination, protocol, *ports)


def _ipv6(data: bytes) -> Headers:
    if len(data) < 40 or data[0] >> 4 != 6:
        raise HeaderError("not an IPv6 header")
    source, destination = ipaddress.IPv6Address(data[8:24]), ipaddress.IPv6Address(data[24:40])
    protocol, offset, first = data[6], 40, True
    while offset + 8 <= len(data):
        if protocol in _IPV6_EXTENSIONS:
            protocol, offset = data[offset], offset + (data[offset + 1] + 1) * 8
        elif protocol == _IPV6_FRAGMENT:
            first = first and int.from_bytes(data[offset + 2: offset + 4], "big") >> 3 == 0
            protocol, offset = data[offset], offset + 8
        elif protocol == _IPV6_AH:
            protocol, offset = data[offset], offset + (data[offset + 1] + 2) * 4
        else:
            break
    ports = _ports(data, offset, protocol) if first else (None, None)
    return Headers(Family.IPV6, source, destination, protocol, *ports)


def parse_headers(data: bytes) -> Headers:
    """The flow fields of the packet that starts ``data`` (its version nibble picks the
    family); raises :class:`HeaderError` for anything else."""
    if not data:
        raise HeaderError("no packet bytes")
    version = data[0] >> 4
    if version == 4:
        return _ipv4(data)
    if version == 6:
        return _ipv6(data)
    raise HeaderError(f"IP version {version}")
