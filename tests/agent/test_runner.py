"""The bounded-frequency runner, driven by a fake clock: bursts coalesce, the interval bounds
hold, failures are retried, and the loop thread wakes on requests and stops on demand."""

from __future__ import annotations

import threading
import time

import pytest

from policyctl.agent.runner import BoundedFrequencyRunner, Intervals, RunOutcome, Schedule, next_due
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
