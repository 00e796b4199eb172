"""The layout of the cluster policy tiers in a node's ruleset (``compiler/tiers.py``): which
chains and sets a pod gets, and what the evaluator decides with them, on small hand-made
clusters. The random-cluster agreement with the oracle is ``test_differential_tiers.py``."""

from __future__ import annotations

import dataclasses
import ipaddress
import json

import pytest

from policyctl.compiler.compile import compile_node
from policyctl.compiler.engine import CompiledCluster
from policyctl.compiler.evaluator import Evaluator, Packet
from policyctl.compiler.intervals import address_interval
from policyctl.compiler.render_json import render_json
from policyctl.compiler.ruleset import Counter, Goto, Log, Verdict
from policyctl.policy.clustermodel import (
    Action,
    ClusterNetworkPolicy,
    ClusterRule,
    DomainNamesPeer,
    NodesPeer,
    Tier,
)
from policyctl.policy.model import (
    Direction,
    Family,
    Labels,
    LabelSelector,
    PodPeer,
    PortMatch,
    Protocol,
    SelectedNamespaces,
)
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection

from tests.builders import (
    cluster,
    container_port,
    namespace,
    node,
    pod,
    policy,
    selector,
)

EVERYONE = PodPeer(SelectedNamespaces(LabelSelector()), LabelSelector())


def _peer(labels: dict[str, str]) -> PodPeer:
    return PodPeer(SelectedNamespaces(LabelSelector()), selector(labels))


def _cnp(name: str, tier: Tier, priority: int, subject: PodPeer, *rules: ClusterRule) -> ClusterNetworkPolicy:
    ingress = tuple(r for r in rules if r.direction is Direction.INGRESS)
    egress = tuple(r for r in rules if r.direction is Direction.EGRESS)
    return ClusterNetworkPolicy(name, tier, priority, subject, ingress, egress)


def _rule(
    direction: Direction, index: int, action: Action, *peers: object, ports: tuple[PortMatch, ...] = ()
) -> ClusterRule:
    return ClusterRule(direction, index, action, tuple(peers), ports)  # type: ignore[arg-type]


BASE = cluster(
    namespace("x"),
    node("n1", "192.168.0.1"),
    node("n2", "192.168.0.2"),
    pod("x/a", {"app": "a"}, node="n1", ips=["10.0.1.1"], ports=[container_port(8080, "TCP", "http")]),
    pod("x/b", {"app": "b"}, node="n2", ips=["10.0.2.1"], ports=[container_port(9090, "TCP", "http")]),
    pod("x/h", {"app": "h"}, node="n2", ips=["192.168.0.2"], host_network=True),
)


def _with(*policies: ClusterNetworkPolicy, network_policies: tuple[object, ...] = ()) -> Cluster:
    ordered = tuple(sorted(policies, key=lambda p: (p.tier is not Tier.ADMIN, p.order)))
    base = BASE
    if network_policies:
        base = cluster(*BASE.namespaces, *BASE.nodes, *BASE.pods, *network_policies)  # type: ignore[arg-type]
    nodes = tuple(
        dataclasses.replace(n, labels=Labels({"role": "worker"} if n.name == "n2" else {})) for n in base.nodes
    )
    return dataclasses.replace(base, nodes=nodes, cluster_policies=ordered)


def _allowed(c: Cluster, source: str, destination: str, number: int = 80) -> tuple[bool, bool]:
    """(compiled, oracle) for a TCP connection between two pods."""
    pods = {p.key: p for p in c.pods}
    connection = Connection(pods[source], pods[destination], Protocol.TCP, number, Family.IPV4)
    return CompiledCluster(c).allowed(connection), evaluate(c, connection).allowed



def _a_to_b(name: str, tier: Tier, priority: int, action: Action) -> ClusterNetworkPolicy:
    return _cnp(name, tier, priority, _peer({"app": "a"}), _rule(Direction.EGRESS, 0, action, _peer({"app": "b"})))


ADMIN_DENY_B = _a_to_b("deny-b", Tier.ADMIN, 20, Action.DENY)
ADMIN_ACCEPT_B = _a_to_b("accept-b", Tier.ADMIN, 10, Action.ACCEPT)
ADMIN_PASS_B = _a_to_b("pass-b", Tier.ADMIN, 10, Action.PASS)
BASELINE_DENY_B = _a_to_b("base-deny-b", Tier.BASELINE, 1, Action.DENY)
ISOLATE_A = policy("x/isolate-a", {"app": "a"}, types=["Egress"])


