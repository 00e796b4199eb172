"""Reading a desired ruleset against an earlier reading gives the same state, and takes the
sets written exactly as before from that reading instead of parsing them again; a reading
that may give way asks every 1,024 elements and 64 objects and stops when told."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policyctl.enforcer.givingway import GaveWay
from policyctl.enforcer.tables import differs_only_in_comments, read_table
from tests.enforcer.rulesets import ruleset

A, B = "10.77.1.2", "10.77.2.3"
ONLY_80 = ruleset(isolated=(B,), allowed=((f"{A}/32", B, 80),), local_pods=(A, B))


def with_flags(document: dict[str, Any], name: str, flags: list[str]) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    for obj in changed["nftables"]:
        if obj.get("set", {}).get("name") == name:
            obj["set"]["flags"] = flags
    return changed


@pytest.mark.parametrize(
    ("desired", "changed_sets"),
    [
        pytest.param(copy.deepcopy(ONLY_80), set(), id="same-ruleset-rebuilt"),
        pytest.param(ruleset(isolated=(B,), allowed=((f"{A}/32", B, 80),), local_pods=(A,)), {"local_pods"},
                     id="one-element-gone"),
        pytest.param(ruleset(isolated=(B,), allowed=((f"{A}/32", B, 81),), local_pods=(A, B)), {"allow_in"},
                     id="one-element-changed"),
        pytest.param(ruleset(isolated=(A,), allowed=((f"{A}/32", B, 80),), local_pods=(A, B)), {"ingress_dispatch"},
                     id="map-key-changed"),
        pytest.param(with_flags(ONLY_80, "local_pods", ["interval"]), {"local_pods"}, id="attributes-changed"),
    ],
)
def test_reuse_gives_the_same_state_and_reparses_only_what_changed(
    desired: dict[str, Any], changed_sets: set[str]
) -> None:
    earlier = read_table(ONLY_80, family="inet", table="policyctl")
    fresh = read_table(desired, family="inet", table="policyctl")
    reused = read_table(desired, family="inet", table="policyctl", reuse=earlier)
    assert reused == fresh
    taken = {name for name, state in reused.sets.items() if state is earlier.sets.get(name)}
    assert taken == set(fresh.sets) - changed_sets


def test_a_kernel_listing_is_never_taken_from_an_earlier_reading() -> None:
    earlier = read_table(ONLY_80, family="inet", table="policyctl")
    listed = read_table(ONLY_80, family="inet", table="policyctl", strict=False, reuse=earlier)
    assert listed == earlier
    assert all(listed.sets[name] is not earlier.sets[name] for name in listed.sets)


def many(kind: str, count: int) -> dict[str, Any]:
    """ONLY_80 with ``count`` more sets (``kind`` "objects") or ``count`` more elements in
    one set (``kind`` "elements")."""
    document = copy.deepcopy(ONLY_80)
    items = document["nftables"]
    if kind == "objects":
        items += [{"set": {"family": "inet", "table": "policyctl", "name": f"extra-{i}", "type": "ipv4_addr"}}
                  for i in range(count)]
    else:
        items.append({"set": {"family": "inet", "table": "policyctl", "name": "extra", "type": "ipv4_addr",
                              "elem": [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(count)]}})
    return document


@pytest.mark.parametrize(("kind", "count", "asked"), [
    pytest.param("elements", 1023, 0, id="a-set-below-the-stride-is-read-without-asking"),
    pytest.param("elements", 1024 * 3 + 1, 3, id="a-large-set-asks-every-1024-elements"),
    pytest.param("objects", 150, 2, id="many-objects-ask-every-64"),
])
def test_a_reading_told_to_give_way_stops_and_one_never_told_reads_the_same(kind: str, count: int, asked: int) -> None:
    document = many(kind, count)
    questions: list[int] = []

    def never() -> bool:
        questions.append(1)
        return False

    assert read_table(document, family="inet", table="policyctl", strict=False, interrupted=never) == read_table(
        document, family="inet", table="policyctl", strict=False)
    assert len(questions) == asked
    if asked:
        with pytest.raises(GaveWay):
            read_table(document, family="inet", table="policyctl", strict=False, interrupted=lambda: True)


def _mark_test_listing(right: Any, op: str = "==") -> dict[str, Any]:
    left = {"meta": {"key": "mark"}} if isinstance(right, dict) else {"&": [{"meta": {"key": "mark"}}, 0xFFFF0000]}
    rule = {"family": "inet", "table": "t", "chain": "c", "expr": [
        {"match": {"op": op, "left": left, "right": right}}, {"jump": {"target": "c"}}]}
    return {"nftables": [{"table": {"family": "inet", "name": "t"}}, {"chain": {"family": "inet", "table": "t",
                                                                             "name": "c"}}, {"rule": rule}]}


@pytest.mark.parametrize("op", ["==", "!="])
def test_a_mark_test_of_the_top_bits_reads_as_written_from_the_kernel_s_prefix_listing(op: str) -> None:
    """The kernel lists ``meta mark & 0xffff0000 == 0`` as ``meta mark 0/16``; read as
    written, a table holding it is not rewritten on every read-back."""
    written = read_table(_mark_test_listing(0, op), family="inet", table="t")
    listed = read_table(_mark_test_listing({"prefix": {"addr": 0, "len": 16}}, op), family="inet", table="t")
    assert listed.chains == written.chains


def test_a_mark_prefix_of_another_address_reads_as_listed() -> None:
    listed = read_table(_mark_test_listing({"prefix": {"addr": 65536, "len": 16}}), family="inet", table="t")
    assert listed.chains != read_table(_mark_test_listing(0), family="inet", table="t").chains


def _chain_listing(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"nftables": [
        {"table": {"family": "inet", "name": "t"}},
        {"chain": {"family": "inet", "table": "t", "name": "c"}},
        *({"rule": {"family": "inet", "table": "t", "chain": "c", **r}} for r in rules),
    ]}


_LOOKUP = {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@peers-v4"}}
_VMAP = {"vmap": {"key": {"meta": {"key": "mark"}}, "data": {"set": [[1, {"goto": {"target": 'odd"name'}}]]}}}


@pytest.mark.parametrize(("rules", "sets", "chains"), [
    pytest.param(({"expr": [_LOOKUP, {"jump": {"target": "in-from-a"}}]},), {"peers-v4"}, {"in-from-a"},
                 id="lookup-and-jump"),
    pytest.param(({"expr": [_VMAP]},), set(), {'odd"name'}, id="goto-inside-an-anonymous-verdict-map"),
    pytest.param(({"expr": [{"accept": None}], "comment": 'names "@peers-v4" and "jump": {"target": "x"}'},),
                 set(), set(), id="a-comment-refers-to-nothing"),
    pytest.param(({"expr": [{"counter": {"packets": 3, "bytes": 9}}, {"goto": {"target": "b"}}]},
                  {"expr": [{"return": None}]}), set(), {"b"}, id="over-several-rules"),
])
def test_a_chain_refers_to_the_sets_and_chains_its_expressions_name(
    rules: tuple[dict[str, Any], ...], sets: set[str], chains: set[str]
) -> None:
    chain = read_table(_chain_listing(*rules), family="inet", table="t").chains["c"]
    assert (set(chain.set_references), set(chain.chain_references)) == (sets, chains)


@pytest.mark.parametrize(("before", "after", "only_comments"), [
    pytest.param({"expr": [_LOOKUP, {"accept": None}], "comment": "p1"}, {"expr": [_LOOKUP, {"accept": None}],
                 "comment": "p1, p2"}, True, id="comment-renamed"),
    pytest.param({"expr": [{"counter": {"packets": 5, "bytes": 7}}, {"accept": None}]},
                 {"expr": [{"counter": None}, {"accept": None}], "comment": "x"}, True,
                 id="counter-values-and-comment"),
    pytest.param({"expr": [_LOOKUP, {"accept": None}], "comment": "p1"}, {"expr": [_LOOKUP, {"drop": None}],
                 "comment": "p1"}, False, id="verdict-changed"),
])
def test_a_chain_differs_only_in_comments_when_its_rules_decide_alike(
    before: dict[str, Any], after: dict[str, Any], only_comments: bool
) -> None:
    current = read_table(_chain_listing(before), family="inet", table="t").chains["c"]
    desired = read_table(_chain_listing(after), family="inet", table="t").chains["c"]
    assert differs_only_in_comments(current, desired) is only_comments
    same_comment = before.get("comment") == after.get("comment")
    assert (current.rules[0].key == desired.rules[0].key) is (only_comments and same_comment)
