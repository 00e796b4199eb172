"""``--new-pod-window``: the agent's default denies unknown addresses of its node's pod range,
its syncs apply what ``compile_node`` gives with that window, and a bad value names the flag."""

from __future__ import annotations

import dataclasses
import ipaddress
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from policyctl.agent.config import AgentConfig
from policyctl.agent.sync import NodeSync
from policyctl.cli.main import main
from policyctl.compiler.compile import compile_node
from policyctl.compiler.newpods import NewPodWindow
from policyctl.compiler.render_json import to_document
from policyctl.policy.cluster import Cluster
from policyctl.agent.main import Agent
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from tests import builders as b
from tests.agent.conftest import NODE, TABLE, seed
from tests.agent.fakes import FixedSnapshots, RecordingEnforcer
from tests.apiserver import FakeApiServer
from tests.kubeapi import objects as raw
from tests.kubeapi.conftest import server_cluster

RANGE = ipaddress.ip_network("10.0.1.0/24")


def ranged_cluster(*extra: object) -> Cluster:
    snapshot = b.cluster(
        b.node("node-1", "192.168.0.1"),
        b.pod("x/web", {"app": "web"}, node="node-1", ips=["10.0.1.10"]),
        b.pod("y/client", {"role": "client"}, node="node-2", ips=["10.0.2.10"]),
        b.policy("x/web", {"app": "web"}, ingress=[b.rule(b.pod_peer({"role": "client"}, {}))]),
        *extra,  # type: ignore[arg-type]
    )
    nodes = tuple(dataclasses.replace(n, pod_cidrs=(RANGE,)) for n in snapshot.nodes)
    return dataclasses.replace(snapshot, nodes=nodes)


def test_the_agent_denies_new_pods_by_default_and_says_so_in_its_help() -> None:
    assert AgentConfig(node="n1").new_pods is NewPodWindow.DENY
    result = CliRunner().invoke(main, ["agent", "--help"])
    assert "--new-pod-window [deny|allow]" in result.output and "[default: deny]" in result.output


def test_a_bad_window_names_the_flag() -> None:
    assert AgentConfig(node="n1", new_pod_window="maybe").validate() == (
        "--new-pod-window must be one of deny, allow (got 'maybe')",
    )
    result = CliRunner().invoke(main, ["agent", "--node", "n1", "--new-pod-window", "maybe"])
    assert result.exit_code == 2 and "--new-pod-window" in result.output


@pytest.mark.parametrize("window", list(NewPodWindow))
def test_each_sync_applies_the_compile_with_its_window_as_pods_come(window: NewPodWindow) -> None:
    snapshots = FixedSnapshots(ranged_cluster())
    enforcer = RecordingEnforcer()
    sync = NodeSync(snapshots, node="node-1", enforcer=enforcer, new_pods=window)
    newcomer = b.pod("x/new", {"app": "web"}, node="node-1", ips=["10.0.1.77"])
    for snapshot in (ranged_cluster(), ranged_cluster(newcomer)):
        snapshots.cluster = snapshot
        sync()
        assert enforcer.kernel == to_document(compile_node(snapshot, "node-1", new_pods=window))
    names = {s["set"]["name"] for s in enforcer.kernel["nftables"] if "set" in s}  # type: ignore[index]
    assert ("new-pods-v4" in names) is (window is NewPodWindow.DENY)


def _ranged_node(name: str, address: str, cidr: str) -> dict[str, Any]:
    node = raw.node(name, address)
    node["spec"] = {"podCIDR": cidr, "podCIDRs": [cidr]}
    return node


def _converges(kernel: Enforcer, server: FakeApiServer, window: NewPodWindow, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        expected = to_document(compile_node(server_cluster(server), NODE, table=TABLE, new_pods=window))
        if kernel.current() is not None and kernel.plan(expected).empty:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.kernel
def test_an_agent_fed_by_the_api_server_programs_its_nodes_pod_range_and_follows_new_pods(
    apiserver: FakeApiServer, kernel: Enforcer, node_netns: str, start_agent: Callable[..., Agent]
) -> None:
    """``spec.podCIDRs`` from the API reach the agent's ruleset through the default window;
    a pod created on the node leaves the unknown set when its address is published."""
    seed(apiserver)
    apiserver.update(_ranged_node(NODE, "192.168.50.1", "10.50.0.0/24"))
    agent = start_agent(backend=LibnftablesBackend(netns=node_netns))
    assert agent.wait_ready(10), agent.readiness().reasons
    assert _converges(kernel, apiserver, NewPodWindow.DENY)
    apiserver.create(raw.pod("shop/web-2", {"app": "web"}, ip="10.50.0.20", node=NODE))
    assert _converges(kernel, apiserver, NewPodWindow.DENY)
    listing = subprocess.run(["ip", "netns", "exec", node_netns, "nft", "list", "set", "inet", TABLE, "new-pods-v4"],
                             capture_output=True, text=True, check=True).stdout
    assert "10.50.0.12-10.50.0.19, 10.50.0.21-10.50.0.255" in " ".join(listing.split())
