"""The new-pod window: unknown addresses of a node's pod range are denied after the dispatch
when the option is on, the node publishes pod CIDRs and some policy could select a new pod;
known pods (isolated or not), the node and the window's ``allow`` setting are unaffected."""

from __future__ import annotations

import dataclasses
import ipaddress
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.compiler.compile import compile_node
from policyctl.compiler.delta import patch
from policyctl.compiler.engine import CompiledCluster
from policyctl.compiler.evaluator import Evaluator, Packet
from policyctl.compiler.incremental import NodeCompiler
from policyctl.compiler.intervals import Interval
from policyctl.compiler.newpods import NewPodWindow, unknown_elements
from policyctl.compiler.render_json import render_json
from policyctl.compiler.render_text import render_text
from policyctl.compiler.ruleset import Mode, Ruleset
from policyctl.policy.cluster import Cluster
from policyctl.policy.model import Family, IPAddress, Node, Pod, Protocol
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from tests.builders import cluster, node, pod, policy, rule
from tests.compiler.test_incremental import tiered_histories
from tests.strategies import cluster_families, cluster_histories, clusters

DENY, ALLOW = NewPodWindow.DENY, NewPodWindow.ALLOW
CIDRS = (ipaddress.ip_network("10.244.1.0/24"), ipaddress.ip_network("fd00:244:1::/64"))
GATEWAY = ipaddress.ip_address("10.244.1.1")
NODE_IP = ipaddress.ip_address("192.168.0.1")
UNKNOWN = ipaddress.ip_address("10.244.1.77")
REMOTE = ipaddress.ip_address("10.244.2.5")


