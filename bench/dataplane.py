"""Data-plane figures: TCP throughput and new-connection rate between two lab pods.

Two pods of the generated cluster that policy allows to talk (a client and a server on
different nodes) are built as a two-pod lab (``policyctl.lab``), keeping their addresses; their
nodes are then loaded, in turn, with nothing, with the compiler's ruleset for the whole
generated cluster, and with the same policies as a linear rule list (:mod:`bench.linear`).
Traffic is a Python socket loop inside the lab's namespaces only: bulk ``sendall`` for
throughput, connect-and-reset for the connection rate (``SO_LINGER`` 0, so no TIME_WAIT
exhausts the ports). Every namespace is removed when the :class:`PairLab` closes.

Rounds alternate the configurations (none, compiled, linear, none, ...) so drift in what else
the machine is doing lands on all of them alike; the figure is the median of the rounds.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
import threading
import time
from collections.abc import Mapping
from typing import Any

from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.lab import netns
from policyctl.lab.engine import LabEngine
from policyctl.policy.model import Family, Pod, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection

BULK = 256 * 1024
TABLE = "pcbench"


def pick_pair(cluster: Cluster, *, port: int = 5432, limit: int = 2000) -> tuple[Pod, Pod]:
    """A client and a server on different nodes that policy allows on TCP ``port`` (an
    ``api`` pod reaching a ``db`` pod of its namespace, in the generated clusters)."""
    servers = [p for p in cluster.pods if any(c.port == port for c in p.ports)]
    for server in servers[:limit]:
        for client in cluster.pods:
            if client.namespace != server.namespace or client.node == server.node or client is server:
                continue
            if evaluate(cluster, Connection(client, server, Protocol.TCP, port)).allowed:
                return client, server
    raise LookupError(f"no allowed pair across nodes on TCP port {port}")


class PairLab:
    """The two pods as a lab; ``load`` puts a ruleset (or none) on both nodes."""

    def __init__(self, cluster: Cluster, client: Pod, server: Pod) -> None:
        nodes = tuple(n for n in cluster.nodes if n.name in {client.node, server.node})
        small = Cluster(
            namespaces=tuple(n for n in cluster.namespaces if n.name in {client.namespace, server.namespace}),
            pods=(client, server),
            nodes=tuple(dataclasses.replace(n, addresses=()) for n in nodes),
        )
        self.engine = LabEngine(compiler=lambda _c, _n: {"nftables": []}, applier=lambda *_: None,
                                families=(Family.IPV4,))
        try:
            plan = self.engine.reconcile(small).plan
            assert plan is not None
            pods = plan.pod_by_key
            self.client_ns = pods[client.key].netns
            self.server_ns = pods[server.key].netns
            address = pods[server.key].address(Family.IPV4)
            assert address is not None
            self.server_address = str(address)
            self.nodes = {n.name: n.netns for n in plan.nodes}
            self._backends = {name: LibnftablesBackend(netns=ns) for name, ns in self.nodes.items()}
        except BaseException:
            self.engine.close()
            raise

    def load(self, documents: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Replace our table on each node with ``documents[node]`` (None: no table)."""
        for name, backend in sorted(self._backends.items()):
            if backend.list_table("inet", TABLE) is not None:
                backend.run({"nftables": [{"delete": {"table": {"family": "inet", "name": TABLE}}}]})
            document = documents.get(name)
            if document is not None:
                backend.run(dict(document))

    def throughput(self, *, seconds: float, port: int = 5432) -> float:
        """Bytes per second of one TCP stream, client to server."""
        with netns.inside(self.server_ns):
            listener = socket.create_server(("0.0.0.0", port), reuse_port=True)
        received = [0]

        def drain() -> None:
            conn, _ = listener.accept()
            with conn:
                while chunk := conn.recv(BULK):
                    received[0] += len(chunk)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        payload = b"\0" * BULK
        try:
            with netns.inside(self.client_ns):
                client = socket.create_connection((self.server_address, port), timeout=5)
            started = time.perf_counter()
            with client:
                while time.perf_counter() - started < seconds:
                    client.sendall(payload)
                client.shutdown(socket.SHUT_WR)
                reader.join(timeout=10)
            elapsed = time.perf_counter() - started
        finally:
            listener.close()
        return received[0] / elapsed

    def connection_rate(self, *, seconds: float, port: int = 5432) -> float:
        """New TCP connections per second, one at a time (connect, then reset)."""
        with netns.inside(self.server_ns):
            listener = socket.create_server(("0.0.0.0", port), reuse_port=True, backlog=1024)
        stop = threading.Event()

        def accept() -> None:
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except (TimeoutError, OSError):
                    continue
                conn.close()

        acceptor = threading.Thread(target=accept, daemon=True)
        acceptor.start()
        linger = struct.pack("ii", 1, 0)
        count = 0
        try:
            with netns.inside(self.client_ns):
                started = time.perf_counter()
                while time.perf_counter() - started < seconds:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    sock.settimeout(2)
                    sock.connect((self.server_address, port))
                    sock.close()
                    count += 1
                elapsed = time.perf_counter() - started
        finally:
            stop.set()
            acceptor.join(timeout=2)
            listener.close()
        return count / elapsed

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self.engine.close()

    def __enter__(self) -> PairLab:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