@pytest.mark.parametrize(
    ("policies", "network_policies", "allowed"),
    [
        pytest.param((ADMIN_DENY_B,), (), False, id="an-admin-deny-drops"),
        pytest.param((ADMIN_ACCEPT_B, ADMIN_DENY_B), (), True, id="a-lower-priority-accept-wins-over-a-deny"),
        pytest.param((ADMIN_PASS_B, ADMIN_DENY_B), (), True, id="pass-skips-the-rest-of-the-admin-tier"),
        pytest.param((ADMIN_PASS_B, ADMIN_DENY_B), (ISOLATE_A,), False, id="pass-hands-over-to-networkpolicy"),
        pytest.param((ADMIN_ACCEPT_B,), (ISOLATE_A,), True, id="an-admin-accept-overrides-networkpolicy"),
        pytest.param((BASELINE_DENY_B,), (), False, id="a-baseline-deny-drops-a-pod-networkpolicy-leaves-alone"),
        pytest.param((BASELINE_DENY_B, ADMIN_PASS_B), (), False, id="pass-reaches-the-baseline-tier"),
    ],
)
def test_tier_precedence_compiles_to_the_oracles_verdict(
    policies: tuple[ClusterNetworkPolicy, ...], network_policies: tuple[object, ...], allowed: bool
) -> None:
    assert _allowed(_with(*policies, network_policies=network_policies), "x/a", "x/b") == (allowed, allowed)


def test_a_pass_goes_to_a_chain_holding_the_lower_stage_and_a_deny_logs_then_drops() -> None:
    ruleset = compile_node(_with(ADMIN_PASS_B, ADMIN_DENY_B, network_policies=(ISOLATE_A,)), "n1")
    pod_chain = next(c for c in ruleset.chains if any(isinstance(s, Goto) and s.target.endswith("-pass")
                                                      for r in c.rules for s in r.statements))
    lower = ruleset.chain(f"{pod_chain.name}-pass").rules
    assert pod_chain.rules[-len(lower):] == lower and lower[-1].statements == (Counter(), Verdict.DROP)
    log, drop = pod_chain.rules[1:3]
    assert isinstance(log.statements[-1], Log) and log.statements[-1].prefix == "policyctl drop egress x/a "
    assert drop.statements[1:] == (Counter(), Verdict.DROP) and drop.statements[0] == log.statements[0]
    assert drop.comment.startswith("ClusterNetworkPolicy/deny-b egress[0] deny, Admin tier priority 20")


def test_a_domain_names_peer_leaves_a_counter_that_says_it_is_not_enforced() -> None:
    domains = _cnp("dns", Tier.ADMIN, 1, _peer({"app": "a"}),
                   _rule(Direction.EGRESS, 0, Action.ACCEPT, DomainNamesPeer(("example.com",))))
    ruleset = compile_node(_with(domains), "n1")
    notes = [r for c in ruleset.chains for r in c.rules if r.statements == (Counter(),)]
    assert [n.comment for n in notes] == [
        'ClusterNetworkPolicy/dns egress[0]: domainNames example.com not enforced: names are not resolved'
    ]


def test_an_ingress_named_port_resolves_on_each_local_pod() -> None:
    http = _cnp("http", Tier.ADMIN, 1, EVERYONE,
                _rule(Direction.INGRESS, 0, Action.DENY, EVERYONE, ports=(PortMatch(Protocol.TCP, "http"),)))
    c = _with(http)
    a_sets = {s.name: s for s in compile_node(c, "n1").sets if "-tier-" in s.name}
    b_sets = {s.name: s for s in compile_node(c, "n2").sets if "-tier-" in s.name}
    assert [e[2].low for s in a_sets.values() for e in s.elements] == [8080, 8080]
    assert [e[2].low for s in b_sets.values() for e in s.elements] == [9090, 9090]
    assert _allowed(c, "x/a", "x/b", 9090) == (False, False)
    assert _allowed(c, "x/a", "x/b", 8080) == (True, True)


def test_a_nodes_peer_holds_the_selected_nodes_and_their_host_network_pods() -> None:
    nodes = _cnp("nodes", Tier.ADMIN, 1, _peer({"app": "a"}),
                 _rule(Direction.EGRESS, 0, Action.DENY, NodesPeer(selector({"role": "worker"}))))
    ruleset = compile_node(_with(nodes), "n1")
    (tier_set,) = [s for s in ruleset.sets if "-tier-" in s.name]
    assert tier_set.elements == ((address_interval(ipaddress.ip_address("192.168.0.2")),),)
    document = json.loads(render_json(ruleset))
    packet = Packet(ipaddress.ip_address("10.0.1.1"), ipaddress.ip_address("192.168.0.2"), protocol=6, dport=80)
    assert not Evaluator(document).evaluate("postrouting", packet).accepted
