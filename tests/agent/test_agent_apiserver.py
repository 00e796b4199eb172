"""The agent end to end against the fake API server, writing a real nftables table in a
throwaway network namespace: after each scripted scenario the table equals ``compile_node``
of the objects the server holds."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest

from policyctl.agent.config import AgentConfig
from policyctl.agent.main import Agent
from policyctl.compiler.compile import compile_node
from policyctl.compiler.markedpeers import DEFAULT_MASK, IdentityMark, canonical
from policyctl.compiler.render_json import to_document
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from tests.agent.conftest import NODE, READ_TIMEOUT, TABLE, expected_document, fast_config, seed
from tests.apiserver import FakeApiServer
from tests.kubeapi import objects as raw
from tests.kubeapi.conftest import server_cluster, wait_until

pytestmark = pytest.mark.kernel


def converges(kernel: Enforcer, server: FakeApiServer, *, timeout: float = 10.0) -> bool:
    """The table equals the compiled ruleset of what the server holds now (re-read while
    waiting: the server may still be changing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kernel.current() is not None and kernel.plan(expected_document(server)).empty:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def running(apiserver: FakeApiServer, kernel: Enforcer, node_netns: str,
            start_agent: Callable[..., Agent]) -> Agent:
    seed(apiserver)
    agent = start_agent(backend=LibnftablesBackend(netns=node_netns))
    assert agent.wait_ready(10), agent.readiness().reasons
    assert converges(kernel, apiserver)
    return agent


def restarts(agent: Agent, resource: str, reason: str) -> int:
    return next(r.restarts[reason] for r in agent.reflectors if r.resource.value == resource)


def test_410_mid_stream_with_deletions_in_the_gap(apiserver: FakeApiServer, kernel: Enforcer, running: Agent) -> None:
    apiserver.go_silent()
    apiserver.delete("Pod", "edge", "gw-1")
    apiserver.delete("NetworkPolicy", "other", "deny-all")
    apiserver.compact()
    apiserver.expire_watches()
    assert converges(kernel, apiserver)
    assert restarts(running, "pods", "410") >= 1
    table = str(kernel.backend.list_table("inet", TABLE))
    assert "10.50.1.11" not in table, "the deleted peer is still allowed"
    assert "10.50.0.11" not in table, "other/batch is still isolated by the deleted policy"


def test_a_silent_dead_connection_is_noticed_and_changes_arrive(
    apiserver: FakeApiServer, kernel: Enforcer, running: Agent
) -> None:
    apiserver.go_silent()
    apiserver.update(raw.pod("edge/gw-2", {"role": "retired"}, ip="10.50.1.12", node="node-b"))
    time.sleep(READ_TIMEOUT / 2)
    assert not kernel.plan(expected_document(apiserver)).empty, "the change arrived before the stream was dropped"
    assert converges(kernel, apiserver)
    assert restarts(running, "pods", "timeout") >= 1


def test_a_relabelled_namespace_brings_its_pods_into_a_peer(
    apiserver: FakeApiServer, kernel: Enforcer, running: Agent
) -> None:
    before = kernel.backend.list_table("inet", TABLE)
    apiserver.update(raw.namespace("other", team="edge"))
    assert converges(kernel, apiserver)
    after = kernel.backend.list_table("inet", TABLE)
    assert "10.50.1.13" not in str(before) and "10.50.1.13" in str(after)


def _marked_converges(kernel: Enforcer, server: FakeApiServer, agent: Agent, *, timeout: float = 10.0) -> bool:
    """The kernel holds the agent's ruleset, and that ruleset sends every peer where a whole
    compile of what the server holds does (the agent keeps identity numbers as state:
    ``markedpeers.canonical``)."""
    mark = IdentityMark(DEFAULT_MASK)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        expected = compile_node(server_cluster(server), NODE, table=TABLE, identity_mark=mark)
        try:
            held = agent.sync.compiler.ruleset
        except RuntimeError:
            held = None
        if held is not None and canonical(held, mark) == expected and kernel.current() is not None:
            if kernel.plan(to_document(held)).empty:
                return True
        time.sleep(0.05)
    return False


def test_the_default_marked_layout_follows_the_cluster(
    apiserver: FakeApiServer, kernel: Enforcer, node_netns: str, start_agent: Callable[..., Agent]
) -> None:
    """The agent as it runs by default (``--identity-mark`` not given): peers in mark bits."""
    seed(apiserver)
    default = AgentConfig(node=NODE).identity_mark
    assert default == DEFAULT_MASK
    agent = start_agent(dataclasses.replace(fast_config(), identity_mark=default),
                        backend=LibnftablesBackend(netns=node_netns))
    assert agent.wait_ready(10), agent.readiness().reasons
    assert _marked_converges(kernel, apiserver, agent)
    listing = str(kernel.backend.list_table("inet", TABLE))
    assert "in-identities-v4" in listing and "in-peers-v4" not in listing
    apiserver.update(raw.namespace("other", team="edge"))
    assert _marked_converges(kernel, apiserver, agent)
    assert "10.50.1.13" in str(kernel.backend.list_table("inet", TABLE))
    apiserver.delete("NetworkPolicy", "shop", "web")
    assert _marked_converges(kernel, apiserver, agent)


def test_a_policy_deleted_while_disconnected(apiserver: FakeApiServer, kernel: Enforcer, running: Agent) -> None:
    apiserver.refuse_watches(503)
    apiserver.drop_watches()
    apiserver.delete("NetworkPolicy", "shop", "web")
    time.sleep(0.3)
    apiserver.refuse_watches(None)
    assert converges(kernel, apiserver)
    assert "10.50.0.10" not in str(kernel.backend.list_table("inet", TABLE)), "web is still isolated"


def test_a_deleted_table_is_restored_by_the_periodic_resync(
    apiserver: FakeApiServer, kernel: Enforcer, node_netns: str, start_agent: Callable[..., Agent]
) -> None:
    seed(apiserver)
    agent = start_agent(fast_config(max_interval=0.5), backend=LibnftablesBackend(netns=node_netns))
    assert agent.wait_ready(10)
    assert kernel.cleanup()
    assert converges(kernel, apiserver, timeout=5)
    assert agent.sync.compiles == 1, "a resync with nothing changed must not recompile"


def test_a_rule_edited_by_hand_is_repaired_by_the_periodic_read_back(
    apiserver: FakeApiServer, kernel: Enforcer, node_netns: str, start_agent: Callable[..., Agent]
) -> None:
    """An element taken out of one of our sets leaves the table's handle as it was, so only
    the read-back between syncs can see it; it puts the element back and says so."""
    seed(apiserver)
    agent = start_agent(fast_config(max_interval=0.5), backend=LibnftablesBackend(netns=node_netns))
    assert agent.wait_ready(10)
    assert converges(kernel, apiserver)
    listing = kernel.backend.list_table("inet", TABLE)
    assert listing is not None
    name, element = next((s["set"]["name"], s["set"]["elem"][0]) for s in listing["nftables"]
                         if "set" in s and s["set"].get("elem"))
    kernel.backend.run({"nftables": [{"delete": {"element": {
        "family": "inet", "table": TABLE, "name": name, "elem": [element]}}}]})
    assert not kernel.plan(expected_document(apiserver)).empty
    assert converges(kernel, apiserver, timeout=5)
    value = agent.metrics.registry.get_sample_value
    # The repaired table shows before the read-back ends: it still revokes flows, then counts.
    wait_until(lambda: value("policyctl_kernel_readbacks_total", {"result": "repaired"}) is not None,
               timeout=5, what="the read-back to count its repair")
    assert value("policyctl_kernel_readbacks_total", {"result": "repaired"}) == 1
    assert agent.sync.compiles == 1, "a read-back compiles nothing"


def test_a_burst_of_events_is_one_transaction(
    apiserver: FakeApiServer, kernel: Enforcer, node_netns: str, start_agent: Callable[..., Agent]
) -> None:
    seed(apiserver)
    agent = start_agent(fast_config(min_interval=1.0), backend=LibnftablesBackend(netns=node_netns))
    assert agent.wait_ready(10)
    syncs = agent.sync.syncs
    for index in range(20):
        apiserver.create(raw.pod(f"edge/burst-{index}", {"role": "gw"}, ip=f"10.50.2.{index + 10}", node="node-b"))
    assert converges(kernel, apiserver)
    assert agent.sync.syncs - syncs <= 2, agent.sync.syncs - syncs


def test_events_for_other_nodes_do_not_recompile(
    apiserver: FakeApiServer, kernel: Enforcer, running: Agent
) -> None:
    compiles = running.sync.compiles
    syncs = running.sync.syncs
    apiserver.create(raw.policy("shop/db-only", {"podSelector": {"matchLabels": {"app": "db"}}}))
    apiserver.update(raw.pod("shop/db", {"app": "db", "version": "2"}, ip="10.50.1.10", node="node-b"))
    deadline = time.monotonic() + 5
    while running.sync.syncs == syncs and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running.sync.syncs > syncs
    assert converges(kernel, apiserver)
    assert running.sync.compiles == compiles


def test_metrics_report_the_reflectors(apiserver: FakeApiServer, kernel: Enforcer, running: Agent) -> None:
    apiserver.go_silent("Namespace")
    apiserver.compact()
    apiserver.expire_watches("Namespace")
    deadline = time.monotonic() + 5
    value: Any = None
    while time.monotonic() < deadline:
        value = running.metrics.registry.get_sample_value(
            "policyctl_watch_restarts_total", {"resource": "namespaces", "reason": "410"})
        if value:
            break
        time.sleep(0.02)
    assert value and value >= 1
    assert running.metrics.registry.get_sample_value("policyctl_cache_synced", {"resource": "pods"}) == 1
