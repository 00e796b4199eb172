"""A logged packet's first bytes give its flow: addresses, protocol and ports."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from policyctl.enforcer.packetheaders import HeaderError, Headers, parse_headers
from policyctl.policy.model import Family, Protocol


def ipv4(protocol: int, transport: bytes, *, fragment_offset: int = 0, options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    addresses = ipaddress.IPv4Address("10.0.0.1").packed + ipaddress.IPv4Address("10.0.0.2").packed
    header = struct.pack(">BBHHHBBH", 0x40 | ihl, 0, 20 + len(options) + len(transport), 1, fragment_offset, 64,
                         protocol, 0) + addresses
    return header + options + transport


def ipv6(next_header: int, rest: bytes) -> bytes:
    return (struct.pack(">IHBB", 6 << 28, len(rest), next_header, 64) + ipaddress.IPv6Address("fd00::1").packed
            + ipaddress.IPv6Address("fd00::2").packed + rest)


PORTS = struct.pack(">HH", 40000, 8443) + b"\0" * 16
V4 = (ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2"))
V6 = (ipaddress.ip_address("fd00::1"), ipaddress.ip_address("fd00::2"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (ipv4(6, PORTS), Headers(Family.IPV4, *V4, 6, 40000, 8443)),
        (ipv4(17, PORTS), Headers(Family.IPV4, *V4, 17, 40000, 8443)),
        (ipv4(132, PORTS), Headers(Family.IPV4, *V4, 132, 40000, 8443)),
        (ipv4(6, PORTS, options=b"\x01\x01\x01\x00"), Headers(Family.IPV4, *V4, 6, 40000, 8443)),
        (ipv4(1, b"\x08\x00\x00\x00"), Headers(Family.IPV4, *V4, 1)),
        (ipv4(6, PORTS, fragment_offset=185), Headers(Family.IPV4, *V4, 6)),
        (ipv4(6, b"\x9c"), Headers(Family.IPV4, *V4, 6)),
        (ipv6(6, PORTS), Headers(Family.IPV6, *V6, 6, 40000, 8443)),
        (ipv6(0, bytes([17, 0]) + b"\0" * 6 + PORTS), Headers(Family.IPV6, *V6, 17, 40000, 8443)),
        (ipv6(44, bytes([6, 0, 0, 0]) + b"\0" * 4 + PORTS), Headers(Family.IPV6, *V6, 6, 40000, 8443)),
        (ipv6(44, bytes([6, 0, 0x05, 0x00]) + b"\0" * 4 + PORTS), Headers(Family.IPV6, *V6, 6)),
        (ipv6(58, b"\x80\x00\x00\x00" + b"\0" * 4), Headers(Family.IPV6, *V6, 58)),
    ],
    ids=["v4-tcp", "v4-udp", "v4-sctp", "v4-options", "v4-icmp", "v4-later-fragment", "v4-cut-short", "v6-tcp",
         "v6-hop-by-hop", "v6-first-fragment", "v6-later-fragment", "v6-icmp"],
)
def test_the_flow_fields_are_read_from_the_headers(data: bytes, expected: Headers) -> None:
    assert parse_headers(data) == expected


def test_protocol_names_follow_network_policy() -> None:
    assert parse_headers(ipv4(6, PORTS)).policy_protocol is Protocol.TCP
    assert parse_headers(ipv4(1, b"\0" * 8)).policy_protocol is None
    assert parse_headers(ipv4(1, b"\0" * 8)).protocol_name == "ICMP"


@pytest.mark.parametrize("data", [b"", b"\x45\x00", b"\x20" + b"\0" * 40, b"\x60" + b"\0" * 10], ids=[
    "empty", "short-v4", "version-2", "short-v6"])
def test_bytes_that_are_no_ip_packet_are_refused(data: bytes) -> None:
    with pytest.raises(HeaderError):
        parse_headers(data)
