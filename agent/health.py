"""Readiness and liveness of the agent, and the small HTTP server kubelet probes.

* **Ready** (``/readyz``) when every reflector has completed its initial list, none has been
  out of sync with the API server for longer than ``stale_after`` (:meth:`Reflector.stale_seconds
  <policyctl.kubeapi.reflector.Reflector.stale_seconds>`: failing lists, unreadable answers, a
  silent or refusing server), the first ruleset built from those caches is in the kernel, and
  syncs have not been failing for longer than ``stale_after``. A DaemonSet rolling update
  waits for it, so a new agent never takes over a node before it enforces the current policy,
  and an agent that no longer follows the cluster says so (the rules it last applied stay).
* **Alive** (``/healthz``) while the sync loop turns (its heartbeat is fresh, the last sync
  attempt is not older than the runner's max interval plus a grace period) and every thread
  the agent needs is running: a thread that dies is reported here until it is restarted
  (:mod:`agent.supervisor`), and one that keeps dying is left dead, so the kubelet restarts
  the pod. It
  does not look at the API server: a control-plane upgrade must not make kubelet restart
  every agent (the rules stay in force without us anyway).

The decisions are pure functions of a :class:`HealthState` and the time (:func:`readiness`,
:func:`liveness`), each returning the reasons it is not OK, which the endpoints print. The
server binds 127.0.0.1 by default: with hostNetwork, anything else would expose it to the
network. It is a :class:`~agent.httpserver.BoundedHTTPServer`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from policyctl.agent.httpserver import BoundedHTTPServer, Limits, Reply


@dataclass(frozen=True, slots=True)
class HealthState:
    """What readiness and liveness are decided from. Times are on the runner's monotonic
    clock; ``first_sync_at`` is when the first sync from synced caches succeeded.
    ``stale`` is each cache's seconds out of sync (0 when in sync) and ``errors`` what its
    last failure was; ``failing_for`` how long syncs have been failing (0 when the last one
    succeeded) and ``sync_error`` the last failure; ``dead_threads`` the threads that are
    not running, each with why."""

    synced: Mapping[str, bool] = field(default_factory=dict)
    first_sync_at: float | None = None
    heartbeat: float | None = None
    last_attempt: float | None = None
    stale: Mapping[str, float] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    failing_for: float = 0.0
    sync_error: str | None = None
    dead_threads: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reasons: tuple[str, ...] = ()

    def text(self) -> str:
        return "ok\n" if self.ok else "".join(f"{r}\n" for r in self.reasons)


def readiness(state: HealthState, *, stale_after: float = math.inf) -> Verdict:
    """Ready once every cache has listed and the first ruleset was applied, while no cache
    has been out of sync and no sync has been failing for more than ``stale_after``."""
    reasons = [f"cache {name} has not synced" for name, ok in sorted(state.synced.items()) if not ok]
    if not state.synced:
        reasons.append("no cache is watched yet")
    for name, seconds in sorted(state.stale.items()):
        if state.synced.get(name) and seconds > stale_after:
            why = state.errors.get(name)
            reasons.append(f"cache {name} has been out of sync for {seconds:.1f}s (limit {stale_after:.1f}s)"
                           + (f": {why}" if why else ""))  # fmt: skip
    if state.first_sync_at is None:
        reasons.append("the first ruleset has not been applied")
    elif state.failing_for > stale_after:
        reasons.append(f"syncs have failed for {state.failing_for:.1f}s (limit {stale_after:.1f}s)"
                       + (f": {state.sync_error}" if state.sync_error else ""))  # fmt: skip
    return Verdict(not reasons, tuple(reasons))


def liveness(state: HealthState, now: float, *, heartbeat_timeout: float, attempt_timeout: float) -> Verdict:
    """Alive while the loop's heartbeat is younger than ``heartbeat_timeout``, once a sync
    has been attempted the last attempt is younger than ``attempt_timeout`` (the runner's
    max interval plus grace: a sync that hangs in the kernel shows here), and no needed
    thread is dead for good. Before the first heartbeat the agent is starting, which the
    startup probe covers."""
    reasons = []
    if state.heartbeat is not None and now - state.heartbeat > heartbeat_timeout:
        reasons.append(
            f"the sync loop has not turned for {now - state.heartbeat:.1f}s (limit {heartbeat_timeout:.1f}s)"
        )
    if state.last_attempt is not None and now - state.last_attempt > attempt_timeout:
        reasons.append(f"no sync attempted for {now - state.last_attempt:.1f}s (limit {attempt_timeout:.1f}s)")
    reasons.extend(f"thread {name} is dead: {why}" for name, why in sorted(state.dead_threads.items()))
    return Verdict(not reasons, tuple(reasons))


Check = Callable[[], Verdict]


def _reply(check: Check) -> Callable[[], Reply]:
    def answer() -> Reply:
        verdict = check()
        return Reply(200 if verdict.ok else 503, "text/plain; charset=utf-8", verdict.text().encode())

    return answer


class HealthServer:
    """``GET /healthz`` (liveness) and ``GET /readyz`` (readiness): 200 ``ok`` or 503 with
    the reasons, one per line. Runs in a daemon thread; ``close`` stops it."""

    def __init__(
        self,
        *,
        live: Check,
        ready: Check,
        port: int,
        address: str = "127.0.0.1",
        limits: Limits = Limits(),
        on_reject: Callable[[], None] | None = None,
    ) -> None:
        routes = {"/healthz": _reply(live), "/livez": _reply(live), "/readyz": _reply(ready)}
        self._server = BoundedHTTPServer(routes, address=address, port=port, limits=limits, name="health",
                                         on_reject=on_reject)  # fmt: skip
        self.port = self._server.port

    @property
    def server(self) -> BoundedHTTPServer:
        return self._server

    def close(self) -> None:
        self._server.close()
