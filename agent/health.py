"""Readiness and liveness of the agent, and the small HTTP server kubelet probes.

* **Ready** (``/readyz``) when every reflector has completed its initial list *and* the first
  ruleset built from those caches is in the kernel. A DaemonSet rolling update waits for it,
  so a new agent never takes over a node before it enforces the current policy.
* **Alive** (``/healthz``) while the sync loop turns: its heartbeat is fresh and the last
  sync attempt is not older than the runner's max interval plus a grace period. It does not
  look at the API server: a control-plane upgrade must not make kubelet restart every agent
  (the rules stay in force without us anyway).

The decisions are pure functions of a :class:`HealthState` and the time (:func:`readiness`,
:func:`liveness`), each returning the reasons it is not OK, which the endpoints print. The
server binds 127.0.0.1 only: with hostNetwork, anything else would expose it to the network.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class HealthState:
    """What readiness and liveness are decided from. Times are on the runner's monotonic
    clock; ``first_sync_at`` is when the first sync from synced caches succeeded."""

    synced: Mapping[str, bool] = field(default_factory=dict)
    first_sync_at: float | None = None
    heartbeat: float | None = None
    last_attempt: float | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reasons: tuple[str, ...] = ()

    def text(self) -> str:
        return "ok\n" if self.ok else "".join(f"{r}\n" for r in self.reasons)


def readiness(state: HealthState) -> Verdict:
    """Ready once every cache has listed and the first ruleset was applied."""
    reasons = [f"cache {name} has not synced" for name, ok in sorted(state.synced.items()) if not ok]
    if not state.synced:
        reasons.append("no cache is watched yet")
    if state.first_sync_at is None:
        reasons.append("the first ruleset has not been applied")
    return Verdict(not reasons, tuple(reasons))


def liveness(state: HealthState, now: float, *, heartbeat_timeout: float, attempt_timeout: float) -> Verdict:
    """Alive while the loop's heartbeat is younger than ``heartbeat_timeout`` and, once a
    sync has been attempted, the last attempt is younger than ``attempt_timeout`` (the
    runner's max interval plus grace: a sync that hangs in the kernel shows here). Before
    the first heartbeat the agent is starting, which the startup probe covers."""
    reasons = []
    if state.heartbeat is not None and now - state.heartbeat > heartbeat_timeout:
        reasons.append(f"the sync loop has not turned for {now - state.heartbeat:.1f}s (limit {heartbeat_timeout:.1f}s)")
    if state.last_attempt is not None and now - state.last_attempt > attempt_timeout:
        reasons.append(f"no sync attempted for {now - state.last_attempt:.1f}s (limit {attempt_timeout:.1f}s)")
    return Verdict(not reasons, tuple(reasons))


Check = Callable[[], Verdict]


class HealthServer:
    """``GET /healthz`` (liveness) and ``GET /readyz`` (readiness): 200 ``ok`` or 503 with
    the reasons, one per line. Runs in a daemon thread; ``close`` stops it."""

    def __init__(self, *, live: Check, ready: Check, port: int, address: str = "127.0.0.1") -> None:
        routes: dict[str, Check] = {"/healthz": live, "/livez": live, "/readyz": ready}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                check = routes.get(self.path.split("?", 1)[0])
                if check is None:
                    self.send_error(404)
                    return
                verdict = check()
                body = verdict.text().encode()
                self.send_response(200 if verdict.ok else 503)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Probes every few seconds are not news; the agent's logs stay about policy."""

        self._server = http.server.ThreadingHTTPServer((address, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
