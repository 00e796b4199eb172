"""The JSON evaluator follows the kernel's chain traversal and refuses what it does not know."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from policyctl.compiler.evaluator import Evaluator, Packet, UnsupportedExpression

T = {"family": "inet", "table": "t"}
TCP80 = Packet(ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2"), 6, 80)


def base(name: str, prio: int, policy: str = "accept", hook: str = "postrouting") -> dict[str, Any]:
    return {"chain": {**T, "name": name, "type": "filter", "hook": hook, "prio": prio, "policy": policy}}


def chain(name: str) -> dict[str, Any]:
    return {"chain": {**T, "name": name}}


def rule(chain_name: str, *expr: dict[str, Any]) -> dict[str, Any]:
    return {"rule": {**T, "chain": chain_name, "expr": list(expr)}}


def doc(*objects: dict[str, Any]) -> dict[str, Any]:
    return {"nftables": [{"table": {"family": "inet", "name": "t"}}, *objects]}


DPORT = {"payload": {"protocol": "th", "field": "dport"}}
L4 = {"meta": {"key": "l4proto"}}
SADDR = {"payload": {"protocol": "ip", "field": "saddr"}}
SADDR6 = {"payload": {"protocol": "ip6", "field": "saddr"}}


def match(left: Any, right: Any) -> dict[str, Any]:
    return {"match": {"op": "==", "left": left, "right": right}}


CASES = [
    pytest.param(doc(base("a", 0), rule("a", {"drop": None})), False, id="drop-ends-everything"),
    pytest.param(doc(base("a", 0, "drop")), False, id="base-policy-applies-when-falling-off"),
    pytest.param(
        doc(base("a", 0), base("b", 10), rule("a", {"accept": None}), rule("b", {"drop": None})),
        False,
        id="accept-ends-only-its-base-chain",
    ),
    pytest.param(
        doc(base("b", 10), base("a", 0, "drop"), rule("b", {"accept": None})),
        False,
        id="base-chains-run-in-priority-order",
    ),
    pytest.param(
        doc(
            base("a", 0, "drop"),
            chain("c"),
            rule("a", {"jump": {"target": "c"}}),
            rule("a", {"accept": None}),
            rule("c", {"return": None}),
            rule("c", {"drop": None}),
        ),
        True,
        id="return-resumes-after-the-jump",
    ),
    pytest.param(
        doc(
            base("a", 0, "drop"),
            chain("c"),
            rule("a", {"goto": {"target": "c"}}),
            rule("a", {"accept": None}),
            rule("c", {"return": None}),
        ),
        False,
        id="goto-never-comes-back",
    ),
    pytest.param(
        doc(base("a", 0, "drop"), chain("c"), rule("a", {"jump": {"target": "c"}}), rule("c", {"accept": None})),
        True,
        id="accept-in-a-jumped-chain-is-final-for-the-base-chain",
    ),
    pytest.param(
        doc(base("a", 0), rule("a", match(SADDR6, "fd00::1"), {"drop": None})),
        True,
        id="ip6-match-never-applies-to-ipv4",
    ),
    pytest.param(
        doc(
            {"set": {**T, "name": "s", "type": ["ipv4_addr", "inet_proto", "inet_service"], "flags": ["interval"],
                     "elem": [{"concat": [{"prefix": {"addr": "10.0.0.0", "len": 30}}, "tcp", {"range": [79, 81]}]}]}},
            base("a", 0, "drop"),
            rule("a", match({"concat": [SADDR, L4, DPORT]}, "@s"), {"accept": None}),
        ),
        True,
        id="concatenated-interval-lookup",
    ),
    pytest.param(
        doc(
            {"set": {**T, "name": "s", "type": ["inet_proto", "inet_service"], "elem": [{"concat": ["udp", 80]}]}},
            base("a", 0, "drop"),
            rule("a", match({"concat": [L4, DPORT]}, "@s"), {"accept": None}),
        ),
        False,
        id="protocol-is-part-of-the-key",
    ),
    pytest.param(
        doc(
            {
                "map": {
                    **T,
                    "name": "m",
                    "type": "ipv4_addr",
                    "map": "verdict",
                    "elem": [["10.0.0.1", {"jump": {"target": "c"}}]],
                }
            },
            base("a", 0), chain("c"),
            rule("a", {"vmap": {"key": SADDR, "data": "@m"}}),
            rule("c", {"drop": None}),
        ),
        False,
        id="verdict-map-dispatch",
    ),
    pytest.param(
        doc(
            base("a", 0),
            rule(
                "a",
                {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
                {"drop": None},
            ),
        ),
        True,
        id="new-packet-is-not-established",
    ),
]


@pytest.mark.parametrize(("document", "accepted"), CASES)
def test_traversal_follows_the_kernel(document: dict[str, Any], accepted: bool) -> None:
    assert Evaluator(document).evaluate("postrouting", TCP80).accepted is accepted


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param({"masquerade": None}, id="unknown-statement"),
        pytest.param(match({"meta": {"key": "mark"}}, 1), id="unknown-key"),
        pytest.param({"match": {"op": "!=", "left": SADDR, "right": "10.0.0.9"}}, id="unknown-operator"),
        pytest.param(match(DPORT, 80), id="th-dport-without-l4proto"),
    ],
)
def test_unknown_expressions_are_refused(statement: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedExpression):
        Evaluator(doc(base("a", 0), rule("a", statement, {"accept": None}))).evaluate("postrouting", TCP80)


def test_icmpv6_neighbour_discovery_range_matches_only_icmpv6() -> None:
    nd = {
        "match": {
            "op": "==",
            "left": {"payload": {"protocol": "icmpv6", "field": "type"}},
            "right": {"range": ["nd-router-solicit", "nd-redirect"]},
        }
    }
    evaluator = Evaluator(doc(base("a", 0, "drop"), rule("a", nd, {"accept": None})))
    a, b = ipaddress.ip_address("fd00::1"), ipaddress.ip_address("fd00::2")
    assert evaluator.evaluate("postrouting", Packet(a, b, 58, icmp_type=135)).accepted
    assert not evaluator.evaluate("postrouting", Packet(a, b, 58, icmp_type=128)).accepted
    assert not evaluator.evaluate("postrouting", Packet(a, b, 6, 135)).accepted
