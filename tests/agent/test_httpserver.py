"""The health and metrics servers stay bounded whatever clients do: idle connections past the
limit are closed at once (threads stay bounded), a slow client is cut off after the
connection's lifetime, and probes are answered again as soon as a slot frees up."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from policyctl.agent.httpserver import BoundedHTTPServer, Limits, Reply
from tests.kubeapi.conftest import wait_until

OK = Reply(200, "text/plain", b"ok\n")


@pytest.fixture
def server() -> Iterator[BoundedHTTPServer]:
    rejected: list[int] = []
    served = BoundedHTTPServer({"/ok": lambda: OK}, address="127.0.0.1", port=0,
                               limits=Limits(max_connections=4, timeout=0.5, lifetime=1.0),
                               on_reject=lambda: rejected.append(1))  # fmt: skip
    yield served
    served.close()


def get(port: int, path: str = "/ok", *, host: str = "127.0.0.1") -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=3) as response:
        return response.status, response.read()


def test_a_probe_is_answered(server: BoundedHTTPServer) -> None:
    assert get(server.port) == (200, b"ok\n")


def test_idle_connections_past_the_limit_are_closed_and_threads_stay_bounded(server: BoundedHTTPServer) -> None:
    threads_before = threading.active_count()
    peak = [0]

    def all_handled() -> bool:
        peak[0] = max(peak[0], threading.active_count() - threads_before)
        assert server.connections <= 4
        return server.rejected + server.served == 200

    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(200)]
    try:
        wait_until(all_handled, what="every connection served or closed")
        assert server.rejected >= 100, "idle connections past the limit were not closed"
        assert peak[0] <= 4, f"{peak[0]} threads for 200 idle connections"
        wait_until(lambda: server.connections == 0, timeout=5, what="idle connections timed out")
        assert get(server.port) == (200, b"ok\n")
    finally:
        for sock in idle:
            sock.close()


def test_a_client_that_sends_a_byte_at_a_time_is_cut_off_after_the_lifetime(server: BoundedHTTPServer) -> None:
    slow = socket.create_connection(("127.0.0.1", server.port))
    started = time.monotonic()
    try:
        request = b"GET /ok HTTP/1.0\r\nX-Slow: " + b"a" * 1000
        for byte in request:
            try:
                slow.send(bytes([byte]))
            except OSError:
                break
            if server.connections == 0:
                break
            time.sleep(0.1)
        assert time.monotonic() - started < 3.0, "the slow client held its slot past the lifetime"
        wait_until(lambda: server.connections == 0, timeout=3, what="the slow connection cut off")
    finally:
        slow.close()


def test_an_ipv6_address_is_served_on_an_ipv6_socket() -> None:
    try:
        served = BoundedHTTPServer({"/ok": lambda: OK}, address="::1", port=0)
    except OSError as error:
        pytest.skip(f"no IPv6 loopback here: {error}")
    try:
        assert get(served.port, host="[::1]") == (200, b"ok\n")
    finally:
        served.close()


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        pytest.param(Limits(max_connections=0), "max connections must be at least 1", id="no-connections"),
        pytest.param(Limits(timeout=0), "timeout must be positive", id="no-timeout"),
        pytest.param(Limits(timeout=5, lifetime=1), "must not be shorter than the timeout",
                     id="lifetime-below-timeout"),
    ],
)
def test_unusable_limits_are_refused(limits: Limits, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        BoundedHTTPServer({}, address="127.0.0.1", port=0, limits=limits)
