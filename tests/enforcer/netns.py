"""A minimal routed "node" for kernel tests: a node namespace forwarding between two pod
namespaces over veth pairs, plus TCP servers and clients that run inside the namespaces.

Names carry a prefix unique to the test run, so parallel runs and leftovers never collide;
:meth:`Node.close` removes every namespace (and with it every link, table and conntrack
entry inside) even when the test failed. Sockets are created by threads that joined the
namespace (a network namespace is per thread, and a socket keeps the namespace it was
created in), so probing costs no process start.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import itertools
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from policyctl.enforcer.backend import LibnftablesBackend
from tests import builders

T = TypeVar("T")

_CLONE_NEWNET = 0x40000000
_counter = itertools.count()


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def unique_prefix() -> str:
    return f"pe{os.getpid() % 100000}x{next(_counter)}"


def _join(name: str) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        os.close(fd)


class Namespace:
    """A named network namespace with a worker thread inside it."""

    def __init__(self, name: str) -> None:
        self.name = name
        run("ip", "netns", "add", name)
        self._worker = concurrent.futures.ThreadPoolExecutor(1, initializer=_join, initargs=(name,))

    def call(self, fn: Callable[[], T]) -> T:
        return self._worker.submit(fn).result()

    def exec(self, *args: str) -> str:
        return run("ip", "netns", "exec", self.name, *args)

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)


@dataclass
class EchoServer:
    """Accepts TCP connections and echoes what it receives, until closed."""

    listener: socket.socket
    connections: list[socket.socket] = field(default_factory=list)
    _stopped: threading.Event = field(default_factory=threading.Event)

    def serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        try:
            while data := conn.recv(4096):
                conn.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self._stopped.set()
        for conn in self.connections:
            conn.close()
        self.listener.close()


class Node:
    """Namespaces ``node`` (forwarding), ``a`` and ``b`` (pods): a = 10.77.1.2, b =
    10.77.2.2, each on its own veth to the node, with default routes through it."""

    A_IP = "10.77.1.2"
    B_IP = "10.77.2.2"

    def __init__(self) -> None:
        prefix = unique_prefix()
        self.namespaces: list[Namespace] = []
        self.servers: list[EchoServer] = []
        try:
            self.node = self._add(f"{prefix}-node")
            self.a = self._add(f"{prefix}-a")
            self.b = self._add(f"{prefix}-b")
            self.node.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
            for pod, link, subnet in ((self.a, "va", "10.77.1"), (self.b, "vb", "10.77.2")):
                run("ip", "-n", self.node.name, "link", "add", link, "type", "veth",
                    "peer", "name", "eth0", "netns", pod.name)
                run("ip", "-n", self.node.name, "addr", "add", f"{subnet}.1/24", "dev", link)
                run("ip", "-n", self.node.name, "link", "set", link, "up")
                run("ip", "-n", pod.name, "addr", "add", f"{subnet}.2/24", "dev", "eth0")
                run("ip", "-n", pod.name, "link", "set", "eth0", "up")
                run("ip", "-n", pod.name, "link", "set", "lo", "up")
                run("ip", "-n", pod.name, "route", "add", "default", "via", f"{subnet}.1")
        except BaseException:
            self.close()
            raise

    def _add(self, name: str) -> Namespace:
        ns = Namespace(name)
        self.namespaces.append(ns)
        return ns

    def serve(self, pod: Namespace, port: int) -> EchoServer:
        def listen() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
            s.listen(64)
            return s

        server = EchoServer(pod.call(listen))
        self.servers.append(server)
        threading.Thread(target=server.serve, daemon=True).start()
        return server

    def open(self, pod: Namespace, address: str, port: int, *, timeout: float = 1.0) -> socket.socket | None:
        """A connected socket from ``pod``, or None when the connect did not complete."""
        sock = pod.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
        except OSError:
            sock.close()
            return None
        return sock

    def connects(self, pod: Namespace, address: str, port: int, *, timeout: float = 1.0) -> bool:
        sock = self.open(pod, address, port, timeout=timeout)
        if sock is None:
            return False
        sock.close()
        return True

    def close(self) -> None:
        for server in self.servers:
            server.close()
        for ns in reversed(self.namespaces):
            ns.close()
        self.namespaces.clear()


def echoes(sock: socket.socket, payload: bytes = b"ping", *, timeout: float = 1.0) -> bool:
    """Whether a round trip over an open connection still works."""
    sock.settimeout(timeout)
    try:
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = sock.recv(len(payload) - len(received))
            if not chunk:
                return False
            received += chunk
        return received == payload
    except OSError:
        return False


def netns_supported() -> str | None:
    """None when kernel tests can run here, else why not."""
    if os.geteuid() != 0:
        return "kernel tests need root (network namespaces and nftables)"
    probe = f"{unique_prefix()}-probe"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"cannot create a network namespace: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


@contextlib.contextmanager
def backend_in_a_node(*documents: Mapping[str, Any]) -> Iterator[LibnftablesBackend]:
    """A libnftables backend in the namespace of a fresh :class:`Node`, ``documents`` run in
    it; skips the test where namespaces cannot be made (for module-scoped fixtures)."""
    reason = netns_supported()
    if reason is not None:
        pytest.skip(reason)
    node = Node()
    try:
        backend = LibnftablesBackend(netns=node.node.name)
        try:
            for document in documents:
                backend.run(dict(document))
            yield backend
        finally:
            backend.close()
    finally:
        node.close()


CLUSTER_OBJECTS = (
    builders.node("node-1", "10.77.1.1"),
    builders.pod("x/a", {"pod": "a"}, node="node-1", ips=[Node.A_IP]),
    builders.pod("x/b", {"pod": "b"}, node="node-1", ips=[Node.B_IP]),
)
"""The cluster objects that stand for :class:`Node` and its pods ``a`` and ``b``, for
compiling the ruleset the node enforces."""
