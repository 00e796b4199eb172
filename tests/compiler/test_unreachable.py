"""Element removals left for after the kernel (``NodeCompiler.split_unreachable``): exactly
those of allow sets whose local pod has no dispatch entry after the step, and the ruleset
between the two parts decides every packet as the step's whole ruleset."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.compiler.delta import RulesetDelta, empty_ruleset, patch
from policyctl.compiler.evaluator import Evaluator, Packet
from policyctl.compiler.incremental import NodeCompiler
from policyctl.compiler.intervals import Interval
from policyctl.compiler.markedpeers import IdentityMark
from policyctl.compiler.render_json import to_document
from policyctl.compiler.ruleset import Element, Mode, Ruleset
from policyctl.policy.cluster import Cluster
from policyctl.policy.clustermodel import Action, ClusterNetworkPolicy, ClusterRule, Tier
from policyctl.policy.model import (
    Direction, IPAddress, LabelSelector, NetworkPolicy, Pod, PodPeer, SelectedNamespaces,
)
from tests.builders import cluster, ip_block, namespace, node, pod, pod_peer, policy, port, rule, selector
from tests.packets import HOOKS, arriving_marks, drawn_packets
from tests.strategies import cluster_events, clusters, labels, node_with_pods

MARKED = IdentityMark(0x000F0000)
LAYOUTS = pytest.mark.parametrize("mark", [None, MARKED], ids=["jumping", "marked"])

# node-1 runs x/web-1 and x/web-2, which x/allow-web isolates: api may reach them on 80, and
# 172.16.0.0/16 but 172.16.1.0/24 on 443 (the ipBlock sets); x/front-admin lets 172.16.0.0/16
# reach web-1 on 8443 too; x/api-1 and x/api-2 run on node-2.
WEB_1 = pod("x/web-1", {"app": "web", "role": "front"}, node="node-1", ips=["10.0.1.10"])
WEB_2 = pod("x/web-2", {"app": "web"}, node="node-1", ips=["10.0.1.11"])
API_1 = pod("x/api-1", {"app": "api"}, node="node-2", ips=["10.0.2.10"])
API_2 = pod("x/api-2", {"app": "api"}, node="node-2", ips=["10.0.2.11"])
WEB_2_ELSEWHERE = pod("x/web-2", {"app": "other"}, node="node-1", ips=["10.0.1.11"])
ALLOW_WEB = policy(
    "x/allow-web",
    {"app": "web"},
    ingress=[
        rule(pod_peer({"app": "api"}), ports=[port(80)]),
        rule(ip_block("172.16.0.0/16", "172.16.1.0/24"), ports=[port(443)]),
    ],
)
FRONT_ADMIN = policy("x/front-admin", {"role": "front"}, ingress=[rule(ip_block("172.16.0.0/16"), ports=[port(8443)])])
WEB_2_ADDRESS = int(ipaddress.ip_address("10.0.1.11"))


def _world(
    *, pods: tuple[Pod, ...] = (WEB_1, WEB_2, API_1, API_2), policies: tuple[NetworkPolicy, ...] = (ALLOW_WEB,)
) -> Cluster:
    return cluster(namespace("x"), node("node-1", "192.168.0.1"), node("node-2", "192.168.0.2"), *pods, *policies)


def _split(
    before: Cluster, after: Cluster, mark: IdentityMark | None = None
) -> tuple[Ruleset, RulesetDelta, RulesetDelta, Ruleset]:
    """(ruleset before, the part that decides, the part left for later, ruleset after) of one step."""
    compiler = NodeCompiler("node-1", identity_mark=mark)
    compiler.update(before)
    previous = compiler.ruleset
    now, later = compiler.split_unreachable(compiler.update(after))
    return previous, now, later, compiler.ruleset


@LAYOUTS
@pytest.mark.parametrize(
    "after",
    [
        pytest.param(_world(pods=(WEB_1, API_1, API_2)), id="a deleted local pod"),
        pytest.param(
            _world(pods=(WEB_1, WEB_2_ELSEWHERE, API_1, API_2)), id="a local pod that no policy selects any more"
        ),
    ],
)
def test_the_allow_elements_of_a_local_pod_without_dispatch_entry_are_left_for_later(
    mark: IdentityMark | None, after: Cluster
) -> None:
    previous, now, later, current = _split(_world(), after, mark)
    assert later.removed_elements
    assert dataclasses.replace(later, removed_elements=()) == RulesetDelta()
    assert all(WEB_2_ADDRESS in (e[0].low, e[1].low) for _, elements in later.removed_elements for e in elements)
    removed_sets = {name for name, _ in later.removed_elements}
    assert {"in-blocks-ports-v4"} < removed_sets
    assert now.removed_entries  # the dispatch entry goes in the step itself
    assert ("ingress-policed-v4", ((Interval(WEB_2_ADDRESS, WEB_2_ADDRESS),),)) in now.removed_elements
    assert patch(patch(previous, now), later) == current


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(_world(policies=(ALLOW_WEB, FRONT_ADMIN)), _world(), id="a policy gone from a pod still isolated"),
        pytest.param(_world(), _world(pods=(WEB_1, WEB_2, API_1)), id="a deleted peer pod"),
    ],
)
def test_removals_that_a_dispatched_pod_still_reaches_stay_in_the_step(before: Cluster, after: Cluster) -> None:
    previous, now, later, current = _split(before, after)
    assert now.removed_elements or now.removed_entries
    assert later == RulesetDelta()
    assert patch(previous, now) == current


API_BASELINE = ClusterNetworkPolicy(
    "api-baseline", Tier.BASELINE, 10, PodPeer(SelectedNamespaces(LabelSelector()), selector({"app": "api"})),
    (ClusterRule(Direction.INGRESS, 0, Action.DENY, (PodPeer(SelectedNamespaces(LabelSelector()), selector()),)),), (),
)
"""A cluster policy about node-2's pods: a step with it is compiled with tier chains."""


