"""Removals left for after the kernel (``NodeCompiler.split_unreachable``): the element
removals of allow sets whose local pod has no dispatch entry after the step, the identity
chains the step removes (with their entry chains and sets), and in the marked layout the rules
of the numbers it frees; the ruleset between the two parts decides every packet as the step's
whole ruleset."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.compiler.delta import RulesetDelta, empty_ruleset, patch
from policyctl.compiler.evaluator import Evaluator, Packet
from policyctl.compiler.incremental import NodeCompiler
from policyctl.compiler.intervals import Interval
from policyctl.compiler import markedpeers
from policyctl.compiler.markedpeers import TIDY_ELEMENTS, IdentityMark
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


ADMINS = tuple(pod(f"x/admin-{i}", {"role": "admin"}, node="node-2", ips=[f"10.0.2.{20 + i}"]) for i in range(9))
ADMIN_TOO = policy("x/admin-too", {"app": "web"}, ingress=[rule(pod_peer({"role": "admin"}), ports=[port(8080)])])
FOREIGN = MARKED.mask | 0x4000
"""A mark with every bit of the layout's set by someone else: the path without marks."""


def _between_decides_as_after(between: Ruleset, current: Ruleset, packets: list[Packet]) -> None:
    built, whole = Evaluator(to_document(between)), Evaluator(to_document(current))
    for packet in packets:
        for hook in HOOKS:
            a, b = built.evaluate(hook, packet), whole.evaluate(hook, packet)
            assert (a.accepted, a.logs, a.mark) == (b.accepted, b.logs, b.mark), (hook, packet)


def _tree(name: str) -> bool:
    return name.startswith(("in-foreign", "out-foreign"))


@LAYOUTS
@pytest.mark.parametrize("admins", [1, 9], ids=["its only peer: the number is freed", "nine peers: it is retired"])
def test_the_chains_of_an_identity_gone_with_its_peers_are_removed_after_the_kernel(
    mark: IdentityMark | None, admins: int
) -> None:
    """x/admin-* deleted: their identity chain (with its entry chain) and its sets go in the
    second part, and the peer-map or identity-map entries that led there in the first. In the
    marked layout one peer's bits go at once, so its number is freed and its rule in the tree
    without marks goes in the second part; nine peers' bits (more than TIDY_ELEMENTS) stay
    under a retired number, whose rule must return at once: the first part empties the chain
    the rule goes to instead of rewriting the tree."""
    before = _world(pods=(WEB_1, WEB_2, API_1, API_2, *ADMINS[:admins]), policies=(ALLOW_WEB, ADMIN_TOO))
    after = _world(policies=(ALLOW_WEB, ADMIN_TOO))
    previous, now, later, current = _split(before, after, mark)
    gone = [n for n in later.removed_chains if n.startswith("in-from-")]
    assert len(gone) == 1
    assert gone[0] in {c.name for c in previous.chains} - {c.name for c in current.chains}
    assert not {*now.removed_chains, *now.removed} & {*later.removed_chains, *later.removed}
    assert now.removed_entries
    assert not any(_tree(c.name) for c in now.chains) and not any(_tree(n) for n in now.removed_chains)
    identity_sets = {s.name for s in previous.sets if s.name.startswith(f"{gone[0]}-")}
    if mark is not None and admins > 1:
        assert [c for c in now.chains if c.name == gone[0]] == [
            dataclasses.replace(c, rules=()) for c in previous.chains if c.name == gone[0]]
        assert {n for n in later.removed_chains if not _tree(n)} == {gone[0]}
        assert identity_sets <= set(now.removed)
        assert later.chains and all(_tree(c.name) for c in later.chains)
    elif mark is not None:
        assert {n for n in later.removed_chains if not _tree(n)} == {gone[0], gone[0].replace("in-", "in-marked-", 1)}
        assert set(later.removed) == identity_sets != set()
        assert any(_tree(n) for n in later.removed_chains) or later.chains
    else:
        assert later.removed_chains == (gone[0],) and not later.chains
        assert set(later.removed) == identity_sets != set()
    between = patch(previous, now)
    assert patch(between, later) == current
    packets = [
        Packet(peer, local, 6, port_number, mark=arriving)
        for peer in (*API_1.ips, *API_2.ips, *(a for p in ADMINS for a in p.ips)) for local in (*WEB_1.ips, *WEB_2.ips)
        for port_number in (80, 8080) for arriving in (0, FOREIGN)
    ]
    _between_decides_as_after(between, current, packets)


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


@pytest.mark.parametrize(
    ("mark", "tidy"),
    [(None, TIDY_ELEMENTS), (MARKED, TIDY_ELEMENTS), (MARKED, 0)],
    ids=["jumping", "marked", "marked, departing peers always retired"],
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_ruleset_between_the_two_parts_decides_every_packet_as_the_step(
    mark: IdentityMark | None, tidy: int, data: st.DataObject
) -> None:
    """Packets at every element left for later (both ways, from every address of the cluster
    before and after), from every peer address to every local pod with and without the
    layout's bits when chains are left for later, and drawn ones, through the evaluator, on
    every hook. With ``tidy`` 0 the peers that leave keep their bits under a retired number
    however few they are (the path of the larger groups, which a ten-pod cluster rarely has)."""
    with mock.patch.object(markedpeers, "TIDY_ELEMENTS", tidy):
        _between_decides_every_packet(mark, data)


def _between_decides_every_packet(mark: IdentityMark | None, data: st.DataObject) -> None:
    history = data.draw(_departures(), label="history")
    name = node_with_pods(history)
    compiler = NodeCompiler(name, identity_mark=mark)
    previous = empty_ruleset("policyctl", name, Mode.ENFORCE)
    before = history[0]
    for snapshot in history:
        delta = compiler.update(snapshot)
        now, later = compiler.split_unreachable(delta)
        current = patch(previous, delta)
        assert _only_removals_and_trees(later)
        between = patch(previous, now)
        assert patch(between, later) == current
        if not later.empty:
            peers = _addresses(before) + _addresses(snapshot)
            packets = [p for _, elements in later.removed_elements for e in elements for p in _packets_at(e, peers)]
            if later.removed_chains:
                locals_ = [a for p in snapshot.pods if p.node == name for a in p.ips]
                arriving = data.draw(st.sampled_from([0, FOREIGN, *range(1 << 16, MARKED.mask + 1, 1 << 16)]))
                packets += [Packet(peer, local, 6, 80, mark=arriving)
                            for peer in peers for local in locals_ if peer.version == local.version]
            packets += [p for _, p in drawn_packets(data, before, 4, mark=data.draw(arriving_marks(MARKED.mask)))]
            _between_decides_as_after(between, current, packets)
        previous, before = current, snapshot


def _only_removals_and_trees(later: RulesetDelta) -> bool:
    """What the second part may hold: removals, and chains of the tree without marks."""
    return (not (later.sets or later.maps or later.added_elements or later.added_entries or later.removed_entries)
            and all(_tree(c.name) for c in later.chains))