def with_cidrs(snapshot: Cluster, *cidrs: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Cluster:
    return dataclasses.replace(
        snapshot, nodes=tuple(dataclasses.replace(n, pod_cidrs=cidrs) if n.name == "n1" else n for n in snapshot.nodes)
    )


BASE = cluster(
    node("n1", NODE_IP),
    node("n2", "192.168.0.2"),
    pod("a/db", {"app": "db"}, node="n1", ips=["10.244.1.10"]),
    pod("a/open", {"app": "open"}, node="n1", ips=["10.244.1.11"]),
    pod("a/host", {"app": "host"}, node="n1", ips=[NODE_IP], host_network=True),
    pod("a/web", {"app": "web"}, node="n2", ips=[REMOTE]),
    policy("a/db", {"app": "db"}, ingress=[rule()]),
)
"""``a/db`` isolated for ingress (every source allowed), ``a/open`` selected by nothing."""


@pytest.mark.parametrize(
    ("snapshot", "window"),
    [
        (with_cidrs(BASE, *CIDRS), ALLOW),
        (BASE, DENY),
        (with_cidrs(dataclasses.replace(BASE, policies=()), *CIDRS), DENY),
    ],
    ids=["option-off", "no-pod-cidrs", "no-policy-could-select"],
)
def test_without_an_active_window_the_ruleset_is_byte_identical_to_the_plain_compile(
    snapshot: Cluster, window: NewPodWindow
) -> None:
    plain = compile_node(dataclasses.replace(snapshot, nodes=BASE.nodes), "n1")
    assert render_json(compile_node(snapshot, "n1", new_pods=window)) == render_json(plain)


def test_the_unknown_set_is_the_pod_range_minus_every_known_pod_address() -> None:
    ruleset = compile_node(with_cidrs(BASE, CIDRS[0]), "n1", new_pods=DENY)
    (unknown,) = [s for s in ruleset.sets if s.name.startswith("new-pods")]
    low, high = int(CIDRS[0].network_address), int(CIDRS[0].broadcast_address)
    assert unknown.name == "new-pods-v4" and unknown.interval
    assert [e for (e,) in unknown.elements] == [Interval(low, low + 9), Interval(low + 12, high)]


@pytest.mark.parametrize(
    ("cidrs", "known", "expected"),
    [
        (["10.0.0.0/30"], [], [(0, 3)]),
        (["10.0.0.0/30"], ["10.0.0.0", "10.0.0.3"], [(1, 2)]),
        (["10.0.0.0/30"], ["10.0.0.1", "10.0.0.2"], [(0, 0), (3, 3)]),
        (["10.0.0.0/31"], ["10.0.0.0", "10.0.0.1"], []),
        (["10.0.0.0/30"], ["10.0.0.9", "fd00::1"], [(0, 3)]),
    ],
    ids=["no-pods", "ends-known", "middle-known", "all-known", "outside-and-other-family"],
)
def test_unknown_elements_leave_a_hole_at_each_known_address(
    cidrs: list[str], known: list[str], expected: list[tuple[int, int]]
) -> None:
    base = int(ipaddress.ip_address("10.0.0.0"))
    found = unknown_elements([ipaddress.ip_network(c) for c in cidrs], [ipaddress.ip_address(a) for a in known],
                             Family.IPV4)  # fmt: skip
    assert [(e.low - base, e.high - base) for (e,) in found] == expected


def test_the_drop_follows_each_dispatch_and_spares_the_hosts_own_addresses() -> None:
    text = render_text(compile_node(with_cidrs(BASE, *CIDRS), "n1", new_pods=DENY))
    for family in ("ip", "ip6"):
        assert f"{family} saddr @new-pods-v{4 if family == 'ip' else 6} fib saddr type != local counter drop" in text
        assert f"{family} daddr @new-pods-v{4 if family == 'ip' else 6} fib daddr type != local counter drop" in text
    chains = {c.name: c for c in compile_node(with_cidrs(BASE, *CIDRS), "n1", new_pods=DENY).chains}
    for name in ("egress", "ingress", "input"):
        rules = [str(r.statements) for r in chains[name].rules]
        last_dispatch = max(i for i, r in enumerate(rules) if "VmapLookup" in r)
        assert all("new-pods" in r for r in rules[last_dispatch + 1 :]) and len(rules) - last_dispatch - 1 == 4


def _evaluator(snapshot: Cluster, mode: Mode = Mode.ENFORCE) -> Evaluator:
    document = json.loads(render_json(compile_node(snapshot, "n1", mode=mode, new_pods=DENY)))
    return Evaluator(document, local_addresses=(NODE_IP, GATEWAY))


@pytest.mark.parametrize(
    ("hook", "source", "destination", "accepted"),
    [
        ("postrouting", UNKNOWN, REMOTE, False),
        ("input", UNKNOWN, NODE_IP, False),
        ("postrouting", REMOTE, UNKNOWN, False),
        ("postrouting", "10.244.1.11", UNKNOWN, False),
        ("postrouting", NODE_IP, UNKNOWN, True),
        ("postrouting", GATEWAY, "10.244.1.11", True),
        ("postrouting", GATEWAY, UNKNOWN, False),
        ("postrouting", "10.244.1.11", REMOTE, True),
        ("postrouting", REMOTE, "10.244.1.11", True),
        ("postrouting", REMOTE, "10.244.1.10", True),
        ("postrouting", "203.0.113.9", "10.244.1.11", True),
        ("postrouting", "10.244.1.11", "10.244.3.9", True),
    ],
    ids=[
        "unknown-egress", "unknown-to-node", "to-unknown", "known-open-pod-to-unknown", "node-to-unknown",
        "gateway-to-known", "gateway-to-unknown", "open-pod-egress", "to-open-pod", "to-isolated-pod-allowed",
        "outside-to-open-pod", "to-another-nodes-range",
    ],
)
def test_packets_meet_the_window_only_at_unknown_addresses_of_this_nodes_range(
    hook: str, source: str | IPAddress, destination: str | IPAddress, accepted: bool
) -> None:
    packet = Packet(ipaddress.ip_address(source), ipaddress.ip_address(destination), 6, 80)
    assert _evaluator(with_cidrs(BASE, *CIDRS)).evaluate(hook, packet).accepted is accepted


def test_audit_mode_counts_an_unknown_address_and_lets_it_pass() -> None:
    snapshot = with_cidrs(BASE, *CIDRS)
    (egress,) = [c for c in compile_node(snapshot, "n1", mode=Mode.AUDIT, new_pods=DENY).chains if c.name == "egress"]
    counted = next(i for i, r in enumerate(egress.rules) if "new-pods-v4" in str(r.statements))
    outcome = _evaluator(snapshot, Mode.AUDIT).evaluate("postrouting", Packet(UNKNOWN, REMOTE, 6, 80))
    assert outcome.accepted and ("egress", counted) in outcome.trace


def test_a_pod_becoming_known_leaves_the_set_and_meets_its_policy() -> None:
    before = with_cidrs(BASE, *CIDRS)
    after = dataclasses.replace(before, pods=before.pods + (pod("a/new", {"app": "db"}, node="n1", ips=[UNKNOWN]),))
    packet = Packet(REMOTE, UNKNOWN, 6, 80)
    assert not _evaluator(before).evaluate("postrouting", packet).accepted
    assert _evaluator(after).evaluate("postrouting", packet).accepted
    compiler = NodeCompiler("n1", new_pods=DENY)
    first = compiler.update(before)
    delta = compiler.update(after)
    assert patch(patch(Ruleset("policyctl", "n1", Mode.ENFORCE, (), (), ()), first), delta) == compile_node(
        after, "n1", new_pods=DENY
    )
    low, high, hole = int(CIDRS[0].network_address), int(CIDRS[0].broadcast_address), int(UNKNOWN)
    assert dict(delta.removed_elements)["new-pods-v4"] == ((Interval(low + 12, high),),)
    assert dict(delta.added_elements)["new-pods-v4"] == ((Interval(low + 12, hole - 1),), (Interval(hole + 1, high),))
    assert "new-pods-v6" not in dict(delta.added_elements) and not any(c.is_base for c in delta.chains)


def test_an_address_two_pods_hold_stays_known_until_the_last_of_them_is_gone() -> None:
    """A pod replaced at the same address (the old one still listed) holds it twice: the
    first compile counts both, so the first departure leaves the address a hole."""
    twin = pod("a/twin", {"app": "open"}, node="n1", ips=["10.244.1.11"])
    both = with_cidrs(dataclasses.replace(BASE, pods=BASE.pods + (twin,)), *CIDRS)
    one = dataclasses.replace(both, pods=tuple(p for p in both.pods if p.key != "a/open"))
    none = dataclasses.replace(one, pods=tuple(p for p in one.pods if p.key != "a/twin"))
    compiler = NodeCompiler("n1", new_pods=DENY)
    previous = Ruleset("policyctl", "n1", Mode.ENFORCE, (), (), ())
    changes: tuple[bool | None, ...] = (None, False, True)
    for snapshot, changed in zip((both, one, none), changes):
        delta = compiler.update(snapshot)
        expected = compile_node(snapshot, "n1", new_pods=DENY)
        assert compiler.ruleset == expected and patch(previous, delta) == expected
        if changed is not None:
            assert ("new-pods-v4" in dict(delta.added_elements)) is changed
        previous = expected


def _with_node_ranges(snapshot: Cluster, cache: dict[int, Node]) -> Cluster:
    """Every node ``node-<n>`` with the ranges its pods' addresses come from (``tests.strategies``);
    an unchanged node keeps one object across snapshots."""

    def ranged(n: Node) -> Node:
        index = int(n.name.rsplit("-", 1)[1])
        cidrs = (ipaddress.ip_network(f"10.0.{index}.0/24"), ipaddress.ip_network(f"fd00:10:{index}::/64"))
        return cache.setdefault(id(n), dataclasses.replace(n, pod_cidrs=cidrs))

    return dataclasses.replace(snapshot, nodes=tuple(ranged(n) for n in snapshot.nodes))


HISTORIES = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HISTORIES
@given(cluster_histories(steps=6), st.sampled_from(list(Mode)))
def test_every_incremental_step_equals_a_whole_compile_and_its_delta_patches(
    history: list[Cluster], mode: Mode
) -> None:
    cache: dict[int, Node] = {}
    snapshots = [_with_node_ranges(s, cache) for s in history]
    name = snapshots[0].nodes[0].name
    compiler = NodeCompiler(name, table="t", mode=mode, new_pods=DENY)
    previous = Ruleset("t", name, mode, (), (), ())
    for snapshot in snapshots:
        delta = compiler.update(snapshot)
        expected = compile_node(snapshot, name, table="t", mode=mode, new_pods=DENY)
        assert compiler.ruleset == expected
        assert patch(previous, delta).sets == expected.sets
        assert patch(previous, delta).chains == expected.chains
        assert delta.empty is (previous == expected)
        previous = expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(max_pods=5, max_policies=3))
