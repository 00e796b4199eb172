"""The bounded-frequency runner, driven by a fake clock: bursts coalesce, the interval bounds
hold, failures are retried, and the loop thread wakes on requests and stops on demand."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from policyctl.agent.runner import BoundedFrequencyRunner, IdleWork, Intervals, RunOutcome, Schedule, next_due
from tests.agent.clock import FakeClock

BOUNDS = Intervals(min_interval=1.0, max_interval=60.0, retry_interval=5.0)


class Recorder:
    """The function under the runner: records when it ran, fails while ``failing``."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[float] = []
        self.failing = False

    def __call__(self) -> None:
        self.calls.append(self.clock.now)
        if self.failing:
            raise RuntimeError("nft said no")


def make(bounds: Intervals = BOUNDS) -> tuple[FakeClock, Recorder, BoundedFrequencyRunner, list[RunOutcome]]:
    clock = FakeClock(100.0)
    recorder = Recorder(clock)
    outcomes: list[RunOutcome] = []
    return clock, recorder, BoundedFrequencyRunner(recorder, bounds, clock=clock, on_outcome=outcomes.append), outcomes


def at(clock: FakeClock, runner: BoundedFrequencyRunner, when: float) -> float:
    clock.now = when
    return runner.poll()


@pytest.mark.parametrize(
    ("schedule", "due"),
    [
        pytest.param(Schedule(), float("-inf"), id="never-ran-due-now"),
        pytest.param(Schedule(last_run=10.0), 70.0, id="idle-resync-after-max"),
        pytest.param(Schedule(last_run=10.0, pending=True), 11.0, id="request-after-min"),
        pytest.param(Schedule(last_run=10.0, failed=True), 15.0, id="failure-retry"),
        pytest.param(Schedule(last_run=10.0, failed=True, pending=True), 11.0, id="request-beats-retry"),
    ],
)
def test_next_due(schedule: Schedule, due: float) -> None:
    assert next_due(schedule, BOUNDS) == due


def test_retry_sooner_than_min_interval_waits_for_min_interval() -> None:
    assert next_due(Schedule(last_run=0.0, failed=True), Intervals(1.0, 60.0, 0.1)) == 1.0


def test_first_poll_runs_at_once() -> None:
    clock, recorder, runner, _ = make()
    runner.poll()
    assert recorder.calls == [100.0]


def test_a_burst_of_requests_becomes_one_run_after_min_interval() -> None:
    clock, recorder, runner, _ = make()
    at(clock, runner, 100.0)
    for step in range(10):
        clock.now = 100.05 + step * 0.05
        runner.request()
        assert runner.poll() > 0
    assert recorder.calls == [100.0]
    at(clock, runner, 101.0)
    at(clock, runner, 101.5)
    assert recorder.calls == [100.0, 101.0]


def test_without_requests_it_resyncs_at_max_interval() -> None:
    clock, recorder, runner, _ = make()
    at(clock, runner, 100.0)
    assert at(clock, runner, 159.9) == pytest.approx(0.1)
    at(clock, runner, 160.0)
    assert recorder.calls == [100.0, 160.0]


def test_a_failed_run_is_retried_after_retry_interval_then_back_to_max() -> None:
    clock, recorder, runner, outcomes = make()
    recorder.failing = True
    at(clock, runner, 100.0)
    at(clock, runner, 104.9)
    recorder.failing = False
    at(clock, runner, 105.0)
    at(clock, runner, 110.0)
    at(clock, runner, 165.0)
    assert recorder.calls == [100.0, 105.0, 165.0]
    assert [o.ok for o in outcomes] == [False, True, True]
    assert str(outcomes[0].error) == "nft said no"


def test_a_request_made_during_a_run_causes_the_next_run() -> None:
    clock, recorder, runner, _ = make()
    original = recorder.__call__

    def run_and_hear_of_a_change() -> None:
        original()
        if len(recorder.calls) == 1:
            runner.request()

    runner._function = run_and_hear_of_a_change
    at(clock, runner, 100.0)
    at(clock, runner, 101.0)
    assert recorder.calls == [100.0, 101.0]


def test_heartbeat_advances_when_idle() -> None:
    clock, _, runner, _ = make()
    at(clock, runner, 100.0)
    at(clock, runner, 130.0)
    assert runner.heartbeat == 130.0


def test_invalid_intervals_report_every_problem() -> None:
    problems = Intervals(min_interval=-1.0, max_interval=0.0, retry_interval=-2.0).validate()
    assert len(problems) == 3, problems
    with pytest.raises(ValueError, match="min interval"):
        BoundedFrequencyRunner(lambda: None, Intervals(min_interval=10.0, max_interval=5.0))


def test_loop_thread_wakes_on_request_and_stops() -> None:
    ran = threading.Event()
    calls: list[float] = []

    def function() -> None:
        calls.append(time.monotonic())
        if len(calls) >= 2:
            ran.set()

    runner = BoundedFrequencyRunner(function, Intervals(min_interval=0.0, max_interval=30.0, retry_interval=1.0))
    stop = threading.Event()
    thread = threading.Thread(target=runner.loop, args=(stop,), kwargs={"tick": 5.0})
    thread.start()
    try:
        deadline = time.monotonic() + 2
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        runner.request()
        assert ran.wait(2.0), "a request did not wake the loop"
    finally:
        stop.set()
        runner.wake()
        thread.join(2.0)
    assert not thread.is_alive()
    assert calls[1] - calls[0] < 2.0


