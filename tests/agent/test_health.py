"""Readiness waits for the caches and the first ruleset; liveness follows the loop's heartbeat
and never the API server; the endpoints answer on 127.0.0.1 with the reasons."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from kubernetes import client

from policyctl.agent.health import HealthServer, HealthState, Verdict, liveness, readiness
from policyctl.agent.main import Agent
from tests.agent.conftest import REFLECTOR_OPTIONS, fast_config
from tests.agent.fakes import RecordingEnforcer

ALL_SYNCED = {"namespaces": True, "networkpolicies": True, "nodes": True, "pods": True}


@pytest.mark.parametrize(
    ("state", "ready", "reason"),
    [
        pytest.param(HealthState(), False, "no cache is watched yet", id="nothing-yet"),
        pytest.param(HealthState(synced={**ALL_SYNCED, "pods": False}, first_sync_at=None), False,
                     "cache pods has not synced", id="pods-still-listing"),
        pytest.param(HealthState(synced=ALL_SYNCED), False, "the first ruleset has not been applied",
                     id="synced-not-applied"),
        pytest.param(HealthState(synced={**ALL_SYNCED, "nodes": False}, first_sync_at=5.0), False,
                     "cache nodes has not synced", id="applied-but-a-cache-relisting"),
        pytest.param(HealthState(synced=ALL_SYNCED, first_sync_at=5.0), True, None, id="ready"),
    ],
)
def test_readiness(state: HealthState, ready: bool, reason: str | None) -> None:
    verdict = readiness(state)
    assert verdict.ok is ready
    if reason is not None:
        assert reason in verdict.reasons


@pytest.mark.parametrize(
    ("state", "now", "alive"),
    [
        pytest.param(HealthState(), 1000.0, True, id="starting"),
        pytest.param(HealthState(heartbeat=990.0, last_attempt=950.0), 1000.0, True, id="idle-between-resyncs"),
        pytest.param(HealthState(heartbeat=900.0, last_attempt=900.0), 1000.0, False, id="loop-stuck"),
        pytest.param(HealthState(heartbeat=999.0, last_attempt=800.0), 1000.0, False, id="sync-hangs"),
        pytest.param(HealthState(synced={"pods": False}, heartbeat=999.0, last_attempt=990.0), 1000.0, True,
                     id="api-server-gone-still-alive"),
    ],
)
def test_liveness(state: HealthState, now: float, alive: bool) -> None:
    assert liveness(state, now, heartbeat_timeout=30.0, attempt_timeout=120.0).ok is alive


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_endpoints_answer_on_loopback_with_reasons() -> None:
    state = {"ready": Verdict(False, ("cache pods has not synced",))}
    server = HealthServer(live=lambda: Verdict(True), ready=lambda: state["ready"], port=0)
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert _get(base + "/healthz") == (200, "ok\n")
        assert _get(base + "/readyz") == (503, "cache pods has not synced\n")
        state["ready"] = Verdict(True)
        assert _get(base + "/readyz") == (200, "ok\n")
        assert _get(base + "/nothing")[0] == 404
    finally:
        server.close()


def test_an_agent_that_cannot_reach_the_api_is_alive_but_not_ready() -> None:
    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:9"
    api = client.ApiClient(configuration)
    agent = Agent(fast_config(), api=api, enforcer=RecordingEnforcer(), reflector_options=REFLECTOR_OPTIONS).start()
    try:
        assert agent.health_server is not None
        base = f"http://127.0.0.1:{agent.health_server.port}"
        assert not agent.wait_ready(1.0)
        status, body = _get(base + "/readyz")
        assert status == 503 and "cache pods has not synced" in body and "first ruleset" in body
        assert _get(base + "/healthz") == (200, "ok\n")
    finally:
        agent.stop()
        api.close()
