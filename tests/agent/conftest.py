"""The agent against the fake API server: a throwaway network namespace as the node, the
server's objects, and an agent started with short timeouts."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config as kubeconfig_loader

from policyctl.agent.config import AgentConfig
from policyctl.agent.main import Agent
from policyctl.compiler.compile import compile_node
from policyctl.compiler.render_json import to_document
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from tests.apiserver import FakeApiServer
from tests.kubeapi import objects as raw
from tests.kubeapi.conftest import server_cluster

READ_TIMEOUT = 0.6
BOOKMARK_INTERVAL = 0.15
TABLE = "pctest"
NODE = "node-a"
REFLECTOR_OPTIONS = {"connect_timeout": 2.0, "backoff": (0.05, 0.2)}


def fast_config(**overrides: Any) -> AgentConfig:
    """Quick intervals, and the jumping peer layout unless ``identity_mark`` is given: these
    tests hold the kernel to a whole compile (:func:`expected_document`), which numbers
    identities afresh where the agent's marked layout keeps numbers as state
    (``markedpeers.canonical``); the default, marked layout's agent is
    ``tests/agent/test_agent_apiserver.py::test_the_default_marked_layout_follows_the_cluster``."""
    settings: dict[str, Any] = {
        "node": NODE, "table": TABLE, "min_interval": 0.05, "max_interval": 30.0, "retry_interval": 0.2,
        "metrics_port": -1, "health_port": 0, "read_timeout": READ_TIMEOUT, "identity_mark": None,
    }
    settings.update(overrides)
    return AgentConfig(**settings)


def seed(server: FakeApiServer) -> None:
    """Two nodes; the web pod on node-a takes ingress from edge gateways on its named port
    and egress to the database; other objects are there to be changed."""
    server.create(raw.namespace("shop", team="shop"))
    server.create(raw.namespace("edge", team="edge"))
    server.create(raw.namespace("other", team="other"))
    server.create(raw.node("node-a", "192.168.50.1"))
    server.create(raw.node("node-b", "192.168.50.2"))
    server.create(raw.pod("shop/web", {"app": "web"}, ip="10.50.0.10", node="node-a",
                          ports=[{"name": "http", "containerPort": 8080, "protocol": "TCP"}]))
    server.create(raw.pod("shop/db", {"app": "db"}, ip="10.50.1.10", node="node-b"))
    server.create(raw.pod("edge/gw-1", {"role": "gw"}, ip="10.50.1.11", node="node-b"))
    server.create(raw.pod("edge/gw-2", {"role": "gw"}, ip="10.50.1.12", node="node-b"))
    server.create(raw.pod("other/batch", {"role": "batch"}, ip="10.50.0.11", node="node-a"))
    server.create(raw.pod("other/gw", {"role": "gw"}, ip="10.50.1.13", node="node-b"))
    server.create(raw.policy("shop/web", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "edge"}},
                               "podSelector": {"matchLabels": {"role": "gw"}}}],
                     "ports": [{"port": "http"}]}],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432}]}],
    }))
    server.create(raw.policy("other/deny-all", {"podSelector": {}}))


def expected_document(server: FakeApiServer, *, node: str = NODE, table: str = TABLE) -> dict[str, Any]:
    return to_document(compile_node(server_cluster(server), node, table=table))


@contextmanager
def throwaway_netns() -> Iterator[str]:
    name = f"pcag-{os.getpid() % 100000}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def kernel_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces and nftables)"
    return None


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer(bookmark_interval=BOOKMARK_INTERVAL) as server:
        yield server


@pytest.fixture
def api(apiserver: FakeApiServer, tmp_path: Path) -> Iterator[Any]:
    client = kubeconfig_loader.new_client_from_config(config_file=apiserver.write_kubeconfig(tmp_path / "kubeconfig"))
    yield client
    client.close()


@pytest.fixture
def node_netns() -> Iterator[str]:
    reason = kernel_reason()
    if reason:
        pytest.skip(reason)
    with throwaway_netns() as name:
        yield name


@pytest.fixture
def kernel(node_netns: str) -> Iterator[Enforcer]:
    """An enforcer on the throwaway node namespace: what the agent writes there."""
    backend = LibnftablesBackend(netns=node_netns)
    try:
        yield Enforcer(backend, table=TABLE)
    finally:
        backend.close()


@pytest.fixture
def start_agent(api: Any) -> Iterator[Callable[..., Agent]]:
    started: list[Agent] = []

    def start(config: AgentConfig | None = None, **kwargs: Any) -> Agent:
        kwargs.setdefault("reflector_options", REFLECTOR_OPTIONS)
        agent = Agent(config or fast_config(), api=api, **kwargs).start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()
