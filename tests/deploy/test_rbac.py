"""The ClusterRole grants exactly what the agent uses: every API call the agent made against
the fake API server (its request log) is allowed by a rule, and every rule was used. Discovery
requests are non-resource URLs that the default ``system:discovery`` role allows; they are left
out of the comparison and checked to be only discovery."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config as kubeconfig_loader

from policyctl.agent.main import Agent
from tests.agent.conftest import REFLECTOR_OPTIONS, fast_config, seed
from tests.agent.fakes import RecordingEnforcer
from tests.apiserver import FakeApiServer, RequestRecord

CLUSTER_ROLE = Path(__file__).resolve().parents[2] / "deploy" / "base" / "clusterrole.yaml"


def granted() -> set[tuple[str, str, str]]:
    role = yaml.safe_load(CLUSTER_ROLE.read_text())
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def needed(request: RequestRecord) -> tuple[str, str, str]:
    """(API group, resource, verb) of a request, as the API server's authorizer sees it."""
    parts = request.path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    resource = rest[2] if rest[0] == "namespaces" and len(rest) >= 3 else rest[0]
    return group, resource, request.verb


def test_every_call_is_allowed_and_every_rule_is_used(tmp_path: Path) -> None:
    with FakeApiServer(bookmark_interval=0.15) as server:
        seed(server)
        api: Any = kubeconfig_loader.new_client_from_config(
            config_file=server.write_kubeconfig(tmp_path / "kubeconfig")
        )
        enforcer = RecordingEnforcer(table="pctest")
        agent = Agent(
            fast_config(health_port=-1), api=api, enforcer=enforcer, reflector_options=REFLECTOR_OPTIONS
        ).start()
        try:
            assert agent.wait_ready(10), agent.readiness().reasons
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and min(r.lists for r in agent.reflectors) < 2:
                server.compact()
                server.expire_watches()
                time.sleep(0.3)
            assert min(r.lists for r in agent.reflectors) >= 2, "no relist happened"
        finally:
            agent.stop()
            api.close()
        calls = {needed(r) for r in server.requests if not r.discovery}
    rules = granted()
    assert {r.path.rstrip("/") for r in server.requests if r.discovery} <= {
        "/apis", "/apis/policy.networking.k8s.io/v1beta1", "/apis/policy.networking.k8s.io/v1alpha2",
        "/apis/policy.networking.k8s.io/v1alpha1"}  # fmt: skip
    assert calls - rules == set(), f"calls the ClusterRole does not allow: {sorted(calls - rules)}"
    assert rules - calls == set(), f"rules the agent never used: {sorted(rules - calls)}"


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        pytest.param("/api/v1/pods", {"limit": "500"}, ("", "pods", "list"), id="core-list"),
        pytest.param("/api/v1/namespaces/shop/pods", {"watch": "true"}, ("", "pods", "watch"), id="namespaced-watch"),
        pytest.param("/api/v1/namespaces", {}, ("", "namespaces", "list"), id="namespaces"),
        pytest.param(
            "/apis/networking.k8s.io/v1/networkpolicies",
            {"watch": "1"},
            ("networking.k8s.io", "networkpolicies", "watch"),
            id="grouped-watch",
        ),
    ],
)
def test_the_request_mapping_reads_namespaced_and_grouped_paths(
    path: str, query: dict[str, str], expected: tuple[str, str, str]
) -> None:
    assert needed(RequestRecord("GET", path, query)) == expected
