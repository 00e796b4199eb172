"""The agent's small HTTP servers (health, metrics), bounded whatever their clients do.

The standard library's threading server starts a thread per connection and keeps it as long
as the client keeps the connection: 3,000 idle connections cost 3,000 threads. Here:

* at most ``max_connections`` connections are served at once; one more is closed as soon as it
  is accepted (counted in :attr:`BoundedHTTPServer.rejected`), so threads and memory stay
  bounded;
* every read waits at most ``timeout`` seconds for bytes, and a connection is cut off
  ``lifetime`` seconds after it was accepted, however slowly its client sends: a slow client
  holds a slot for a bounded time;
* one request per connection (HTTP/1.0), no request body is read, and request lines and
  headers are bounded by :mod:`http.server` itself (64 KiB a line, 100 headers);
* an IPv6 ``address`` (it contains ``:``) is served on an IPv6 socket.

Probes and scrapes are short GETs, so the defaults (16 connections, 5 s per read, 10 s per
connection) leave a wide margin for them.
"""

from __future__ import annotations

import http.server
import socket
import socketserver
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """What one server allows: concurrent connections, seconds per read, seconds per
    connection."""

    max_connections: int = 16
    timeout: float = 5.0
    lifetime: float = 10.0

    def validate(self) -> tuple[str, ...]:
        problems = []
        if self.max_connections < 1:
            problems.append(f"max connections must be at least 1 (got {self.max_connections})")
        if self.timeout <= 0:
            problems.append(f"timeout must be positive (got {self.timeout})")
        if self.lifetime < self.timeout:
            problems.append(f"lifetime ({self.lifetime}) must not be shorter than the timeout ({self.timeout})")
        return tuple(problems)


@dataclass(frozen=True, slots=True)
class Reply:
    """One response: status, content type and body."""

    status: int
    content_type: str
    body: bytes


Route = Callable[[], Reply]
QueryRoute = Callable[[Mapping[str, str]], Reply]
"""A route that reads the query string (``?since=12`` -> ``{"since": "12"}``, last value wins)."""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: BoundedHTTPServer

    def setup(self) -> None:
        self.timeout = self.server.limits.timeout  # type: ignore[misc]
        super().setup()

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        path, _, query = self.path.partition("?")
        route = self.server.routes.get(path)
        query_route = self.server.query_routes.get(path)
        if route is None and query_route is None:
            self.send_error(404)
            return
        if query_route is not None:
            reply = query_route({k: v[-1] for k, v in urllib.parse.parse_qs(query).items()})
        else:
            assert route is not None
            reply = route()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        """Probes every few seconds are not news; the agent's logs stay about policy."""


class BoundedHTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """GET ``routes`` (path -> reply) on ``address:port`` (port 0: a free one, in
    :attr:`port`), from a daemon thread, within ``limits``; :meth:`close` stops it."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    """The listen backlog: a burst of connections is accepted (and, past the limit, closed)
    instead of having its SYNs dropped and retried a second later."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        *,
        address: str,
        port: int,
        limits: Limits = Limits(),
        name: str = "http",
        on_reject: Callable[[], None] | None = None,
        query_routes: Mapping[str, QueryRoute] | None = None,
    ) -> None:
        problems = limits.validate()
        if problems:
            raise ValueError("; ".join(problems))
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.routes = dict(routes)
        self.query_routes = dict(query_routes or {})
        self.limits = limits
        self.rejected = 0
        """Connections closed unserved because the server was at its limit."""
        self.served = 0
        """Connections given a slot."""
        self._on_reject = on_reject
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._lock = threading.Lock()
        self._open: dict[socket.socket, float] = {}
        super().__init__((address, port), _Handler)
        self.port: int = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, name=name,
                                        daemon=True)  # fmt: skip
        self._thread.start()

    @property
    def connections(self) -> int:
        """Connections being served now."""
        with self._lock:
            return len(self._open)

    def server_bind(self) -> None:
        """Bind without :func:`socket.getfqdn` (a DNS lookup the server never uses)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = port

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        if not self._slots.acquire(blocking=False):
            self.rejected += 1
            if self._on_reject is not None:
                self._on_reject()
            self.shutdown_request(request)
            return
        with self._lock:
            self._open[request] = time.monotonic() + self.limits.lifetime
            self.served += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def _release(self, request: socket.socket) -> None:
        with self._lock:
            if self._open.pop(request, None) is None:
                return
        self._slots.release()

    def service_actions(self) -> None:
        """Cut off connections past their lifetime (called by ``serve_forever`` between polls)."""
        now = time.monotonic()
        with self._lock:
            expired = [s for s, deadline in self._open.items() if deadline <= now]
        for sock in expired:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up or timed out is no error of the agent's."""

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()
