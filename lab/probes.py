"""Real packets between lab pods: does a new connection get through?

All attempts of one probe run at once from one thread: each socket is opened in its source
pod's namespace (``netns.inside``), then every socket waits on one selector until it answers or
the deadline passes. Denied means no answer before the deadline (a drop) or an error (a
reject); a ruleset that lets the first packet through but drops the reply also reads as denied,
as it would for a real client.

Short waits keep a probe of many denied pairs fast, and retries keep a busy machine from
turning an allowed pair into a denied one: every attempt that failed is tried again, with a
new connection and a wait :data:`RETRY_FACTOR` times longer, ``retries`` times, before it is
reported denied. An answer is never retried away: allowed after any round is allowed. The
selector is read once more after each deadline, so a prober that was not scheduled in time
still sees the answers that arrived.

Methods, named in every observation:

* ``tcp-connect``: a non-blocking connect; allowed when the handshake completes.
* ``udp-echo``: a datagram with a random token, resent every 200 ms; allowed when the token
  comes back from the destination.
* ``sctp-raw-init``: an INIT chunk with a random initiate tag from a raw socket, resent every
  200 ms; allowed when the destination's observer answers it with an INIT ACK carrying that
  tag (``lab.servers``), which it does only for an INIT it saw arrive.
"""

from __future__ import annotations

import errno
import ipaddress
import random
import selectors
import socket
import time
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from policyctl.lab import sctp
from policyctl.lab.netns import inside
from policyctl.policy.model import Family, IPAddress, Protocol

METHODS = {Protocol.TCP: "tcp-connect", Protocol.UDP: "udp-echo", Protocol.SCTP: "sctp-raw-init"}
DEFAULT_TIMEOUT = 0.3
DEFAULT_RETRIES = 2
"""Waits of 0.3, 0.9 and 2.7 s: an allowed pair reads as denied only if the machine stalls
for about 4 s; a denied pair costs that long, once per probe (pairs run concurrently)."""
RETRY_FACTOR = 3.0
_RESEND = 0.1
_AF = {Family.IPV4: socket.AF_INET, Family.IPV6: socket.AF_INET6}


@dataclass(frozen=True, slots=True)
class Attempt:
    """One connection to try: from the pod in ``source_netns`` to ``destination``."""

    key: Hashable
    source_netns: str
    destination: IPAddress


@dataclass(slots=True)
class _Pending:
    attempt: Attempt
    sock: socket.socket
    token: bytes = b""
    tag: int = 0
    source_port: int = 0
    sent: float = 0.0


def method(protocol: Protocol) -> str:
    return METHODS[protocol]


def run_probes(
    attempts: Sequence[Attempt],
    *,
    protocol: Protocol,
    port: int,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
) -> dict[Hashable, bool]:
    """Try every attempt concurrently; key -> whether the connection got through. Failed
    attempts are retried ``retries`` times, each round waiting :data:`RETRY_FACTOR` times
    longer than the one before."""
    once = {Protocol.TCP: _tcp, Protocol.UDP: _udp, Protocol.SCTP: _sctp}[protocol]
    result = {a.key: False for a in attempts}
    pending = list(attempts)
    wait = timeout
    for _ in range(retries + 1):
        answered = once(pending, port=port, timeout=wait)
        result.update({k: True for k, ok in answered.items() if ok})
        pending = [a for a in pending if not answered[a.key]]
        if not pending:
            break
        wait *= RETRY_FACTOR
    return result


def round_waits(total: float, retries: int = DEFAULT_RETRIES) -> tuple[float, ...]:
    """The wait of each round when the whole probe may wait ``total`` seconds: the rounds keep
    their :data:`RETRY_FACTOR` ratio and add up to ``total``, so a denied pair (which waits
    through every round) is answered after ``total``, as a command's ``--timeout`` promises."""
    weights = [RETRY_FACTOR**i for i in range(retries + 1)]
    return tuple(total * w / sum(weights) for w in weights)


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


def _by_source(attempts: Iterable[Attempt]) -> dict[str, list[Attempt]]:
    groups: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        groups.setdefault(attempt.source_netns, []).append(attempt)
    return groups


def _family(address: IPAddress) -> Family:
    return Family.of(address)


def _tcp(attempts: Sequence[Attempt], *, port: int, timeout: float) -> dict[Hashable, bool]:
    result = {a.key: False for a in attempts}
    selector = selectors.DefaultSelector()
    sockets: list[socket.socket] = []
    try:
        for netns, group in sorted(_by_source(attempts).items()):
            with inside(netns):
                for attempt in group:
                    sock = socket.socket(_AF[_family(attempt.destination)], socket.SOCK_STREAM)
                    sockets.append(sock)
                    sock.setblocking(False)
                    code = sock.connect_ex((str(attempt.destination), port))
                    if code in (0, errno.EINPROGRESS):
                        selector.register(sock, selectors.EVENT_WRITE, _Pending(attempt, sock))
        deadline = time.monotonic() + timeout
        while selector.get_map():
            left = _remaining(deadline)
            for key, _ in selector.select(timeout=left):
                sock = key.data.sock
                result[key.data.attempt.key] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                selector.unregister(sock)
            if left == 0:
                break
    finally:
        selector.close()
        for sock in sockets:
            sock.close()
    return result