class Readback:
    """Idle work in ``steps`` steps of ``step`` seconds each on the fake clock; records when
    it ran, whether it completed, and gives way when told to."""

    def __init__(self, clock: FakeClock, *, due: float, steps: int = 4, step: float = 0.1) -> None:
        self.clock, self.next_due, self.steps, self.step = clock, due, steps, step
        self.runs: list[tuple[float, bool]] = []
        self.failing = False
        self.on_step: Callable[[int], None] = lambda index: None

    def due(self) -> float:
        return self.next_due

    def run(self, interrupted: Callable[[], bool]) -> bool:
        started = self.clock.now
        for index in range(self.steps):
            if interrupted():
                self.runs.append((started, False))
                return False
            self.clock.advance(self.step)
            self.on_step(index)
        if self.failing:
            raise RuntimeError("listing failed")
        self.runs.append((started, True))
        self.next_due = self.clock.now + 60.0
        return True


def with_idle_work(due: float) -> tuple[FakeClock, Recorder, BoundedFrequencyRunner, Readback]:
    clock = FakeClock(100.0)
    recorder = Recorder(clock)
    work = Readback(clock, due=due)
    runner = BoundedFrequencyRunner(recorder, BOUNDS, clock=clock, idle_work=IdleWork(work.due, work.run))
    return clock, recorder, runner, work


def test_idle_work_runs_when_due_between_syncs_and_is_not_a_run() -> None:
    clock, recorder, runner, work = with_idle_work(due=130.0)
    at(clock, runner, 100.0)
    assert at(clock, runner, 129.0) == pytest.approx(1.0), "the wait ends when the idle work is due"
    at(clock, runner, 130.0)
    assert work.runs == [(130.0, True)] and recorder.calls == [100.0]
    assert runner.schedule.last_run == 100.0, "idle work does not move min_interval's clock"
    at(clock, runner, 160.0)
    assert recorder.calls == [100.0, 160.0], "nor does it stand for the periodic sync"


def test_a_request_during_idle_work_interrupts_it_and_its_sync_runs_next() -> None:
    """The read-back gives way after the step in which the event arrived; the event's sync
    runs at once, not min_interval after the read-back started."""
    clock, recorder, runner, work = with_idle_work(due=130.0)
    at(clock, runner, 100.0)
    work.on_step = lambda index: runner.request() if index == 1 else None
    clock.now = 130.0
    assert runner.poll() <= 0
    assert work.runs == [(130.0, False)]
    runner.poll()
    assert recorder.calls == [100.0, pytest.approx(130.2)]
    runner.poll()
    assert [completed for _, completed in work.runs] == [False, True], "then it runs again, whole"


def test_a_request_held_back_by_min_interval_lets_idle_work_go_on() -> None:
    clock, recorder, runner, work = with_idle_work(due=100.5)
    at(clock, runner, 100.0)
    runner.request()
    at(clock, runner, 100.5)
    assert work.runs == [(100.5, True)] and recorder.calls == [100.0]
    at(clock, runner, 101.0)
    assert recorder.calls == [100.0, 101.0]


def test_failed_idle_work_makes_the_next_sync_come_after_retry_interval() -> None:
    clock, recorder, runner, work = with_idle_work(due=130.0)
    at(clock, runner, 100.0)
    work.failing = True
    at(clock, runner, 130.0)
    assert runner.schedule.failed
    at(clock, runner, 130.5)
    assert recorder.calls == [100.0, 130.5], "retry_interval after the last run has passed: at once"


def test_idle_work_due_with_every_periodic_sync_still_runs() -> None:
    """The agent's read-back falls due with the periodic sync (both every max_interval): the
    wait after a sync ends when the idle work is due, so the loop does not sleep past it to
    the next sync."""
    clock = FakeClock(100.0)
    recorder = Recorder(clock)
    work = Readback(clock, due=160.0)
    runner = BoundedFrequencyRunner(recorder, BOUNDS, clock=clock, idle_work=IdleWork(work.due, work.run))
    for _ in range(5):
        clock.advance(max(runner.poll(), 0.0))
    assert recorder.calls == [100.0, 160.0, 220.0]
    assert work.runs == [(160.0, True), (pytest.approx(220.4), True)]


def test_a_stopping_loop_interrupts_idle_work_at_its_next_step() -> None:
    """A read-back of a large table takes seconds; stopping the agent does not wait for it."""
    started, steps = threading.Event(), []
    stop = threading.Event()

    def run(interrupted: Callable[[], bool]) -> bool:
        started.set()
        for _ in range(200):
            if interrupted():
                return False
            steps.append(time.monotonic())
            time.sleep(0.01)
        return True

    runner = BoundedFrequencyRunner(lambda: None, Intervals(min_interval=0.0, max_interval=30.0, retry_interval=1.0),
                                    idle_work=IdleWork(due=lambda: 0.0 if not started.is_set() else float("inf"),
                                                       run=run))
    thread = threading.Thread(target=runner.loop, args=(stop,), kwargs={"tick": 5.0})
    thread.start()
    try:
        assert started.wait(2.0), "the idle work did not start"
        stop.set()
        runner.wake()
        thread.join(1.0)
    finally:
        stop.set()
        thread.join(3.0)
    assert not thread.is_alive()
    assert len(steps) < 100, "the idle work ran on after the loop was told to stop"
