"""What runs in each lab pod: a TCP listener, a UDP echo server and an SCTP observer per port.

One :class:`PodServers` serves every pod from a single thread: sockets are opened inside each
pod's namespace (``netns.inside``) and then served from one selector, so a lab of dozens of pods
costs one thread, not a process per pod. ``lab up`` runs the same class in a small daemon
(``python -m policyctl.lab.servers STATE``) started inside the lab's underlay namespace, so
``lab down`` (and ``lab down --all`` after a crash) finds it by namespace and stops it.

* TCP: a listener on the wildcard address; a connection is accepted and closed at once (the
  probe only needs the handshake).
* UDP: every datagram is sent back unchanged to its sender.
* SCTP: when the kernel has SCTP sockets the lab could listen with them; this kernel has none,
  so a raw socket for protocol 132 sees every SCTP packet reaching the pod, records each INIT
  to a served port, and answers it with an INIT ACK (``lab.sctp``). The pod's address is the
  only one in its namespace, so what arrives there arrived for that pod.

Sockets use ``SO_REUSEPORT`` so a one-off probe (``lab probe``) can serve a port next to the
daemon.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import random
import selectors
import signal
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from policyctl.lab import sctp
from policyctl.lab.netns import inside
from policyctl.lab.topology import PodPlan
from policyctl.policy.model import Family, Protocol

_AF = {Family.IPV4: socket.AF_INET, Family.IPV6: socket.AF_INET6}
_WILDCARD = {Family.IPV4: "0.0.0.0", Family.IPV6: "::"}


@dataclass(frozen=True, slots=True)
class SeenInit:
    """An SCTP INIT that reached a pod: the observer's evidence."""

    netns: str
    source: str
    destination_port: int
    tag: int


