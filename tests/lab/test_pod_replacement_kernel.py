"""Pods replaced between two plans, with real packets: a removed pod leaves its node at once,
and a pod given a removed pod's address is reachable at once from the pods kept beside it.

``ip netns delete`` returns before the kernel dismantles the namespace; a removed pod whose veth
lingered on the bridge answered neighbour solicitations for the address a new pod had just been
given, and same-node probes to the new pod failed (seen once in CI). Kept pods and the node
also remember the removed pod's MAC for up to 45 s. Both are checked with no probe retries,
in both families and both CNI styles: the first attempt must get through.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from policyctl.lab import netns
from policyctl.lab.probes import Attempt, run_probes
from policyctl.lab.servers import PodServers
from policyctl.lab.state import drop_lease, take_lease
from policyctl.lab.topology import Cni, LabPlan, plan_lab
from policyctl.policy.cluster import Cluster
from policyctl.policy.model import Family, Protocol
from tests.builders import cluster, node, pod

pytestmark = pytest.mark.kernel

FAMILIES = (Family.IPV4, Family.IPV6)


def on_node_1(*keys: str) -> Cluster:
    """Pods on one node, addresses assigned in key order from the node's range."""
    return cluster(node("node-1"), node("node-2"), *(pod(k, {"pod": k}, node="node-1") for k in keys))


BEFORE = on_node_1("x/a", "x/b", "x/c")
# x/b goes and x/bb, sorting where it did, takes its addresses; x/a and x/c are kept.
AFTER = on_node_1("x/a", "x/bb", "x/c")


@pytest.fixture
def servers(prefix: str, lab_namespaces: set[str]) -> Iterator[PodServers]:
    take_lease(prefix, os.getpid())
    running = PodServers()
    try:
        yield running
    finally:
        running.close()
        netns.teardown(prefix)
        drop_lease(prefix)


def serve(servers: PodServers, plan: LabPlan) -> None:
    for pod_plan in plan.pods:
        servers.serve(pod_plan.netns, families=FAMILIES, endpoints=((Protocol.TCP, 80),))


def first_attempts(plan: LabPlan, pairs: list[tuple[str, str]]) -> dict[tuple[str, str, str], bool]:
    """Each pair in each family, one attempt of 1 s, no retry."""
    pods = plan.pod_by_key
    attempts = []
    for source, destination in pairs:
        for family in FAMILIES:
            address = pods[destination].address(family)
            assert address is not None
            attempts.append(Attempt((source, destination, family.value), pods[source].netns, address))
    return run_probes(attempts, protocol=Protocol.TCP, port=80, timeout=1.0, retries=0)  # type: ignore[return-value]


@pytest.mark.parametrize("cni", list(Cni), ids=lambda c: c.value)
def test_a_pod_given_a_removed_pods_addresses_is_reached_at_once_by_the_pods_kept_beside_it(
    cni: Cni, prefix: str, servers: PodServers
) -> None:
    before = plan_lab(BEFORE, prefix=prefix, cni=cni, families=FAMILIES)
    after = plan_lab(AFTER, prefix=prefix, cni=cni, families=FAMILIES)
    assert after.pod_by_key["x/bb"].addresses == before.pod_by_key["x/b"].addresses
    assert after.pod_by_key["x/a"] == before.pod_by_key["x/a"]
    assert after.pod_by_key["x/c"] == before.pod_by_key["x/c"]
    netns.apply_plan(before)
    serve(servers, before)
    kept_to_old = [("x/a", "x/b"), ("x/c", "x/b"), ("x/b", "x/a")]
    assert all(first_attempts(before, kept_to_old).values())

    servers.forget(before.pod_by_key["x/b"].netns)
    netns.apply_plan(after, previous=before)
    serve(servers, after)
    seen = first_attempts(after, [("x/a", "x/bb"), ("x/c", "x/bb"), ("x/bb", "x/a"), ("x/bb", "x/c")])
    assert seen == dict.fromkeys(seen, True)


@pytest.mark.parametrize("cni", list(Cni), ids=lambda c: c.value)
def test_a_removed_pod_has_left_its_node_when_the_plan_is_applied(
    cni: Cni, prefix: str, servers: PodServers
) -> None:
    before = plan_lab(BEFORE, prefix=prefix, cni=cni, families=FAMILIES)
    after = plan_lab(on_node_1("x/a", "x/c"), prefix=prefix, cni=cni, families=FAMILIES)
    node_ns = before.node_by_name["node-1"].netns
    pod_links = {p.host_link for p in before.pods}
    netns.apply_plan(before)
    for _ in range(5):
        netns.apply_plan(after, previous=before)
        assert links(node_ns) & pod_links == {after.pod_by_key[k].host_link for k in ("x/a", "x/c")}
        netns.apply_plan(before, previous=after)
        assert links(node_ns) & pod_links == pod_links


def links(netns_name: str) -> set[str]:
    listing = subprocess.run(["ip", "-n", netns_name, "-o", "link", "show"], check=True, capture_output=True,
                             text=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in listing.splitlines()}
