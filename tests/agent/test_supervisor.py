"""A thread the agent needs that dies is restarted (a reflector relists first); one that keeps
dying is left dead and liveness fails, so the kubelet restarts the pod."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from policyctl.agent.main import Agent
from policyctl.agent.supervisor import RestartBudget, Supervisor
from policyctl.kubeapi.reflector import Reflector
from tests.agent.clock import FakeClock
from tests.agent.conftest import REFLECTOR_OPTIONS, fast_config, seed
from tests.agent.fakes import RecordingEnforcer
from tests.apiserver import FakeApiServer
from tests.kubeapi.conftest import wait_until
from tests.kubeapi.objects import pod


class Killed(BaseException):
    """What no ``except Exception`` catches: it ends a thread as a bug in a handler would."""


def dies(times: int, then: Callable[[], None] = lambda: None) -> tuple[Callable[[], None], list[int]]:
    calls = [0]

    def body() -> None:
        calls[0] += 1
        if calls[0] <= times:
            raise Killed(f"death {calls[0]}")
        then()

    return body, calls


@pytest.mark.parametrize(
    ("deaths", "budget", "dead"),
    [
        pytest.param(1, RestartBudget(restarts=3, window=60.0), False, id="one-death-restarted"),
        pytest.param(3, RestartBudget(restarts=3, window=60.0), False, id="deaths-within-budget"),
        pytest.param(4, RestartBudget(restarts=3, window=60.0), True, id="one-death-too-many"),
    ],
)
def test_a_dead_thread_is_restarted_within_its_budget(deaths: int, budget: RestartBudget, dead: bool) -> None:
    stop = threading.Event()
    clock = FakeClock(100.0)
    resets: list[str] = []
    restarted: list[str] = []
    body, calls = dies(deaths, then=lambda: stop.wait())
    supervisor = Supervisor(stop, budget=budget, clock=clock, on_restart=restarted.append)
    supervisor.start("worker", body, before_restart=lambda: resets.append("reset"))
    try:
        for _ in range(deaths + 1):
            wait_until(lambda: not supervisor._threads["worker"].thread.is_alive() or calls[0] > deaths,  # type: ignore[union-attr]
                       what="the thread to die or to settle")
            if calls[0] <= deaths and not supervisor._threads["worker"].given_up:
                assert supervisor.dead()["worker"].endswith("; restarting"), "a dead thread is reported at once"
            supervisor.check()
            clock.advance(1.0)
        assert ("worker" in supervisor.dead()) is dead
        assert restarted == ["worker"] * min(deaths, budget.restarts)
        assert resets == ["reset"] * len(restarted), "before_restart runs before every restart"
        if not dead:
            assert calls[0] == deaths + 1
            assert supervisor._threads["worker"].thread.is_alive()  # type: ignore[union-attr]
        else:
            assert supervisor.dead()["worker"] == "died 4 times within 60s, last: Killed: death 4; not restarted"
    finally:
        stop.set()
        supervisor.join(5)


def test_restarts_older_than_the_window_do_not_count() -> None:
    stop = threading.Event()
    clock = FakeClock()
    body, calls = dies(5, then=lambda: stop.wait())
    supervisor = Supervisor(stop, budget=RestartBudget(restarts=1, window=10.0), clock=clock)
    supervisor.start("worker", body)
    try:
        for _ in range(6):
            wait_until(lambda: not supervisor._threads["worker"].thread.is_alive() or calls[0] > 5,  # type: ignore[union-attr]
                       what="the thread to die or to settle")
            supervisor.check()
            clock.advance(11.0)
        assert supervisor.dead() == {}
        assert supervisor.total_restarts["worker"] == 5
    finally:
        stop.set()
        supervisor.join(5)


def test_a_thread_that_returns_while_the_agent_runs_counts_as_dead() -> None:
    stop = threading.Event()
    supervisor = Supervisor(stop, budget=RestartBudget(restarts=0, window=60.0))
    supervisor.start("worker", lambda: None)
    wait_until(lambda: not supervisor._threads["worker"].thread.is_alive(), what="the thread to end")  # type: ignore[union-attr]
    supervisor.check()
    assert supervisor.dead() == {
        "worker": "died 1 times within 60s, last: returned while the agent runs; not restarted"
    }
    stop.set()
    assert supervisor.dead() == {}, "after stop, ended threads are no news"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def agent_on(apiserver: FakeApiServer, api: Any) -> Callable[..., Agent]:
    seed(apiserver)
    started: list[Agent] = []

    def start(**kwargs: Any) -> Agent:
        agent = Agent(fast_config(), api=api, enforcer=RecordingEnforcer(table="pctest"),
                      reflector_options=REFLECTOR_OPTIONS, **kwargs).start()  # fmt: skip
        started.append(agent)
        return agent

    yield start  # type: ignore[misc]
    for agent in started:
        agent.stop()


def _pods(agent: Agent) -> Reflector:
    return next(r for r in agent.reflectors if r.resource.value == "pods")


def kill_on_next_change(agent: Agent) -> list[int]:
    """The next change a reflector reports ends that reflector's thread (from inside it)."""
    real = agent.runner.request
    deaths = [0]

    def request() -> None:
        if deaths[0] == 0:
            deaths[0] += 1
            raise Killed("a bug in a handler")
        real()

    agent.runner.request = request  # type: ignore[method-assign]
    return deaths


def test_a_reflector_thread_that_dies_is_restarted_and_relists(
    apiserver: FakeApiServer, agent_on: Callable[..., Agent]
) -> None:
    agent = agent_on()
    assert agent.wait_ready(10), agent.readiness().reasons
    reflector = _pods(agent)
    deaths = kill_on_next_change(agent)
    apiserver.create(pod("shop/killer", {"app": "x"}, ip="10.50.0.98", node="node-a"))
    wait_until(lambda: deaths[0] == 1, what="the death")
    wait_until(lambda: reflector.lists >= 2, what="the restarted thread's relist")
    apiserver.create(pod("shop/late", {"app": "late"}, ip="10.50.0.99", node="node-a"))
    wait_until(lambda: "shop/late" in agent.store.keys(reflector.resource), what="events after the restart")
    assert agent.metrics.registry.get_sample_value("policyctl_thread_restarts_total",
                                                   {"thread": "reflector-pods"}) == 1  # fmt: skip
    assert agent.liveness().ok, agent.liveness().reasons
    assert agent.readiness().ok, agent.readiness().reasons


def test_a_thread_that_keeps_dying_makes_liveness_fail(
    apiserver: FakeApiServer, agent_on: Callable[..., Agent]
) -> None:
    agent = agent_on(restart_budget=RestartBudget(restarts=2, window=600.0))
    assert agent.wait_ready(10), agent.readiness().reasons
    reflector = _pods(agent)

    def always_dying(stop: threading.Event) -> None:
        raise Killed("a bug in a handler")

    reflector.run = always_dying  # type: ignore[method-assign]
    kill_on_next_change(agent)
    apiserver.create(pod("shop/killer", {"app": "x"}, ip="10.50.0.98", node="node-a"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and agent.liveness().ok:
        time.sleep(0.05)
    verdict = agent.liveness()
    assert not verdict.ok
    assert any("thread reflector-pods is dead: died 3 times" in r for r in verdict.reasons), verdict.reasons
    assert agent.health_server is not None
    status, body = _get(f"http://127.0.0.1:{agent.health_server.port}/healthz")
    assert status == 503 and "reflector-pods" in body
