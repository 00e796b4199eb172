"""The lab plan: names, addresses and routes for both CNI styles, without touching the kernel."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.lab.state import plan_from_json, plan_to_json
from policyctl.lab.topology import (
    MAX_LINK_NAME,
    Cni,
    PlanError,
    lab_cluster,
    place_pods,
    plan_lab,
)
from policyctl.policy.model import Family, Labels, Node, Pod
from policyctl.policy.cluster import Cluster

PREFIX = "pcl-0a1b2c-"
DUAL = (Family.IPV4, Family.IPV6)


def standard() -> Cluster:
    return Cluster(pods=tuple(Pod(ns, n, Labels({"pod": n})) for ns in "xyz" for n in "abc"))


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_pods_without_node_alternate_over_two_default_nodes_in_listed_order() -> None:
    placement = place_pods(standard())
    assert [placement[k] for k in ("x/a", "x/b", "x/c", "y/a")] == ["node-1", "node-2", "node-1", "node-2"]


@pytest.mark.parametrize("cni", list(Cni), ids=lambda c: c.value)
def test_every_name_has_the_prefix_and_every_link_fits_ifnamsiz(cni: Cni) -> None:
    plan = plan_lab(standard(), prefix=PREFIX, cni=cni, families=DUAL)
    namespaces = [plan.underlay_netns] + [n.netns for n in plan.nodes] + [p.netns for p in plan.pods]
    links = [plan.underlay_bridge] + [n.underlay_link for n in plan.nodes] + [n.underlay_peer for n in plan.nodes]
    links += [p.link for p in plan.pods] + [p.host_link for p in plan.pods] + [n.bridge for n in plan.nodes if n.bridge]
    assert all(name.startswith(PREFIX) for name in namespaces + links)
    assert all(len(name) <= MAX_LINK_NAME for name in links)
    assert len(set(namespaces)) == len(namespaces)
    assert len({p.host_link for p in plan.pods}) == len(plan.pods)


@pytest.mark.parametrize(
    ("cni", "v4", "v6"),
    [
        (Cni.BRIDGED, "10.244.1.2/24", "fd00:10:244:1::2/64"),
        (Cni.ROUTED, "10.244.1.2/32", "fd00:10:244:1::2/128"),
    ],
    ids=["bridged-shares-the-node-subnet", "routed-host-routes"],
)
def test_pod_prefix_length_follows_the_cni(cni: Cni, v4: str, v6: str) -> None:
    plan = plan_lab(standard(), prefix=PREFIX, cni=cni, families=DUAL)
    assert plan.pod_by_key["x/a"].addresses == (v4, v6)


def test_bridged_node_owns_gateway_addresses_and_routes_remote_subnets_via_the_underlay() -> None:
    plan = plan_lab(standard(), prefix=PREFIX, cni=Cni.BRIDGED, families=(Family.IPV4,))
    node = plan.node_by_name["node-1"]
    assert node.addresses == (ip("100.64.0.1"), ip("10.244.1.1"))
    assert [(r.destination, r.via, r.onlink) for r in node.routes if r.via] == [("10.244.2.0/24", "100.64.0.2", True)]
    assert {(r.destination, r.source) for r in node.routes if not r.via} == {
        ("100.64.0.2/32", "100.64.0.1"), ("10.96.0.0/16", "100.64.0.1"),
    }
    assert [(r.destination, r.via) for r in plan.pod_by_key["x/a"].routes] == [("default", "10.244.1.1")]


def test_routed_pods_go_through_the_link_local_gateway_and_nodes_route_each_pod() -> None:
    plan = plan_lab(standard(), prefix=PREFIX, cni=Cni.ROUTED, families=DUAL)
    pod = plan.pod_by_key["x/a"]
    assert sorted((r.destination, r.via, r.onlink) for r in pod.routes) == [
        ("default", "169.254.1.1", True),
        ("default", "fe80::1", True),
    ]
    local = {(r.destination, r.device) for r in plan.node_by_name["node-1"].routes}
    assert ("10.244.1.2/32", pod.host_link) in local and ("fd00:10:244:1::2/128", pod.host_link) in local
    assert plan.node_by_name["node-1"].gateways == ()


def test_pinned_addresses_are_kept_and_their_subnets_routed_to_their_node() -> None:
    cluster = Cluster(
        pods=(
            Pod("app", "web", Labels(), node="node-1", ips=(ip("10.80.1.10"), ip("fd00:80:1::10"))),
            Pod("app", "client", Labels(), node="node-2", ips=(ip("10.80.2.10"), ip("fd00:80:2::10"))),
        ),
        nodes=(Node("node-1"), Node("node-2")),
    )
    plan = plan_lab(cluster, prefix=PREFIX, cni=Cni.BRIDGED)
    assert plan.families == DUAL
    assert plan.pod_by_key["app/web"].addresses == ("10.80.1.10/24", "fd00:80:1::10/64")
    remote = {r.destination: r.via for r in plan.node_by_name["node-2"].routes}
    assert remote["10.80.1.0/24"] == "100.64.0.1" and remote["fd00:80:1::/64"] == "fd00:64::1"


def test_a_subnet_shared_by_two_nodes_is_routed_address_by_address() -> None:
    cluster = Cluster(
        pods=(
            Pod("x", "a", Labels(), node="node-1", ips=(ip("10.9.0.1"),)),
            Pod("x", "b", Labels(), node="node-2", ips=(ip("10.9.0.2"),)),
        )
    )
    plan = plan_lab(cluster, prefix=PREFIX, cni=Cni.BRIDGED)
    remote = {r.destination: r.via for r in plan.node_by_name["node-1"].routes}
    assert remote["10.9.0.2/32"] == "100.64.0.2" and "10.9.0.0/24" not in remote
    assert plan.pod_by_key["x/a"].addresses == ("10.9.0.1/32",)


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        (Cluster(pods=(Pod("x", "a", Labels(), ips=(ip("10.0.0.1"),)), Pod("x", "b", Labels(), ips=(ip("10.0.0.1"),)))),
         "pods x/a and x/b both have address 10.0.0.1"),
        (Cluster(pods=(Pod("x", "a", Labels(), node="node-1", ips=(ip("172.18.0.2"),)),),
                 nodes=(Node("node-1", (ip("172.18.0.2"),)),)),
         "pod x/a: address 172.18.0.2 is node node-1's"),
    ],
    ids=["duplicate-address", "pod-with-a-node-address"],
)
def test_clusters_the_lab_cannot_build_are_refused_with_the_pod_named(cluster: Cluster, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan_lab(cluster, prefix=PREFIX, cni=Cni.ROUTED)


def test_nodes_keep_the_addresses_the_cluster_gives_them_as_host_addresses() -> None:
    cluster = replace(standard(), nodes=(Node("node-1", (ip("172.18.0.2"), ip("fc00::2"))),
                                         Node("node-2", (ip("172.18.0.3"), ip("fc00::3")))))
    plan = plan_lab(cluster, prefix=PREFIX, cni=Cni.ROUTED, families=DUAL)
    assert plan.node_by_name["node-1"].underlay_addresses == ("172.18.0.2/32", "fc00::2/128")
    routes = {r.destination: r for r in plan.node_by_name["node-1"].routes}
    assert routes["172.18.0.3/32"].via is None and routes["172.18.0.3/32"].source == "172.18.0.2"
    assert routes["10.244.2.0/24"].via == "172.18.0.3"


def test_a_host_network_pod_is_its_nodes_namespace_with_its_nodes_addresses() -> None:
    cluster = Cluster(
        pods=(Pod("x", "a", Labels(), node="node-1"), Pod("x", "h", Labels(), node="node-2", host_network=True,
                                                          ips=(ip("172.18.0.3"),))),
        nodes=(Node("node-1", (ip("172.18.0.2"),)), Node("node-2", (ip("172.18.0.3"),))),
    )
    plan = plan_lab(cluster, prefix=PREFIX, cni=Cni.BRIDGED)
    host = plan.pod_by_key["x/h"]
    assert host.host_network and host.netns == plan.node_by_name["node-2"].netns
    assert host.addresses == ("172.18.0.3/32",) and host.routes == ()
    assert lab_cluster(cluster, plan).pod_by_key["x/h"].ips == (ip("172.18.0.3"),)


_PINNED = st.sampled_from([
    "100.64.0.1", "100.64.0.2", "10.96.0.1", "10.96.3.4", "198.18.0.9", "10.244.1.1", "10.244.2.2", "169.254.9.9",
    "192.168.0.1", "fd00:64::1", "fd00:10:96::1", "fd00:10:244:1::1", "fe80::9", "2001:db8::1",
]).map(ip)


@settings(max_examples=100, deadline=None)
@given(pinned=st.lists(_PINNED, min_size=1, max_size=6, unique=True), cni=st.sampled_from(list(Cni)))
def test_any_pinned_pod_address_is_kept_and_no_lab_address_or_service_range_collides(
    pinned: list[ipaddress.IPv4Address | ipaddress.IPv6Address], cni: Cni
) -> None:
    pods = tuple(Pod("x", f"p{i}", Labels(), node=f"node-{1 + i % 2}", ips=(a,)) for i, a in enumerate(pinned))
    plan = plan_lab(Cluster(pods=pods + (Pod("x", "free", Labels()),)), prefix=PREFIX, cni=cni)
    for pod, address in zip(pods, pinned):
        assert plan.pod_by_key[pod.key].address(Family.of(address)) == address
    pod_addresses = {ipaddress.ip_interface(a).ip for p in plan.pods for a in p.addresses}
    node_addresses = {a for n in plan.nodes for a in n.addresses}
    assert not pod_addresses & node_addresses
    assert len(pod_addresses) == sum(len(p.addresses) for p in plan.pods)
    for network in map(ipaddress.ip_network, plan.service_networks):
        assert not any(a in network for a in pod_addresses | node_addresses)


def test_lab_cluster_gives_the_compiler_the_lab_addresses() -> None:
    cluster = standard()
    plan = plan_lab(cluster, prefix=PREFIX, cni=Cni.BRIDGED)
    running = lab_cluster(cluster, plan)
    assert running.pod_by_key["x/b"].ips == (ip("10.244.2.2"),)
    assert running.pod_by_key["x/b"].node == "node-2"
    assert running.node_by_name["node-2"].addresses == (ip("100.64.0.2"), ip("10.244.2.1"))


@settings(max_examples=60)
@given(removed=st.sets(st.sampled_from(["x/a", "x/b", "y/c", "z/b"]), max_size=3), cni=st.sampled_from(list(Cni)))
def test_pod_names_depend_on_the_pod_alone_so_other_pods_survive_a_removal(removed: set[str], cni: Cni) -> None:
    cluster = standard()
    before = plan_lab(cluster, prefix=PREFIX, cni=cni, families=DUAL)
    after = plan_lab(
        replace(cluster, pods=tuple(p for p in cluster.pods if p.key not in removed)),
        prefix=PREFIX, cni=cni, families=DUAL,
    )
    assert {p.key for p in after.pods} == {p.key for p in cluster.pods} - removed
    for pod in after.pods:
        assert (pod.netns, pod.link, pod.host_link) == (
            before.pod_by_key[pod.key].netns,
            before.pod_by_key[pod.key].link,
            before.pod_by_key[pod.key].host_link,
        )


@settings(max_examples=40)
@given(cni=st.sampled_from(list(Cni)), families=st.sampled_from([(Family.IPV4,), (Family.IPV6,), DUAL]))
def test_assigned_addresses_are_unique_and_each_lies_in_a_subnet_of_its_node(
    cni: Cni, families: tuple[Family, ...]
) -> None:
    plan = plan_lab(standard(), prefix=PREFIX, cni=cni, families=families)
    addresses = [ipaddress.ip_interface(a).ip for p in plan.pods for a in p.addresses]
    assert len(addresses) == len(set(addresses)) == len(plan.pods) * len(families)
    for pod in plan.pods:
        index = int(pod.node.split("-")[1])
        for text in pod.addresses:
            address = ipaddress.ip_interface(text).ip
            expected = ipaddress.ip_network(
                f"10.244.{index}.0/24" if address.version == 4 else f"fd00:10:244:{index}::/64"
            )
            assert address in expected


@pytest.mark.parametrize("cni", list(Cni), ids=lambda c: c.value)
def test_plan_survives_the_state_file(cni: Cni) -> None:
    plan = plan_lab(standard(), prefix=PREFIX, cni=cni, families=DUAL)
    assert plan_from_json(plan_to_json(plan)) == plan
