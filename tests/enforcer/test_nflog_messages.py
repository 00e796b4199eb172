"""The nfnetlink_log messages: what the listener sends to bind, and how packets are read."""

from __future__ import annotations

import socket
import struct

import pytest

from policyctl.enforcer.nflog import (
    NFULA_CFG_CMD,
    NFULA_CFG_MODE,
    NFULA_CFG_QTHRESH,
    NFULA_CFG_TIMEOUT,
    NFULA_IFINDEX_OUTDEV,
    NFULA_PACKET_HDR,
    NFULA_PAYLOAD,
    NFULA_PREFIX,
    NFULA_TIMESTAMP,
    LoggedPacket,
    Parsed,
    bind_messages,
    parse_messages,
)


def attribute(kind: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * ((-length) % 4)


def message(kind: int, body: bytes, seq: int = 0) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 0, seq, 0) + body


def packet_message(family: int, *attributes: bytes) -> bytes:
    return message(4 << 8, struct.pack("=BBH", family, 0, socket.htons(5)) + b"".join(attributes))


def test_binding_asks_for_the_group_packet_copies_and_immediate_delivery() -> None:
    messages = bind_messages(300, copy_range=128)
    kinds = []
    for seq, data in enumerate(messages, 1):
        length, kind, flags, number, _ = struct.unpack_from("=IHHII", data)
        family, version, group = struct.unpack_from("=BBH", data, 16)
        assert (length, kind, flags & 0x5, number, socket.ntohs(group)) == (len(data), (4 << 8) | 1, 0x5, seq, 300)
        attr_length, attr_kind = struct.unpack_from("=HH", data, 20)
        kinds.append((attr_kind, data[24: 20 + attr_length]))
    assert kinds == [
        (NFULA_CFG_CMD, b"\x01"),
        (NFULA_CFG_MODE, struct.pack(">IBx", 128, 2)),
        (NFULA_CFG_QTHRESH, struct.pack(">I", 1)),
        (NFULA_CFG_TIMEOUT, struct.pack(">I", 0)),
    ]


def test_a_packet_message_gives_prefix_payload_hook_time_and_device() -> None:
    data = packet_message(
        2,
        attribute(NFULA_PACKET_HDR, struct.pack(">HBx", 0x0800, 4)),
        attribute(NFULA_TIMESTAMP, struct.pack(">QQ", 1_700_000_000, 250_000)),
        attribute(NFULA_IFINDEX_OUTDEV, struct.pack(">I", 7)),
        attribute(NFULA_PREFIX, b"policyctl drop ingress x/a \0"),
        attribute(NFULA_PAYLOAD, b"\x45abc"),
    )
    assert parse_messages(data + data) == Parsed(
        (LoggedPacket("policyctl drop ingress x/a ", 2, b"\x45abc", 4, 1_700_000_000.25, None, 7),) * 2)


@pytest.mark.parametrize(("code", "expected"), [(0, (9, 0)), (-1, (9, 1)), (-16, (9, 16))])
def test_acknowledgements_and_errors_carry_their_sequence_number(code: int, expected: tuple[int, int]) -> None:
    assert parse_messages(message(2, struct.pack("=i", code) + b"\0" * 16, seq=9)).errors == (expected,)


def test_a_truncated_message_ends_the_datagram_without_inventing_packets() -> None:
    data = packet_message(2, attribute(NFULA_PREFIX, b"policyctl drop egress x/a \0"))
    assert parse_messages(data[:-3]) == Parsed()
    assert parse_messages(message(4, b"")).overrun
