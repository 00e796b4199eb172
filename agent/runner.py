"""A bounded-frequency runner: turns a stream of "something changed" requests into syncs.

The shape is kube-proxy's BoundedFrequencyRunner, as kube-network-policies uses it:

* ``min_interval``: two syncs are at least this far apart, so a burst of API events (a
  Deployment rolling 50 pods) becomes one transaction instead of fifty;
* ``max_interval``: a sync happens at least this often even without events, which is the
  periodic resync that repairs drift (a rule edited by hand, our table deleted);
* ``retry_interval``: after a failed sync the next one comes this soon, whether or not new
  events arrived, since the kernel still holds the previous ruleset.

The schedule is a pure function of a few timestamps (:func:`next_due`), so tests drive it
with a fake clock through :meth:`BoundedFrequencyRunner.poll`; :meth:`loop` is the trivial
thread body around it. A request that arrives while a sync runs is kept and causes the next
sync: the sync that was already running may have read its snapshot before the change.

Besides the syncs the runner can carry one piece of *idle work* (:class:`IdleWork`, the
agent's read-back of the kernel): work that is due at some time, runs only while no sync is
due, and is told to give up as soon as one is (a request arrived and ``min_interval`` has
passed) or the loop is stopping. It is not a run: it neither moves ``min_interval``'s clock
nor counts as the periodic sync, so an event that arrives while it runs waits for at most
one of its steps, never for the whole of it nor for ``min_interval`` after it. When it
raises, the schedule is marked failed, so a sync follows after ``retry_interval``.

Invariants: the function and the idle work never run concurrently, with themselves or each
other; ``heartbeat`` advances on every turn of the loop, busy or idle (liveness reads it; it
never depends on the API server).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Intervals:
    """The runner's bounds, in seconds. ``validate`` returns every problem at once."""

    min_interval: float = 1.0
    max_interval: float = 60.0
    retry_interval: float = 5.0

    def validate(self) -> tuple[str, ...]:
        problems = []
        if self.min_interval < 0:
            problems.append(f"min interval must not be negative (got {self.min_interval})")
        if self.max_interval <= 0:
            problems.append(f"max interval must be positive (got {self.max_interval})")
        if self.max_interval < self.min_interval:
            problems.append(
                f"max interval ({self.max_interval}) must not be shorter than min interval ({self.min_interval})"
            )
        if self.retry_interval < 0:
            problems.append(f"retry interval must not be negative (got {self.retry_interval})")
        return tuple(problems)


@dataclass(frozen=True, slots=True)
class Schedule:
    """What the next run depends on: when the last run started (None before the first),
    whether it failed, and whether a request is waiting."""

    last_run: float | None = None
    failed: bool = False
    pending: bool = False


def next_due(schedule: Schedule, intervals: Intervals) -> float:
    """The earliest time the next run may start. The first run is due at once; after that,
    never sooner than ``min_interval`` after the last run, and no later than
    ``max_interval`` after it (``retry_interval`` after a failure, or ``min_interval`` when
    a request waits)."""
    if schedule.last_run is None:
        return float("-inf")
    wait = intervals.max_interval
    if schedule.failed:
        wait = min(wait, intervals.retry_interval)
    if schedule.pending:
        wait = min(wait, intervals.min_interval)
    return schedule.last_run + max(wait, intervals.min_interval)