def _listener(family: Family, protocol: Protocol, port: int, address: str | None) -> socket.socket:
    kind = socket.SOCK_STREAM if protocol is Protocol.TCP else socket.SOCK_DGRAM
    sock = socket.socket(_AF[family], kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family is Family.IPV6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((address or _WILDCARD[family], port))
    if protocol is Protocol.TCP:
        sock.listen(128)
    sock.setblocking(False)
    return sock


class PodServers:
    """Serves ports in pod namespaces until :meth:`close`. Thread-safe: ``serve`` and
    ``forget`` may be called while the loop runs."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._sockets: dict[str, list[socket.socket]] = {}
        self._served: dict[str, set[tuple[Family, Protocol, int]]] = {}
        self._sctp_ports: dict[str, set[int]] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stopping = False
        self.seen_inits: deque[SeenInit] = deque(maxlen=10000)
        self._thread = threading.Thread(target=self._loop, name="lab-servers", daemon=True)
        self._thread.start()

    def serve(
        self,
        netns: str,
        *,
        families: Iterable[Family],
        endpoints: Iterable[tuple[Protocol, int]],
        addresses: Mapping[Family, str] | None = None,
    ) -> None:
        """Make the pod in ``netns`` serve each (protocol, port) on each family; what it
        already serves is left alone. ``addresses`` binds to the pod's own address instead
        of the wildcard: a hostNetwork pod shares its node's namespace, where a wildcard UDP or
        raw socket would answer from whichever node address routing picks, not the one the
        client asked."""
        bound = addresses or {}
        wanted = {(f, p, n) for f in families for p, n in endpoints}
        with self._lock:
            missing = sorted(wanted - self._served.setdefault(netns, set()))
            if not missing:
                return
            opened: list[tuple[socket.socket, Callable[[socket.socket], None]]] = []
            with inside(netns):
                for family, protocol, port in missing:
                    if protocol is Protocol.SCTP:
                        self._sctp_ports.setdefault(netns, set()).add(port)
                        if not any(f is family and p is Protocol.SCTP for f, p, _ in self._served[netns]):
                            raw = socket.socket(_AF[family], socket.SOCK_RAW, sctp.IPPROTO_SCTP)
                            raw.setblocking(False)
                            if family in bound:
                                raw.bind((bound[family], 0))
                            opened.append((raw, self._sctp_handler(netns, family)))
                    elif protocol is Protocol.TCP:
                        opened.append((_listener(family, protocol, port, bound.get(family)), _accept))
                    else:
                        opened.append((_listener(family, protocol, port, bound.get(family)), _echo))
                    self._served[netns].add((family, protocol, port))
            for sock, handler in opened:
                self._sockets.setdefault(netns, []).append(sock)
                self._selector.register(sock, selectors.EVENT_READ, handler)
        self._wake_w.send(b"\0")

    def forget(self, netns: str) -> None:
        """Stop serving a pod (before its namespace is deleted)."""
        with self._lock:
            for sock in self._sockets.pop(netns, []):
                self._selector.unregister(sock)
                sock.close()
            self._served.pop(netns, None)
            self._sctp_ports.pop(netns, None)

    def close(self) -> None:
        self._stopping = True
        self._wake_w.send(b"\0")
        self._thread.join(timeout=5)
        with self._lock:
            for name in list(self._sockets):
                for sock in self._sockets.pop(name):
                    sock.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _sctp_handler(self, netns: str, family: Family) -> Callable[[socket.socket], None]:
        def handle(sock: socket.socket) -> None:
            data, address = sock.recvfrom(65535)
            if family is Family.IPV4:
                data = sctp.strip_ipv4_header(data)
            packet = sctp.parse(data)
            if packet is None or packet.chunk != sctp.INIT:
                return
            if packet.destination_port not in self._sctp_ports.get(netns, ()):
                return
            self.seen_inits.append(SeenInit(netns, address[0], packet.destination_port, packet.initiate_tag))
            answer = sctp.init_ack_packet(
                source_port=packet.destination_port,
                destination_port=packet.source_port,
                peer_tag=packet.initiate_tag,
                tag=random.getrandbits(32) or 1,
            )
            sock.sendto(answer, (address[0], 0))

        return handle

    def _loop(self) -> None:
        while not self._stopping:
            events = self._selector.select(timeout=0.5)
            for key, _ in events:
                if key.data is None:
                    try:
                        self._wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                    continue
                with self._lock:
                    sock = key.fileobj
                    if isinstance(sock, int) or sock.fileno() == -1:
                        continue
                    try:
                        key.data(sock)
                    except OSError as error:
                        if error.errno not in (errno.EAGAIN, errno.ECONNREFUSED, errno.ECONNRESET):
                            raise


def own_addresses(pod: PodPlan) -> dict[Family, str] | None:
    """What a pod's servers bind to: its addresses when it shares its node's namespace
    (hostNetwork), else None (the wildcard: the pod's one address per family)."""
    if not pod.host_network:
        return None
    return {Family.of(ipaddress.ip_interface(a).ip): str(ipaddress.ip_interface(a).ip) for a in pod.addresses}


def pod_families(addresses: Iterable[str]) -> tuple[Family, ...]:
    """The families a pod has addresses in (``10.0.0.1/24`` style)."""
    return tuple(sorted({Family.of(ipaddress.ip_interface(a).ip) for a in addresses}))


def _accept(sock: socket.socket) -> None:
    conn, _ = sock.accept()
    conn.close()


def _echo(sock: socket.socket) -> None:
    data, address = sock.recvfrom(65535)
    sock.sendto(data, address)


def main(argv: list[str]) -> int:
    """``python -m policyctl.lab.servers STATE_DIR``: serve the lab described there until
    SIGTERM."""
    from pathlib import Path

    from policyctl.lab.state import load_state

    state = load_state(argv[0])
    if state.plan is None:
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    servers = PodServers()
    for pod in state.plan.pods:
        servers.serve(pod.netns, families=pod_families(pod.addresses), endpoints=state.endpoints,
                      addresses=own_addresses(pod))
    (Path(argv[0]) / "servers.ready").write_text(f"{os.getpid()}\n")
    stop.wait()
    servers.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
