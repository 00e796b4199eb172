"""The matchers every engine calls (policy.matchers), row by row against the API text they cite;
and hints found only when read, equal to what an eager search gives."""

from __future__ import annotations

import ipaddress

import pytest
from policyctl.policy import hints as hints_module
from policyctl.policy import matchers
from policyctl.policy.clustermodel import Action, ClusterNetworkPolicy, ClusterRule, Tier
from policyctl.policy.model import (
    Direction,
    Labels,
    OwnNamespace,
    PodPeer,
    Protocol,
    SelectedNamespaces,
    undefined_namespace_labels,
)
from policyctl.policy.semantics import evaluate

from tests.builders import connect, container_port, pod, pod_peer, policy, port, rule, selector, standard_cluster

WEB = pod("x/web", {"app": "web"}, ports=[container_port(8080, "TCP", "http"), container_port(53, "UDP", "dns"),
                                         container_port(8081, "TCP", "http")])  # fmt: skip
HOST = pod("x/host", {"app": "web"}, host_network=True, ports=[container_port(8080, "TCP", "http")])
PROD = Labels({"env": "prod", "kubernetes.io/metadata.name": "y"})

SCOPE_ROWS = [
    # "selects particular Pods in the same namespace as the NetworkPolicy"
    pytest.param(OwnNamespace("x"), "x", Labels(), True, id="own-namespace-admits-its-own"),
    pytest.param(OwnNamespace("x"), "y", PROD, False, id="own-namespace-ignores-labels-of-another"),
    # "if present but empty, it selects all namespaces"
    pytest.param(SelectedNamespaces(selector({})), "y", Labels(), True, id="empty-namespace-selector-admits-all"),
    pytest.param(SelectedNamespaces(selector({"env": "prod"})), "y", PROD, True, id="namespace-selector-reads-labels"),
    pytest.param(SelectedNamespaces(selector({"env": "prod"})), "x", Labels(), False, id="namespace-selector-misses"),
]


@pytest.mark.parametrize(("scope", "namespace", "labels", "expected"), SCOPE_ROWS)
def test_scope_matches_per_the_api(scope, namespace, labels, expected):
    assert matchers.scope_matches(scope, namespace, labels) is expected


PEER_ROWS = [
    pytest.param(pod_peer({"app": "web"}, OwnNamespace("x")), WEB, True, id="pod-selector-in-own-namespace"),
    pytest.param(pod_peer({"app": "db"}, OwnNamespace("x")), WEB, False, id="pod-selector-fails"),
    pytest.param(pod_peer({"app": "web"}, {"env": "prod"}), WEB, False, id="namespace-and-pod-selector-are-anded"),
    pytest.param(pod_peer({}, OwnNamespace("x")), HOST, False, id="host-network-pod-never-selected"),
]


@pytest.mark.parametrize(("peer", "end", "expected"), PEER_ROWS)
def test_peer_selects_namespace_and_pod_labels(peer, end, expected):
    assert matchers.peer_selects(peer, end, undefined_namespace_labels(end.namespace)) is expected


PORT_ROWS = [
    # "If this field is not provided, this matches all port names and numbers."
    pytest.param(port(None), WEB, None, id="no-port-means-every-port"),
    pytest.param(port(80), WEB, ((80, 80),), id="a-number"),
    # "the range of ports from port to endPort if set, inclusive"
    pytest.param(port(8080, end_port=8090), WEB, ((8080, 8090),), id="end-port-inclusive"),
    pytest.param(port(8090, end_port=8080), WEB, (), id="end-port-below-port-admits-nothing"),
    # a named port: the destination pod's container ports with that name and the rule's protocol
    pytest.param(port("http"), WEB, ((8080, 8080), (8081, 8081)), id="named-port-every-number-sorted"),
    pytest.param(port("dns", "TCP"), WEB, (), id="named-port-keeps-its-protocol"),
    pytest.param(port("http"), HOST, (), id="named-port-never-resolves-on-host-network"),
    pytest.param(port("http"), ipaddress.ip_address("192.0.2.1"), (), id="named-port-never-resolves-off-pods"),
]


@pytest.mark.parametrize(("match", "destination", "expected"), PORT_ROWS)
def test_port_ranges_per_the_api(match, destination, expected):
    assert matchers.port_ranges(match, matchers.resolver_on(destination)) == expected


@pytest.mark.parametrize(("number", "protocol", "expected"), [(8081, Protocol.TCP, True), (8082, Protocol.TCP, False),
                                                               (8080, Protocol.UDP, False)])  # fmt: skip
def test_port_admits_the_resolved_numbers_of_its_protocol_only(number, protocol, expected):
    assert matchers.port_admits(port("http"), protocol, number, matchers.resolver_on(WEB)) is expected


def _cnp(name: str, subject: PodPeer, *, egress: bool) -> ClusterNetworkPolicy:
    rules = (ClusterRule(Direction.EGRESS, 0, Action.DENY, (pod_peer({}, {}),)),) if egress else ()
    return ClusterNetworkPolicy(name, Tier.ADMIN, 1, subject, egress=rules)


def test_one_selecting_and_isolating_for_both_kinds():
    np_web = policy("x/web", {"app": "web"})
    np_other = policy("y/web", {"app": "web"})
    cnp_all = _cnp("all", PodPeer(SelectedNamespaces(selector({})), selector({})), egress=True)
    cnp_prod = _cnp("prod", PodPeer(SelectedNamespaces(selector({"env": "prod"})), selector({})), egress=False)
    labels = undefined_namespace_labels("x")
    assert matchers.selecting((np_web, np_other), WEB, labels) == (np_web,)
    assert matchers.selecting((cnp_all, cnp_prod), WEB, labels) == (cnp_all,)
    assert matchers.selecting((np_web, cnp_all), HOST, labels) == ()
    # policyTypes decide for NetworkPolicy; "CNPs with no egress rules do not affect egress traffic"
    assert matchers.isolating((np_web,), Direction.INGRESS) == (np_web,)
    assert matchers.isolating((np_web,), Direction.EGRESS) == ()
    assert matchers.isolating((cnp_all,), Direction.EGRESS) == (cnp_all,)
    assert matchers.isolating((cnp_all,), Direction.INGRESS) == ()


def test_hints_are_found_only_when_read_and_equal_an_eager_search(monkeypatch):
    calls = []
    eager = hints_module.find_hints

    def counting(*args, **kwargs):
        calls.append(1)
        return eager(*args, **kwargs)

    monkeypatch.setattr("policyctl.policy.semantics.find_hints", counting)
    base = standard_cluster(policy("x/allow-a", {"pod": "a"}, ingress=[rule(pod_peer({"pod": "c"}))]))
    verdict = evaluate(base, connect(base, "x/b", "x/a", 80))
    assert not verdict.allowed
    assert calls == []
    read = tuple(verdict.ingress.hints)
    assert calls == [1] and read
    assert tuple(verdict.ingress.hints) == read and calls == [1]
    assert verdict.ingress.hints == read
