"""Programmed status against the project's API server: the agents publish a Programmed Event on
each policy once its change reached their node's kernel (here: the enforcer they sync into),
with RBAC create and patch only, and ``policyctl status`` reads them back per policy and node."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from policyctl.agent.main import Agent
from policyctl.cli.status import status
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from tests.agent.conftest import expected_document, fast_config, seed
from tests.agent.fakes import RecordingEnforcer
from tests.apiserver import FakeApiServer
from tests.kubeapi import objects as raw


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def programmed(server: FakeApiServer) -> dict[tuple[str, str], dict[str, Any]]:
    """(policy name, node) -> its Programmed Event."""
    return {(e["involvedObject"]["name"], e["source"]["host"]): e for e in server.objects("Event")
            if e.get("reason") == "Programmed"}


def status_of(kubeconfig: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(status, [*args, "--kubeconfig", kubeconfig, "-o", "json"], catch_exceptions=False)
    return result.exit_code, json.loads(result.output)


def test_each_agent_publishes_when_each_policy_reached_its_kernel_and_status_counts_nodes(
    apiserver: FakeApiServer, start_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    seed(apiserver)
    kubeconfig = apiserver.write_kubeconfig(tmp_path / "status-kubeconfig")
    first = start_agent(fast_config(node="node-a", health_port=-1, publish_events=True), enforcer=RecordingEnforcer())
    assert wait_for(lambda: set(programmed(apiserver)) == {("web", "node-a"), ("deny-all", "node-a")})
    event = programmed(apiserver)[("web", "node-a")]
    assert event["metadata"]["namespace"] == "shop" and event["involvedObject"]["kind"] == "NetworkPolicy"
    assert event["message"].startswith("programmed on node-a in ") and event["message"].endswith(" ms")
    histogram = first.metrics.registry.get_sample_value("policyctl_policy_programmed_seconds_count",
                                                        {"kind": "NetworkPolicy"})
    assert histogram == 2

    code, document = status_of(kubeconfig, "shop/web")
    assert code == 1
    (web,) = document["policies"]
    assert (web["policy"], web["programmed_nodes"], web["nodes"], web["slowest"]["node"]) == (
        "NetworkPolicy/shop/web", 1, 2, "node-a")
    assert web["latency_seconds"]["node-a"] == float(event["metadata"]["annotations"]["policyctl.io/latency-seconds"])

    start_agent(fast_config(node="node-b", health_port=-1, publish_events=True), enforcer=RecordingEnforcer())
    assert wait_for(lambda: ("web", "node-b") in programmed(apiserver))
    assert status_of(kubeconfig, "shop/web")[0] == 0

    changed = raw.policy("shop/web", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]})
    apiserver.update(changed)
    assert wait_for(lambda: all(programmed(apiserver)[("web", n)].get("count") == 2 for n in ("node-a", "node-b")))
    assert first.metrics.registry.get_sample_value("policyctl_policy_programmed_seconds_count",
                                                   {"kind": "NetworkPolicy"}) == 3

    code, document = status_of(kubeconfig)
    assert code == 0
    assert {p["policy"]: (p["programmed_nodes"], p["nodes"]) for p in document["policies"]} == {
        "NetworkPolicy/other/deny-all": (2, 2), "NetworkPolicy/shop/web": (2, 2)}
    writes = {(r.method, r.verb, r.path.split("/")[-2] if r.method == "PATCH" else r.path.split("/")[-1])
              for r in apiserver.requests if r.method != "GET"}
    assert writes <= {("POST", "create", "events"), ("PATCH", "patch", "events")} and writes


def test_status_of_an_unknown_policy_is_an_input_error(apiserver: FakeApiServer, tmp_path: Path) -> None:
    seed(apiserver)
    result = CliRunner().invoke(status, ["shop/nothing", "--kubeconfig",
                                         str(apiserver.write_kubeconfig(tmp_path / "kc"))])
    assert result.exit_code == 2 and "no policy 'shop/nothing'" in result.output


@pytest.mark.kernel
def test_a_programmed_event_is_published_only_once_the_kernel_holds_the_change(
    apiserver: FakeApiServer, kernel: Enforcer, node_netns: str, start_agent: Callable[..., Agent]
) -> None:
    seed(apiserver)
    start_agent(fast_config(publish_events=True), backend=LibnftablesBackend(netns=node_netns))
    assert wait_for(lambda: ("web", "node-a") in programmed(apiserver))
    assert kernel.plan(expected_document(apiserver)).empty
    opened = raw.policy("shop/web", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                                     "ingress": [{}]})
    apiserver.update(opened)
    assert wait_for(lambda: programmed(apiserver)[("web", "node-a")].get("count") == 2)
    # The Event of the change exists: the kernel already enforces it.
    assert kernel.plan(expected_document(apiserver)).empty
    annotations = programmed(apiserver)[("web", "node-a")]["metadata"]["annotations"]
    assert 0 < float(annotations["policyctl.io/latency-seconds"]) < 10
