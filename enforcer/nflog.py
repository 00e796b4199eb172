"""Read the packets an NFLOG group receives: the kernel's side of ``log group N``.

nftables hands a logged packet to ``nfnetlink_log`` (``NETLINK_NETFILTER``, subsystem
``NFNL_SUBSYS_ULOG``): a listener binds to a group with ``NFULNL_MSG_CONFIG`` and then receives
one ``NFULNL_MSG_PACKET`` per logged packet, with the rule's prefix (``NFULA_PREFIX``), the
first bytes of the packet from its network header (``NFULA_PAYLOAD``) and, when the packet has
one, a timestamp. pyroute2 has no nfnetlink_log support, so this module speaks the few
messages it needs itself (``include/uapi/linux/netfilter/nfnetlink_log.h``):

* bind: ``NFULA_CFG_CMD`` = ``NFULNL_CFG_CMD_BIND`` for the group;
* copy mode: ``NFULA_CFG_MODE`` = ``NFULNL_COPY_PACKET`` with a small range (the IP and
  transport headers are all a drop needs);
* queue threshold 1 and flush timeout 0, so each packet is sent at once rather than batched
  for up to a second (the kernel's default is 100 packets or 1 s).

Only one socket per network namespace may bind a group (the kernel answers the second bind
with ``EPERM``), which :class:`GroupInUse` reports. Netlink is per network namespace: with ``netns`` the socket is
opened from a thread that joined ``/run/netns/NAME``, and it stays in that namespace.

Parsing (:func:`parse_messages`) is pure and tested on bytes; :class:`NflogReader` is the I/O.
A receive buffer that overflows (``ENOBUFS``: packets were logged faster than they were read)
is counted in :attr:`NflogReader.overruns`, never silently ignored.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

from policyctl.enforcer.backend import _join_netns
from policyctl.enforcer.errors import EnforcerError
from policyctl.enforcer.nfmessages import attr, attributes_by_type

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET = 0
NFULNL_MSG_CONFIG = 1
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NFULA_CFG_CMD = 1
NFULA_CFG_MODE = 2
NFULA_CFG_TIMEOUT = 4
NFULA_CFG_QTHRESH = 5
NFULNL_CFG_CMD_BIND = 1
NFULNL_CFG_CMD_UNBIND = 2
NFULNL_COPY_PACKET = 2

NFULA_PACKET_HDR = 1
NFULA_TIMESTAMP = 3
NFULA_IFINDEX_INDEV = 4
NFULA_IFINDEX_OUTDEV = 5
NFULA_PAYLOAD = 9
NFULA_PREFIX = 10

NFPROTO_IPV4 = 2
NFPROTO_IPV6 = 10

#: Enough for an IPv6 header, a few extension headers and the transport ports.
DEFAULT_COPY_RANGE = 256
_NLMSG_HEADER = struct.Struct("=IHHII")
_NFGENMSG = struct.Struct("=BBH")


class NflogError(EnforcerError):
    """The NFLOG group could not be bound or read."""


class GroupInUse(NflogError):
    """Another socket of this network namespace already listens on the group."""


@dataclass(frozen=True, slots=True)
class LoggedPacket:
    """One packet a ``log group`` rule handed over: the rule's ``prefix``, the packet's
    ``family`` (``NFPROTO_IPV4``/``NFPROTO_IPV6``), its first bytes from the network header,
    the netfilter ``hook`` number, and the kernel's timestamp (Unix seconds) when the packet
    carried one, else None."""

    prefix: str
    family: int
    payload: bytes
    hook: int | None = None
    timestamp: float | None = None
    indev: int | None = None
    outdev: int | None = None


def _align(length: int) -> int:
    return (length + 3) & ~3


def config_message(group: int, attributes: bytes, *, seq: int, family: int = socket.AF_UNSPEC) -> bytes:
    """One ``NFULNL_MSG_CONFIG`` request for ``group``, asking for an acknowledgement."""
    body = _NFGENMSG.pack(family, 0, socket.htons(group)) + attributes
    kind = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
    return _NLMSG_HEADER.pack(_NLMSG_HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def bind_messages(group: int, *, copy_range: int = DEFAULT_COPY_RANGE) -> tuple[bytes, ...]:
    """Bind, copy ``copy_range`` bytes of each packet, and deliver each packet at once."""
    return (
        config_message(group, attr(NFULA_CFG_CMD, bytes([NFULNL_CFG_CMD_BIND])), seq=1),
        config_message(group, attr(NFULA_CFG_MODE, struct.pack(">IBx", copy_range, NFULNL_COPY_PACKET)), seq=2),
        config_message(group, attr(NFULA_CFG_QTHRESH, struct.pack(">I", 1)), seq=3),
        config_message(group, attr(NFULA_CFG_TIMEOUT, struct.pack(">I", 0)), seq=4),
    )


def _packet(family: int, data: bytes) -> LoggedPacket:
    attributes = attributes_by_type(data)
    prefix = attributes.get(NFULA_PREFIX, b"").split(b"\0", 1)[0].decode(errors="replace")
    hook = attributes[NFULA_PACKET_HDR][2] if len(attributes.get(NFULA_PACKET_HDR, b"")) >= 3 else None
    stamp = attributes.get(NFULA_TIMESTAMP)
    timestamp = None
    if stamp is not None and len(stamp) >= 16:
        seconds, micros = struct.unpack(">QQ", stamp[:16])
        timestamp = seconds + micros / 1e6

    def index(kind: int) -> int | None:
        value = attributes.get(kind)
        return struct.unpack(">I", value[:4])[0] if value is not None and len(value) >= 4 else None

    return LoggedPacket(prefix, family, attributes.get(NFULA_PAYLOAD, b""), hook, timestamp,
                        index(NFULA_IFINDEX_INDEV), index(NFULA_IFINDEX_OUTDEV))


@dataclass(frozen=True, slots=True)
class Parsed:
    """What one read held: the packets, the errors the kernel answered (``(seq, errno)``,
    errno 0 is an acknowledgement) and whether the kernel reported lost messages."""

    packets: tuple[LoggedPacket, ...] = ()
    errors: tuple[tuple[int, int], ...] = ()
    overrun: bool = False


def parse_messages(data: bytes) -> Parsed:
    """Split one netlink datagram into its messages."""
    packets: list[LoggedPacket] = []
    errors: list[tuple[int, int]] = []
    overrun = False
    offset = 0
    packet_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET
    while offset + _NLMSG_HEADER.size <= len(data):
        length, kind, _flags, seq, _pid = _NLMSG_HEADER.unpack_from(data, offset)
        if length < _NLMSG_HEADER.size or offset + length > len(data):
            break
        body = data[offset + _NLMSG_HEADER.size: offset + length]
        if kind == NLMSG_ERROR and len(body) >= 4:
            errors.append((seq, -struct.unpack("=i", body[:4])[0]))
        elif kind == NLMSG_OVERRUN:
            overrun = True
        elif kind == packet_type and len(body) >= _NFGENMSG.size:
            family = body[0]
            packets.append(_packet(family, body[_NFGENMSG.size:]))
        offset += _align(length)
    return Parsed(tuple(packets), tuple(errors), overrun)


def _open_socket() -> socket.socket:
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)


def _open_in(netns: str) -> socket.socket:
    """A netlink socket of ``/run/netns/NAME``: opened by a thread that joined it, since
    setns(2) moves only the calling thread."""
    opened: list[socket.socket] = []
    failed: list[BaseException] = []

    def body() -> None:
        try:
            _join_netns(netns)
            opened.append(_open_socket())
        except BaseException as error:
            failed.append(error)

    worker = threading.Thread(target=body, name=f"nflog-open-{netns}")
    worker.start()
    worker.join()
    if failed:
        raise NflogError(f"cannot open a netlink socket in network namespace {netns}: {failed[0]}")
    return opened[0]


class NflogReader:
    """Listens on NFLOG ``group`` (in ``netns``, or this process's namespace); :meth:`read`
    returns what arrived. Close it to release the group."""

    def __init__(self, group: int, *, netns: str | None = None, copy_range: int = DEFAULT_COPY_RANGE,
                 receive_buffer: int = 1 << 20) -> None:
        if not 0 <= group <= 65535:
            raise NflogError(f"an NFLOG group is 0-65535 (got {group})")
        self.group = group
        self.netns = netns
        self.overruns = 0
        """Times the kernel dropped log messages because this socket's buffer was full."""
        try:
            self._socket = _open_in(netns) if netns is not None else _open_socket()
        except OSError as error:
            raise NflogError(f"cannot open a netlink socket for NFLOG: {error}") from None
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            self._socket.bind((0, 0))
            for message in bind_messages(group, copy_range=copy_range):
                self._request(message)
        except BaseException:
            self._socket.close()
            raise

    def _request(self, message: bytes) -> None:
        seq = _NLMSG_HEADER.unpack_from(message)[3]
        self._socket.send(message)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._socket], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            parsed = parse_messages(self._socket.recv(65536))
            for answered, code in parsed.errors:
                if answered != seq:
                    continue
                if code in (errno.EBUSY, errno.EPERM) and seq == 1:
                    raise GroupInUse(f"NFLOG group {self.group} is already read by another listener here "
                                     "(is the agent running with this group? ask it instead: --agent)")
                if code:
                    raise NflogError(f"binding NFLOG group {self.group}: {os.strerror(code)}")
                return
        raise NflogError(f"binding NFLOG group {self.group}: the kernel did not answer")

    def fileno(self) -> int:
        return self._socket.fileno()

    def read(self, timeout: float | None) -> tuple[LoggedPacket, ...]:
        """The packets that arrive within ``timeout`` seconds (None: wait for some); empty
        when none did."""
        ready, _, _ = select.select([self._socket], [], [], timeout)
        if not ready:
            return ()
        packets: list[LoggedPacket] = []
        while True:
            try:
                data = self._socket.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError as error:
                if error.errno == errno.ENOBUFS:
                    self.overruns += 1
                    continue
                raise NflogError(f"reading NFLOG group {self.group}: {error}") from None
            parsed = parse_messages(data)
            self.overruns += parsed.overrun
            packets.extend(parsed.packets)
        return tuple(packets)

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> NflogReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
