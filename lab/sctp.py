"""SCTP packets built by hand, for kernels without SCTP sockets (no ``sctp`` module).

The lab proves SCTP policy with raw sockets (IP protocol 132): the prober sends an INIT chunk
from the source pod, the destination pod's observer records it and answers with an INIT ACK
carrying the INIT's initiate tag, as an SCTP endpoint would (RFC 9260 section 5.1). Conntrack
tracks this exchange like a real association start, so the INIT is a new connection to the
node's ruleset and the INIT ACK a reply.

The checksum is CRC32c over the whole SCTP packet with the checksum field zeroed (RFC 9260
appendix A); conntrack drops packets whose checksum is wrong, so it must be right. Unlike TCP
and UDP there is no pseudo-header, so the same bytes serve IPv4 and IPv6. Pure: no sockets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

IPPROTO_SCTP = 132
INIT = 1
INIT_ACK = 2
_STATE_COOKIE = 7
_HEADER = struct.Struct("!HHII")
_INIT_BODY = struct.Struct("!IIHHI")


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): ``crc32c(b"123456789")`` is
    ``0xE3069283``."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _seal(packet: bytes) -> bytes:
    """Fill in the checksum; SCTP stores the CRC least significant byte first."""
    return packet[:8] + struct.pack("<I", crc32c(packet[:8] + b"\0\0\0\0" + packet[12:])) + packet[12:]


def _chunk(kind: int, body: bytes) -> bytes:
    return struct.pack("!BBH", kind, 0, 4 + len(body)) + body


def init_packet(*, source_port: int, destination_port: int, tag: int) -> bytes:
    """An SCTP packet with one INIT chunk: verification tag 0 (required for INIT), our
    ``tag`` as the initiate tag, one stream each way."""
    body = _INIT_BODY.pack(tag, 65535, 1, 1, tag)
    return _seal(_HEADER.pack(source_port, destination_port, 0, 0) + _chunk(INIT, body))


def init_ack_packet(*, source_port: int, destination_port: int, peer_tag: int, tag: int) -> bytes:
    """The answer to an INIT: verification tag = the INIT's initiate tag, with a (dummy)
    state cookie, the one mandatory parameter."""
    cookie = struct.pack("!HH", _STATE_COOKIE, 12) + struct.pack("!Q", tag)
    body = _INIT_BODY.pack(tag, 65535, 1, 1, tag) + cookie
    return _seal(_HEADER.pack(source_port, destination_port, peer_tag, 0) + _chunk(INIT_ACK, body))


@dataclass(frozen=True, slots=True)
class Packet:
    """The parts of an INIT or INIT ACK the lab looks at."""

    source_port: int
    destination_port: int
    verification_tag: int
    chunk: int
    initiate_tag: int


def parse(packet: bytes) -> Packet | None:
    """The first chunk of an SCTP packet if it is an INIT or INIT ACK with a correct
    checksum; None for anything else."""
    if len(packet) < _HEADER.size + 4 + _INIT_BODY.size:
        return None
    source, destination, vtag, _ = _HEADER.unpack_from(packet)
    if struct.unpack_from("<I", packet, 8)[0] != crc32c(packet[:8] + b"\0\0\0\0" + packet[12:]):
        return None
    kind = packet[12]
    if kind not in (INIT, INIT_ACK):
        return None
    initiate_tag = _INIT_BODY.unpack_from(packet, 16)[0]
    return Packet(source, destination, vtag, kind, initiate_tag)


def strip_ipv4_header(datagram: bytes) -> bytes:
    """IPv4 raw sockets deliver the IP header too (IPv6 ones do not)."""
    return datagram[(datagram[0] & 0x0F) * 4 :] if datagram else datagram