def _udp(attempts: Sequence[Attempt], *, port: int, timeout: float) -> dict[Hashable, bool]:
    result = {a.key: False for a in attempts}
    selector = selectors.DefaultSelector()
    pending: list[_Pending] = []
    try:
        for netns, group in sorted(_by_source(attempts).items()):
            with inside(netns):
                for attempt in group:
                    sock = socket.socket(_AF[_family(attempt.destination)], socket.SOCK_DGRAM)
                    sock.setblocking(False)
                    sock.connect((str(attempt.destination), port))
                    item = _Pending(attempt, sock, token=random.randbytes(16))
                    pending.append(item)
                    selector.register(sock, selectors.EVENT_READ, item)
        deadline = time.monotonic() + timeout
        last_look = False
        while selector.get_map() and not last_look:
            now = time.monotonic()
            last_look = now >= deadline
            for item in pending:
                if not last_look and result[item.attempt.key] is False and now - item.sent >= _RESEND:
                    try:
                        item.sock.send(item.token)
                    except OSError:
                        pass
                    item.sent = now
            for key, _ in selector.select(timeout=min(_RESEND, max(deadline - now, 0))):
                item = key.data
                try:
                    data = item.sock.recv(65535)
                except OSError:
                    continue
                if data == item.token:
                    result[item.attempt.key] = True
                    selector.unregister(item.sock)
    finally:
        selector.close()
        for item in pending:
            item.sock.close()
    return result


def _sctp(attempts: Sequence[Attempt], *, port: int, timeout: float) -> dict[Hashable, bool]:
    result = {a.key: False for a in attempts}
    selector = selectors.DefaultSelector()
    raws: dict[tuple[str, Family], socket.socket] = {}
    waiting: dict[tuple[str, Family, str, int, int], _Pending] = {}
    items: list[_Pending] = []
    try:
        for netns, group in sorted(_by_source(attempts).items()):
            with inside(netns):
                for attempt in group:
                    family = _family(attempt.destination)
                    if (netns, family) not in raws:
                        raw = socket.socket(_AF[family], socket.SOCK_RAW, sctp.IPPROTO_SCTP)
                        raw.setblocking(False)
                        raws[(netns, family)] = raw
                        selector.register(raw, selectors.EVENT_READ, (netns, family))
                    item = _Pending(
                        attempt,
                        raws[(netns, family)],
                        tag=random.getrandbits(32) or 1,
                        source_port=random.randint(20000, 60000),
                    )
                    items.append(item)
                    waiting[(netns, family, str(attempt.destination), item.source_port, item.tag)] = item
        deadline = time.monotonic() + timeout
        last_look = False
        while waiting and not last_look:
            now = time.monotonic()
            last_look = now >= deadline
            for item in list(waiting.values()):
                if not last_look and now - item.sent >= _RESEND:
                    init = sctp.init_packet(source_port=item.source_port, destination_port=port, tag=item.tag)
                    try:
                        item.sock.sendto(init, (str(item.attempt.destination), 0))
                    except OSError:
                        pass
                    item.sent = now
            for key, _ in selector.select(timeout=min(_RESEND, max(deadline - now, 0))):
                netns, family = key.data
                try:
                    data, address = key.fileobj.recvfrom(65535)  # type: ignore[union-attr]
                except OSError:
                    continue
                if family is Family.IPV4:
                    data = sctp.strip_ipv4_header(data)
                packet = sctp.parse(data)
                if packet is None or packet.chunk != sctp.INIT_ACK or packet.source_port != port:
                    continue
                source = str(ipaddress.ip_address(address[0].split("%")[0]))
                found = waiting.pop((netns, family, source, packet.destination_port, packet.verification_tag), None)
                if found is not None:
                    result[found.attempt.key] = True
    finally:
        selector.close()
        for raw in raws.values():
            raw.close()
    return result


def pairs_matrix(result: Mapping[Hashable, bool], keys: Sequence[str]) -> dict[str, dict[str, bool]]:
    """``{(src, dst): bool}`` -> ``{src: {dst: bool}}`` over every ordered pair of ``keys``
    (missing pairs are False: no address in the family means no connection)."""
    return {s: {d: bool(result.get((s, d), False)) for d in keys} for s in keys}
