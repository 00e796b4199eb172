"""``--new-pod-window``: the agent's default denies unknown addresses of its node's pod range,
its syncs apply what ``compile_node`` gives with that window, and a bad value names the flag."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest
from click.testing import CliRunner

from policyctl.agent.config import AgentConfig
from policyctl.agent.sync import NodeSync
from policyctl.cli.main import main
from policyctl.compiler.compile import compile_node
from policyctl.compiler.newpods import NewPodWindow
from policyctl.compiler.render_json import to_document
from policyctl.policy.cluster import Cluster
from tests import builders as b
from tests.agent.fakes import FixedSnapshots, RecordingEnforcer

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