def test_with_the_window_closed_known_pods_and_nodes_still_get_the_semantics_verdict(snapshot: Cluster) -> None:
    """The semantics decide connections of known pods and nodes; for them the window changes
    nothing (an address that is no pod, inside some node's range, is the window's business)."""
    snapshot = _with_node_ranges(snapshot, {})
    compiled = CompiledCluster(snapshot, new_pods=DENY)
    for family in cluster_families(snapshot):
        ends: list[Pod | Node] = [*snapshot.pods, *snapshot.nodes]
        for source in snapshot.pods:
            for destination in ends:
                for a, b in ((source, destination), (destination, source)):
                    connection = Connection(a, b, Protocol.TCP, 80, family)
                    assert compiled.allowed(connection) is evaluate(snapshot, connection).allowed, connection


@HISTORIES
@given(tiered_histories())
def test_histories_with_cluster_policies_keep_the_window_of_a_whole_compile(history: list[Cluster]) -> None:
    """Cluster policies alone keep the window closed, and the whole-compile path the incremental
    compiler takes with them carries the same sets and rules."""
    cache: dict[int, Node] = {}
    snapshots = [_with_node_ranges(s, cache) for s in history]
    name = snapshots[0].nodes[0].name
    compiler = NodeCompiler(name, table="t", new_pods=DENY)
    previous = Ruleset("t", name, Mode.ENFORCE, (), (), ())
    for snapshot in snapshots:
        delta = compiler.update(snapshot)
        expected = compile_node(snapshot, name, table="t", new_pods=DENY)
        assert compiler.ruleset == expected
        assert patch(previous, delta).sets == expected.sets and patch(previous, delta).chains == expected.chains
        assert any(s.name.startswith("new-pods") for s in expected.sets) is bool(
            snapshot.policies or snapshot.cluster_policies
        )
        previous = expected
