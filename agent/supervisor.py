"""Keeping the agent's threads running, or saying that they are not.

Every thread the agent needs (one per reflector, the sync loop) runs under a
:class:`Supervisor`. Their bodies catch what they can recover from themselves (a reflector
survives any answer, the runner any failed sync), so a thread only ends early on a bug or an
exception that is not an ``Exception``. When one does, the supervisor logs it, runs the
thread's ``before_restart`` (a reflector forgets its version and relists) and starts it again,
at most ``budget.restarts`` times within ``budget.window`` seconds; a thread that dies more
often than that is left dead for good: a restart loop inside one process is no better than a
clean one. :meth:`Supervisor.dead` reports every thread that is not running, the ones about
to be restarted too, so liveness never says 200 while a thread the agent needs is dead (the
kubelet restarts the pod only after several failed probes, so a restart in between goes
unpunished). :meth:`Supervisor.check` does the rounds; :meth:`Supervisor.run` calls it from a
thread of its own as soon as a thread ends (and every ``tick``); the supervisor's own death
is reported the same way.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RestartBudget:
    """At most ``restarts`` restarts of one thread within ``window`` seconds."""

    restarts: int = 5
    window: float = 600.0


class _Supervised:
    __slots__ = ("name", "target", "before_restart", "thread", "restarts", "error", "given_up")

    def __init__(self, name: str, target: Callable[[], None], before_restart: Callable[[], None] | None) -> None:
        self.name = name
        self.target = target
        self.before_restart = before_restart
        self.thread: threading.Thread | None = None
        self.restarts: collections.deque[float] = collections.deque()
        self.error: str | None = None
        self.given_up = False


class Supervisor:
    """Starts named threads and restarts those that die while ``stop`` is not set."""

    def __init__(
        self,
        stop: threading.Event,
        *,
        budget: RestartBudget = RestartBudget(),
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        self._stop = stop
        self._budget = budget
        self._clock = clock
        self._log = logger or logging.getLogger("policyctl.agent.supervisor")
        self._on_restart = on_restart
        self._lock = threading.Lock()
        self._threads: dict[str, _Supervised] = {}
        self._own: threading.Thread | None = None
        self._ended = threading.Event()
        self.total_restarts: collections.Counter[str] = collections.Counter()

    def start(self, name: str, target: Callable[[], None], *, before_restart: Callable[[], None] | None = None) -> None:
        """Run ``target`` in a daemon thread called ``name``, supervised."""
        entry = _Supervised(name, target, before_restart)
        with self._lock:
            self._threads[name] = entry
        self._launch(entry)

    def _launch(self, entry: _Supervised) -> None:
        entry.error = None
        entry.thread = threading.Thread(target=self._body, args=(entry,), name=entry.name, daemon=True)
        entry.thread.start()

    def _body(self, entry: _Supervised) -> None:
        try:
            entry.target()
        except BaseException as error:  # noqa: BLE001 (whatever ended it, the supervisor decides)
            entry.error = f"{type(error).__name__}: {error}"
            self._log.error("thread died", exc_info=error,
                            extra={"fields": {"thread": entry.name, "error": entry.error}})  # fmt: skip
        else:
            if not self._stop.is_set():
                entry.error = "returned while the agent runs"
                self._log.error("thread ended", extra={"fields": {"thread": entry.name, "error": entry.error}})
        finally:
            self._ended.set()

    def check(self) -> None:
        """Restart every thread that died, within its budget."""
        if self._stop.is_set():
            return
        with self._lock:
            entries = list(self._threads.values())
        now = self._clock()
        for entry in entries:
            if entry.given_up or entry.thread is None or entry.thread.is_alive() or self._stop.is_set():
                continue
            while entry.restarts and now - entry.restarts[0] > self._budget.window:
                entry.restarts.popleft()
            if len(entry.restarts) >= self._budget.restarts:
                entry.given_up = True
                self._log.error("thread keeps dying; not restarted, liveness fails", extra={"fields": {
                    "thread": entry.name, "error": entry.error, "restarts": len(entry.restarts)}})  # fmt: skip
                continue
            entry.restarts.append(now)
            self.total_restarts[entry.name] += 1
            self._log.warning("restarting thread", extra={"fields": {"thread": entry.name, "error": entry.error}})
            if entry.before_restart is not None:
                entry.before_restart()
            if self._on_restart is not None:
                self._on_restart(entry.name)
            self._launch(entry)

    def dead(self) -> Mapping[str, str]:
        """Threads that are not running (the supervisor's own included), each with why: those
        left dead for good, and those about to be restarted."""
        found: dict[str, str] = {}
        if self._stop.is_set():
            return found
        with self._lock:
            entries = list(self._threads.values())
        for entry in entries:
            if entry.given_up:
                found[entry.name] = (f"died {len(entry.restarts) + 1} times within {self._budget.window:g}s, "
                                     f"last: {entry.error}; not restarted")  # fmt: skip
            elif entry.thread is not None and not entry.thread.is_alive():
                found[entry.name] = f"stopped ({entry.error}); restarting"
        own = self._own
        if own is not None and not own.is_alive():
            stopped = [e.name for e in entries if e.thread is not None and not e.thread.is_alive()]
            for name in stopped:
                found.setdefault(name, "stopped, and the supervisor that would restart it is gone")
            found["supervisor"] = "stopped"
        return found

    def run(self, *, tick: float = 1.0) -> None:
        """Do the rounds as soon as a thread ends, and every ``tick`` seconds, until stop (the
        supervisor's own thread)."""
        while not self._stop.is_set():
            self._ended.wait(tick)
            self._ended.clear()
            if self._stop.is_set():
                return
            try:
                self.check()
            except Exception as error:
                self._log.error("supervisor round failed", exc_info=error, extra={"fields": {"error": str(error)}})

    def wake(self) -> None:
        """End the supervisor's wait at once (after setting stop)."""
        self._ended.set()

    def start_own(self, *, tick: float = 1.0) -> None:
        self._own = threading.Thread(target=self.run, kwargs={"tick": tick}, name="supervisor", daemon=True)
        self._own.start()

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every thread after stop was set."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = [e.thread for e in self._threads.values() if e.thread is not None]
        if self._own is not None:
            threads.append(self._own)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
