"""The linear baseline: every set lookup and verdict-map dispatch unrolled into one rule per
element, with nothing else changed."""

from __future__ import annotations

from typing import Any

from policyctl.bench.linear import linear_document, rule_count

BASE = {"family": "inet", "table": "t"}
SADDR = {"payload": {"protocol": "ip", "field": "saddr"}}
L4 = {"meta": {"key": "l4proto"}}
DPORT = {"payload": {"protocol": "th", "field": "dport"}}


def _rule(chain: str, *expr: Any) -> dict[str, Any]:
    return {"rule": {**BASE, "chain": chain, "expr": list(expr)}}


DOCUMENT = {"nftables": [
    {"table": {"family": "inet", "name": "t"}},
    {"set": {**BASE, "name": "node-v4", "type": "ipv4_addr", "elem": ["172.16.0.1"]}},
    {"set": {**BASE, "name": "ap4-x", "type": ["ipv4_addr", "inet_proto", "inet_service"], "flags": ["interval"],
             "elem": [{"concat": ["10.0.0.2", "tcp", 80]},
                      {"concat": [{"prefix": {"addr": "10.1.0.0", "len": 16}}, "tcp", {"range": [8000, 8080]}]}]}},
    {"map": {**BASE, "name": "ingress-v4", "type": "ipv4_addr", "map": "verdict",
             "elem": [["10.0.0.3", {"jump": {"target": "in-a"}}], ["10.0.0.4", {"jump": {"target": "in-b"}}]]}},
    {"chain": {**BASE, "name": "ingress", "type": "filter", "hook": "postrouting", "prio": 96, "policy": "accept"}},
    {"chain": {**BASE, "name": "allow-1"}},
    _rule("ingress", {"match": {"op": "==", "left": SADDR, "right": "@node-v4"}}, {"accept": None}),
    _rule("ingress", {"vmap": {"key": {"payload": {"protocol": "ip", "field": "daddr"}}, "data": "@ingress-v4"}}),
    _rule("allow-1", {"match": {"op": "==", "left": {"concat": [SADDR, L4, DPORT]}, "right": "@ap4-x"}},
          {"counter": None}, {"accept": None}),
]}


def _match(left: Any, right: Any) -> dict[str, Any]:
    return {"match": {"op": "==", "left": left, "right": right}}


def test_set_lookup_becomes_one_rule_per_element_matching_each_field() -> None:
    rules = [
        c["rule"] for c in linear_document(DOCUMENT)["nftables"] if "rule" in c and c["rule"]["chain"] == "allow-1"
    ]
    assert [r["expr"] for r in rules] == [
        [_match(SADDR, "10.0.0.2"), _match(L4, "tcp"), _match(DPORT, 80), {"counter": None}, {"accept": None}],
        [_match(SADDR, {"prefix": {"addr": "10.1.0.0", "len": 16}}), _match(L4, "tcp"),
         _match(DPORT, {"range": [8000, 8080]}), {"counter": None}, {"accept": None}],
    ]


def test_verdict_map_becomes_one_jump_rule_per_local_pod_in_map_order() -> None:
    daddr = {"payload": {"protocol": "ip", "field": "daddr"}}
    rules = [
        c["rule"]["expr"]
        for c in linear_document(DOCUMENT)["nftables"]
        if "rule" in c and c["rule"]["chain"] == "ingress"
    ]
    assert rules[1:] == [
        [_match(daddr, "10.0.0.3"), {"jump": {"target": "in-a"}}],
        [_match(daddr, "10.0.0.4"), {"jump": {"target": "in-b"}}],
    ]


def test_node_address_sets_stay_and_expanded_sets_and_maps_go() -> None:
    out = linear_document(DOCUMENT)["nftables"]
    assert [c["set"]["name"] for c in out if "set" in c] == ["node-v4"]
    assert not any("map" in c for c in out)
    first_rule = next(c["rule"] for c in out if "rule" in c)
    assert first_rule["expr"] == [_match(SADDR, "@node-v4"), {"accept": None}]


def test_rule_count_is_rules_before_plus_elements_minus_the_lookups() -> None:
    # 3 rules; the map lookup (2 elements) and the set lookup (2 elements) each become 2 rules.
    assert rule_count(DOCUMENT) == 3
    assert rule_count(linear_document(DOCUMENT)) == 1 + 2 + 2
