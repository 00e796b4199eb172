"""Each query on small named clusters, with the answer reasoned from the API rules."""

from __future__ import annotations

import pytest

from policyctl.policy.model import Family, Pod, Protocol
from policyctl.verifier.comparison import differences
from policyctl.verifier.paths import lateral_path
from policyctl.verifier.portsets import parse_ports
from policyctl.verifier.queries import (
    compare,
    contains,
    empty_selectors,
    redundant_policies,
    redundant_rules,
    uncovered_pods,
    vacuous,
)
from policyctl.verifier.relation import Relation, connectivity
from tests.builders import (
    cluster,
    container_port,
    ip_block,
    node,
    pod,
    pod_peer,
    policy,
    port,
    requirement,
    rule,
    selector,
    with_policies,
)

A = pod("x/a", {"app": "a"}, node="n1", ips=["10.0.0.1"])
B = pod("x/b", {"app": "b"}, node="n1", ips=["10.0.0.2"], ports=[container_port(8080, "TCP", "http")])
C = pod("x/c", {"app": "c"}, node="n2", ips=["10.0.0.3"])
BASE = cluster(A, B, C, node("n1", "192.168.0.1"), node("n2", "192.168.0.2"))
DENY_B = policy("x/deny-b", {"app": "b"})
B_FROM_A_HTTP = policy("x/b-from-a", {"app": "b"}, ingress=[rule(pod_peer({"app": "a"}), ports=[port("http")])])
B_FROM_A_8080 = policy("x/b-from-a-8080", {"app": "b"}, ingress=[rule(pod_peer({"app": "a"}), ports=[port(8080)])])


@pytest.mark.parametrize(
    ("policies", "source", "destination", "expected"),
    [
        pytest.param((), A, B, "all", id="no-policy-allows-everything"),
        pytest.param((DENY_B,), A, B, "none", id="isolated-without-rules-denies-everything"),
        pytest.param((B_FROM_A_HTTP,), A, B, "TCP 8080", id="named-port-resolved-on-destination"),
        pytest.param((B_FROM_A_HTTP,), C, B, "none", id="other-peer-denied"),
        pytest.param((B_FROM_A_HTTP,), B, A, "all", id="egress-not-isolated"),
    ],
)
def test_connectivity_ports(policies, source, destination, expected) -> None:
    relation = connectivity(with_policies(BASE, *policies))
    assert str(relation.ports(source, destination, family=Family.IPV4)) == expected


def test_named_port_and_number_are_equivalent_when_the_name_resolves_to_it() -> None:
    assert compare(with_policies(BASE, B_FROM_A_HTTP), with_policies(BASE, B_FROM_A_8080)).equivalent


def test_containment_gives_a_flow_the_smaller_set_lacks() -> None:
    wide = with_policies(BASE, policy("x/b-from-all", {"app": "b"}, ingress=[rule()]))
    narrow = with_policies(BASE, B_FROM_A_HTTP)
    assert contains(wide, narrow) is None
    missing = contains(narrow, wide)
    assert missing is not None
    assert missing.destination == B
    assert missing.ports.contains(Protocol.TCP, 1)


def test_duplicate_policy_is_redundant_and_the_original_too() -> None:
    copy = policy("x/b-from-a-copy", {"app": "b"}, ingress=[rule(pod_peer({"app": "a"}), ports=[port("http")])])
    found = {f.object for f in redundant_policies(with_policies(BASE, B_FROM_A_HTTP, copy))}
    assert found == {"NetworkPolicy x/b-from-a", "NetworkPolicy x/b-from-a-copy"}


def test_rule_covered_by_a_wider_rule_is_redundant_but_the_wider_is_not() -> None:
    both = policy("x/b", {"app": "b"}, ingress=[rule(pod_peer({"app": "a"}), ports=[port(8080)]), rule(pod_peer())])
    found = [(f.code, f.field) for f in redundant_rules(with_policies(BASE, both))]
    assert found == [("redundant-rule", "spec.ingress[0]")]


def test_only_rule_of_an_isolating_policy_is_not_redundant() -> None:
    assert redundant_rules(with_policies(BASE, B_FROM_A_HTTP)) == []


@pytest.mark.parametrize(
    ("added", "codes"),
    [
        pytest.param(
            policy("x/none", {"app": "zzz"}), {("empty-selector", "spec.podSelector")}, id="podselector-selects-no-pod"
        ),
        pytest.param(
            policy("x/never", selector({"app": "a"}, requirement("app", "NotIn", "a"))),
            {("unsatisfiable-selector", "spec.podSelector")},
            id="contradictory-selector",
        ),
        pytest.param(
            policy("x/ghost-peer", {"app": "b"}, ingress=[rule(pod_peer({"app": "ghost"}))]),
            {("empty-selector", "spec.ingress[0].from[0]"), ("empty-rule", "spec.ingress[0]")},
            id="rule-whose-only-peer-selects-nothing",
        ),
        pytest.param(
            policy("x/bad-name", {"app": "b"}, ingress=[rule(ports=[port("nope")])]),
            {("empty-rule", "spec.ingress[0].ports")},
            id="named-port-no-pod-defines",
        ),
        pytest.param(
            policy("x/ok", {"app": "b"}, ingress=[rule(ip_block("10.0.0.0/8"))]), set(), id="ipblock-peer-is-not-empty"
        ),
    ],
)
def test_empty_selectors(added, codes) -> None:
    found = {(f.code, f.field) for f in empty_selectors(with_policies(BASE, added))}
    assert found == codes


