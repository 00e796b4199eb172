"""The new-pod window with real packets: a pod that runs before the cluster model has it.

node-1 publishes ``spec.podCIDRs`` 10.244.1.0/24. The policy ``x/web`` isolates pods with
app=web for ingress and admits role=client pods of every namespace on TCP 80. The kernel runs
every pod below; the model the node syncs from lacks ``x/new`` (app=web, 10.244.1.20) at first,
as an agent's does between the CNI giving the pod its address and the API publishing it.

With the window denied, x/new can neither send nor receive, while x/open (known, selected by
no policy) on the same node keeps talking, and so does node-1 itself, whose connections to its
pods leave from its bridge gateway 10.244.1.1, an address inside the pod range that is the
host's own. With the window allowed, x/new talks freely (what
the window closes). Once the model has x/new and the node syncs, every probe equals what the
semantics say of the full cluster. Rules are applied as the agent applies them: a
:class:`NodeSync` with the real enforcer in the node's namespace, the second sync as a delta.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import subprocess
from collections.abc import Iterator

import pytest

from policyctl.agent.sync import NodeSync
from policyctl.compiler.newpods import NewPodWindow
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.lab import netns
from policyctl.lab.probes import Attempt, run_probes
from policyctl.lab.servers import PodServers
from policyctl.lab.state import drop_lease, take_lease
from policyctl.lab.topology import Cni, LabPlan, lab_cluster, plan_lab
from policyctl.policy.cluster import Cluster
from policyctl.policy.model import Family, Protocol
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from tests.builders import cluster, node, pod, pod_peer, policy, port, rule
from tests.agent.fakes import FixedSnapshots

pytestmark = pytest.mark.kernel

NEW = "x/new"
FULL = cluster(
    node("node-1"),
    node("node-2"),
    pod("x/web", {"app": "web"}, node="node-1", ips=["10.244.1.10"]),
    pod("x/open", {"app": "open"}, node="node-1", ips=["10.244.1.11"]),
    pod("x/near", {"role": "client"}, node="node-1", ips=["10.244.1.12"]),
    pod(NEW, {"app": "web"}, node="node-1", ips=["10.244.1.20"]),
    pod("y/client", {"role": "client"}, node="node-2", ips=["10.244.2.10"]),
    policy("x/web", {"app": "web"}, ingress=[rule(pod_peer({"role": "client"}, {}), ports=[port(80)])]),
)
PAIRS = (
    ("y/client", NEW), (NEW, "y/client"), ("x/near", NEW), ("x/open", NEW), (NEW, "x/open"),
    ("x/open", "y/client"), ("y/client", "x/open"), ("y/client", "x/web"), ("x/open", "x/web"),
)
TOUCHING_NEW = frozenset(p for p in PAIRS if NEW in p)


def with_ranges(snapshot: Cluster) -> Cluster:
    ranges = {"node-1": "10.244.1.0/24", "node-2": "10.244.2.0/24"}
    return dataclasses.replace(snapshot, nodes=tuple(
        dataclasses.replace(n, pod_cidrs=(ipaddress.ip_network(ranges[n.name]),)) for n in snapshot.nodes
    ))


@pytest.fixture
def lab(prefix: str, lab_namespaces: set[str]) -> Iterator[tuple[LabPlan, Cluster]]:
    """The kernel side of the full cluster: namespaces, links, routes, servers on TCP 80;
    leased to this process, so concurrent lab tests do not take them for abandoned."""
    plan = plan_lab(with_ranges(FULL), prefix=prefix, cni=Cni.BRIDGED, families=(Family.IPV4,))
    take_lease(prefix, os.getpid())
    servers = PodServers()
    try:
        netns.apply_plan(plan)
        for pod_plan in plan.pods:
            servers.serve(pod_plan.netns, families=(Family.IPV4,), endpoints=((Protocol.TCP, 80),))
        yield plan, lab_cluster(with_ranges(FULL), plan)
    finally:
        servers.close()
        netns.teardown(prefix)
        drop_lease(prefix)


def probe(plan: LabPlan) -> dict[tuple[str, str], bool]:
    pods = plan.pod_by_key
    attempts = []
    for source, destination in PAIRS:
        address = pods[destination].address(Family.IPV4)
        assert address is not None
        attempts.append(Attempt((source, destination), pods[source].netns, address))
    return {k: v for k, v in run_probes(attempts, protocol=Protocol.TCP, port=80).items()}  # type: ignore[misc]


def semantics(running: Cluster) -> dict[tuple[str, str], bool]:
    pods = running.pod_by_key
    return {
        (s, d): evaluate(running, Connection(pods[s], pods[d], Protocol.TCP, 80, Family.IPV4)).allowed
        for s, d in PAIRS
    }


def syncs(plan: LabPlan, model: FixedSnapshots, window: NewPodWindow) -> Iterator[NodeSync]:
    for node_plan in plan.nodes:
        backend = LibnftablesBackend(netns=node_plan.netns)
        yield NodeSync(model, node=node_plan.name, enforcer=Enforcer(backend, table=f"{plan.prefix}policyctl"),
                       new_pods=window)


@pytest.mark.parametrize("window", list(NewPodWindow))
def test_a_pod_the_model_lacks_is_denied_only_with_the_window_and_follows_policy_once_known(
    lab: tuple[LabPlan, Cluster], window: NewPodWindow
) -> None:
    plan, running = lab
    model = FixedSnapshots(dataclasses.replace(running, pods=tuple(p for p in running.pods if p.key != NEW)))
    nodes = list(syncs(plan, model, window))
    try:
        for sync in nodes:
            sync()
        expected = semantics(running)
        before = probe(plan)
        for pair in PAIRS:
            if pair not in TOUCHING_NEW:
                assert before[pair] is expected[pair], f"{pair}: a known pod's verdict changed"
            elif window is NewPodWindow.DENY:
                assert before[pair] is False, f"{pair} passed while {NEW} was unknown"
            else:
                assert before[pair] is True, f"{pair}: an unknown pod is not isolated without the window"
        node_1 = plan.node_by_name["node-1"]
        open_address = plan.pod_by_key["x/open"].address(Family.IPV4)
        assert open_address is not None
        route = subprocess.run(["ip", "-n", node_1.netns, "route", "get", str(open_address)],
                               capture_output=True, text=True, check=True).stdout
        assert "src 10.244.1.1 " in route, route
        from_host = run_probes([Attempt("host", node_1.netns, open_address)], protocol=Protocol.TCP, port=80)
        assert from_host["host"], "node-1's own traffic (from its bridge gateway, inside the pod range) was dropped"
        model.cluster = running
        reports = {sync.node: sync() for sync in nodes}
        assert reports["node-1"].compiled and reports["node-1"].changed
        assert probe(plan) == expected
        assert expected[("y/client", NEW)] and not expected[("x/open", NEW)] and expected[(NEW, "y/client")]
    finally:
        for sync in nodes:
            sync.enforcer.backend.close()  # type: ignore[attr-defined]