@dataclass(frozen=True, slots=True)
class IdleWork:
    """Work the runner does between syncs: ``due()`` says when it is next due (on the
    runner's clock; ``inf`` for never), ``run(interrupted)`` does it, checking
    ``interrupted()`` between its steps and returning early when it is true."""

    due: Callable[[], float]
    run: Callable[[Callable[[], bool]], object]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """One run: when it started, how long it took, and the exception when it failed."""

    started: float
    duration: float
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class BoundedFrequencyRunner:
    """Runs ``function`` when asked (:meth:`request`), within :class:`Intervals`.

    ``clock`` returns seconds on a monotonic scale; ``on_outcome`` hears about every run
    (logging and metrics live there, not here). An exception from ``function`` is a failed
    run, never the end of the loop."""

    def __init__(
        self,
        function: Callable[[], object],
        intervals: Intervals,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_outcome: Callable[[RunOutcome], None] | None = None,
        idle_work: IdleWork | None = None,
    ) -> None:
        problems = intervals.validate()
        if problems:
            raise ValueError("; ".join(problems))
        self._function = function
        self.intervals = intervals
        self._clock = clock
        self._on_outcome = on_outcome
        self._idle_work = idle_work
        self._stop_event = threading.Event()
        """The running loop's stop event (idle work gives way to it too)."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._schedule = Schedule()
        self.runs = 0
        self.heartbeat: float = clock()
        self.last_outcome: RunOutcome | None = None

    @property
    def schedule(self) -> Schedule:
        with self._lock:
            return self._schedule

    def request(self) -> None:
        """Ask for a run; safe from any thread, cheap, never blocks. Requests that arrive
        before the next run are one request."""
        with self._lock:
            self._schedule = Schedule(self._schedule.last_run, self._schedule.failed, True)
        self._wake.set()

    def poll(self) -> float:
        """Run the function if it is due now, else the idle work if that is due; return the
        seconds until either is next due (0 or less when one is due already)."""
        now = self._clock()
        self.heartbeat = now
        with self._lock:
            due = next_due(self._schedule, self.intervals)
            if now >= due:
                self._schedule = Schedule(last_run=now, failed=self._schedule.failed, pending=False)
        if now < due:
            return self._idle(due, now)
        error: BaseException | None = None
        try:
            self._function()
        except Exception as exc:
            error = exc
        finished = self._clock()
        self.heartbeat = finished
        outcome = RunOutcome(started=now, duration=finished - now, error=error)
        with self._lock:
            self._schedule = Schedule(last_run=now, failed=error is not None, pending=self._schedule.pending)
            due = next_due(self._schedule, self.intervals)
        self.runs += 1
        self.last_outcome = outcome
        if self._on_outcome is not None:
            self._on_outcome(outcome)
        if self._idle_work is not None:
            due = min(due, self._idle_work.due())
        return due - self._clock()

    def _idle(self, due: float, now: float) -> float:
        """Before the sync due at ``due``: do the idle work if it is due; return the seconds
        until the sync or the idle work is next due."""
        work = self._idle_work
        if work is None:
            return due - now
        if work.due() <= now:
            try:
                work.run(self._give_way)
            except Exception:
                with self._lock:
                    self._schedule = dataclasses.replace(self._schedule, failed=True)
            self.heartbeat = self._clock()
            with self._lock:
                due = next_due(self._schedule, self.intervals)
        return min(due, work.due()) - self._clock()

    def _give_way(self) -> bool:
        """Idle work should stop: the loop is stopping, or a sync is due."""
        return self._stop_event.is_set() or self._sync_due()

    def _sync_due(self) -> bool:
        """A sync is waiting and may run now."""
        with self._lock:
            schedule = self._schedule
        return schedule.pending and self._clock() >= next_due(schedule, self.intervals)

    def loop(self, stop: threading.Event, *, tick: float = 1.0) -> None:
        """Poll until ``stop`` is set. Waits at most ``tick`` seconds at a time so the
        heartbeat stays fresh while idle; a request wakes the loop at once."""
        self._stop_event = stop
        while not stop.is_set():
            delay = self.poll()
            self._wake.clear()
            if self.schedule.pending:
                delay = min(delay, max(0.0, next_due(self.schedule, self.intervals) - self._clock()))
            if delay > 0 and not stop.is_set():
                self._wake.wait(min(delay, tick))

    def wake(self) -> None:
        """Interrupt a waiting :meth:`loop` (used on shutdown, after setting its stop event)."""
        self._wake.set()
