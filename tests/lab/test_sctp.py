"""SCTP packets built by hand: the checksum conntrack verifies, and parsing what we built."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.lab import sctp

ports = st.integers(min_value=1, max_value=65535)
tags = st.integers(min_value=1, max_value=2**32 - 1)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # The check value of CRC-32C (iSCSI) in the CRC catalogue and RFC 3720 B.4 examples.
        (b"123456789", 0xE3069283),
        (bytes(32), 0x8A9136AA),
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
    ],
    ids=["check-value", "32-zeros", "32-ones", "incrementing"],
)
def test_crc32c_matches_published_vectors(data: bytes, expected: int) -> None:
    assert sctp.crc32c(data) == expected


def test_init_has_zero_verification_tag_and_checksum_stored_least_significant_byte_first() -> None:
    packet = sctp.init_packet(source_port=1000, destination_port=80, tag=0x01020304)
    assert struct.unpack_from("!HHI", packet) == (1000, 80, 0)
    zeroed = packet[:8] + b"\0\0\0\0" + packet[12:]
    assert packet[8:12] == struct.pack("<I", sctp.crc32c(zeroed))
    assert packet[12] == sctp.INIT and struct.unpack_from("!H", packet, 14)[0] == len(packet) - 12


@settings(max_examples=150)
@given(source=ports, destination=ports, tag=tags)
def test_parse_recovers_every_init(source: int, destination: int, tag: int) -> None:
    parsed = sctp.parse(sctp.init_packet(source_port=source, destination_port=destination, tag=tag))
    assert parsed == sctp.Packet(source, destination, 0, sctp.INIT, tag)


@settings(max_examples=150)
@given(source=ports, destination=ports, peer=tags, tag=tags)
def test_init_ack_carries_the_peer_tag_as_verification_tag(source: int, destination: int, peer: int, tag: int) -> None:
    packet = sctp.init_ack_packet(source_port=source, destination_port=destination, peer_tag=peer, tag=tag)
    assert sctp.parse(packet) == sctp.Packet(source, destination, peer, sctp.INIT_ACK, tag)


@settings(max_examples=150)
@given(tag=tags, position=st.integers(min_value=0, max_value=31), bit=st.integers(min_value=0, max_value=7))
def test_any_flipped_bit_is_rejected(tag: int, position: int, bit: int) -> None:
    packet = bytearray(sctp.init_packet(source_port=5000, destination_port=80, tag=tag))
    packet[position] ^= 1 << bit
    assert sctp.parse(bytes(packet)) is None


def test_ipv4_header_is_stripped_by_its_length_field() -> None:
    payload = sctp.init_packet(source_port=1, destination_port=2, tag=3)
    header = bytes([0x46]) + bytes(23)  # IHL 6: a 24-byte header with options
    assert sctp.strip_ipv4_header(header + payload) == payload