def test_uncovered_pods_per_direction() -> None:
    found = {
        f.message.split(" ")[0] + " " + f.message.split("for ")[1].split(":")[0]
        for f in uncovered_pods(with_policies(BASE, DENY_B))
    }
    assert found == {"x/a Ingress", "x/a Egress", "x/c Ingress", "x/c Egress", "x/b Egress"}


@pytest.mark.parametrize(
    ("policies", "is_vacuous"),
    [
        pytest.param((policy("x/none", {"app": "zzz"}),), True, id="selects-nothing"),
        pytest.param((policy("x/open", {"app": "b"}, ingress=[rule()]),), True, id="isolates-but-allows-all"),
        pytest.param((DENY_B,), False, id="deny"),
    ],
)
def test_vacuous(policies, is_vacuous) -> None:
    assert (vacuous(with_policies(BASE, *policies)) is None) is is_vacuous


def test_lateral_path_through_a_stepping_stone() -> None:
    c_only_from_b = policy("x/c-from-b", {"app": "c"}, ingress=[rule(pod_peer({"app": "b"}), ports=[port(22)])])
    a_to_b = policy("x/b-from-a", {"app": "b"}, ingress=[rule(pod_peer({"app": "a"}), ports=[port(8080)])])
    relation = connectivity(with_policies(BASE, c_only_from_b, a_to_b))
    assert not relation.ports(A, C, family=Family.IPV4)
    hops = lateral_path(relation, A, C)
    assert [(h.source.key, h.destination.key, str(h.ports)) for h in hops] == [
        ("x/a", "x/b", "TCP 8080"),
        ("x/b", "x/c", "TCP 22"),
    ]
    assert lateral_path(relation, A, C, ports=parse_ports("8080/TCP")) is None


A_DENY_ALL = policy("x/a-deny", {"app": "a"}, types=["Ingress", "Egress"])
C_DENY_ALL = policy("x/c-deny", {"app": "c"}, types=["Ingress"])


@pytest.mark.parametrize(
    ("first", "second", "source", "destination"),
    [
        pytest.param(
            policy("x/a-to-n2", {"app": "a"}, egress=[rule(ip_block("192.168.0.2/32"))]),
            A_DENY_ALL,
            A,
            "192.168.0.2",
            id="egress-to-another-nodes-address",
        ),
        pytest.param(
            policy("x/a-to-n1", {"app": "a"}, egress=[rule(ip_block("192.168.0.1/32"))]),
            A_DENY_ALL,
            A,
            "192.168.0.1",
            id="egress-to-its-own-nodes-address-has-no-bypass",
        ),
        pytest.param(
            policy("x/c-from-n1", {"app": "c"}, ingress=[rule(ip_block("192.168.0.1/32"))]),
            C_DENY_ALL,
            "192.168.0.1",
            C,
            id="ingress-from-another-nodes-address",
        ),
    ],
)
def test_policies_differing_only_on_a_node_address_are_not_equivalent(first, second, source, destination) -> None:
    found = compare(with_policies(BASE, first), with_policies(BASE, second))
    assert not found.equivalent
    assert found.only_second is None
    assert found.only_first is not None
    assert (str(found.only_first.source), str(found.only_first.destination)) == (str(source), str(destination))


def test_ingress_from_the_pods_own_node_is_equivalent_to_deny_because_of_the_node_bypass() -> None:
    own = policy("x/a-from-n1", {"app": "a"}, ingress=[rule(ip_block("192.168.0.1/32"))])
    deny = policy("x/a-deny-ingress", {"app": "a"}, types=["Ingress"])
    assert compare(with_policies(BASE, own), with_policies(BASE, deny)).equivalent


def test_a_node_address_difference_names_only_the_pods_it_holds_for() -> None:
    """Isolating every pod denies node addresses, except towards pods on that node (the
    bypass): x/a and x/b are on n1, x/c on n2, so each pod is named from the other node's
    address, and no difference claims n1 -> x/a or n2 -> x/c."""
    isolated = with_policies(BASE, policy("x/deny-all", {}, types=["Ingress"]))
    a, b = (Relation(c, families=(Family.IPV4,)) for c in (BASE, isolated))
    named = {
        (str(d.source), p.key)
        for d in differences(a, b)
        if not isinstance(d.source, Pod) and str(d.source) in ("192.168.0.1", "192.168.0.2")
        for p in d.destinations
    }
    assert named == {("192.168.0.2", "x/a"), ("192.168.0.2", "x/b"), ("192.168.0.1", "x/c")}