def test_nothing_is_left_for_later_after_a_step_with_cluster_policies() -> None:
    before, after = (
        dataclasses.replace(c, cluster_policies=(API_BASELINE,)) for c in (_world(), _world(pods=(WEB_1, API_1, API_2)))
    )
    previous, now, later, current = _split(before, after)
    assert any(name == "in-blocks-ports-v4" for name, _ in now.removed_elements)
    assert later == RulesetDelta()
    assert patch(previous, now) == current


@st.composite
def _departures(draw: st.DrawFn) -> list[Cluster]:
    """A random one-node cluster (every pod local), then 1-5 steps, half of them a pod
    leaving: deleted, or relabelled (out of every policy, or into others), the rest any
    event."""
    current = draw(clusters(max_pods=10, min_pods=4, max_nodes=1, min_policies=2, addressless=True))
    history = [current]
    for _ in range(draw(st.integers(1, 5))):
        if current.pods and draw(st.booleans()):
            leaving = draw(st.sampled_from(current.pods))
            relabelled = dataclasses.replace(leaving, labels=draw(labels()))
            kept = [p for p in current.pods if p is not leaving]
            pods = kept + [relabelled] if draw(st.booleans()) else kept
            current = dataclasses.replace(current, pods=tuple(sorted(pods, key=lambda p: p.key)))
        else:
            current = draw(cluster_events(current))
        history.append(current)
    return history


def _packets_at(element: Element, peers: list[IPAddress]) -> Iterator[Packet]:
    """Packets whose local or peer address is an address field of ``element`` (the first, or
    the first two of the two-address ipBlock layouts), on its protocol and port: the packets
    that could meet the element if anything still reached it."""
    addresses = element[:2] if len(element) in (2, 4) else element[:1]
    protocol, dport = (element[-2].low, element[-1].low) if len(element) >= 3 else (6, 80)
    for field in addresses:
        if not field.is_single:
            continue
        local = ipaddress.ip_address(field.low)
        others = [p for p in peers if p.version == local.version] + [
            ipaddress.ip_address(f.low) for f in addresses if f is not field
        ]
        for other in others:
            yield Packet(other, local, protocol, dport)
            yield Packet(local, other, protocol, dport)


def _addresses(snapshot: Cluster) -> list[IPAddress]:
    return sorted({a for p in snapshot.pods for a in p.ips} | {a for n in snapshot.nodes for a in n.addresses},
                  key=lambda a: (a.version, a))


@LAYOUTS
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_ruleset_between_the_two_parts_decides_every_packet_as_the_step(
    mark: IdentityMark | None, data: st.DataObject
) -> None:
    """Packets at every element left for later (both ways, from every address of the cluster
    before and after) and drawn ones, through the evaluator, on every hook."""
    history = data.draw(_departures(), label="history")
    name = node_with_pods(history)
    compiler = NodeCompiler(name, identity_mark=mark)
    previous = empty_ruleset("policyctl", name, Mode.ENFORCE)
    before = history[0]
    for snapshot in history:
        delta = compiler.update(snapshot)
        now, later = compiler.split_unreachable(delta)
        current = patch(previous, delta)
        assert dataclasses.replace(later, removed_elements=()) == RulesetDelta()
        between = patch(previous, now)
        assert patch(between, later) == current
        if not later.empty:
            peers = _addresses(before) + _addresses(snapshot)
            packets = [p for _, elements in later.removed_elements for e in elements for p in _packets_at(e, peers)]
            packets += [p for _, p in drawn_packets(data, before, 4, mark=data.draw(arriving_marks(MARKED.mask)))]
            built, whole = Evaluator(to_document(between)), Evaluator(to_document(current))
            for packet in packets:
                for hook in HOOKS:
                    a, b = built.evaluate(hook, packet), whole.evaluate(hook, packet)
                    assert (a.accepted, a.logs, a.mark) == (b.accepted, b.logs, b.mark), (hook, packet)
        previous, before = current, snapshot
