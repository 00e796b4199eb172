"""The diff: what it sends for each kind of change, and (property) that its commands, played in
order against a model that enforces nftables' reference rules, turn any table into any other."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.enforcer.diff import plan
from policyctl.enforcer.elements import element_key
from policyctl.enforcer.errors import RulesetError
from policyctl.enforcer.givingway import GaveWay
from policyctl.enforcer.tables import read_table
from tests.enforcer.rulesets import ruleset

B = "10.77.2.2"


def state(document: dict[str, Any]) -> Any:
    return read_table(document, family="inet", table="policyctl")


def verbs(document_from: dict[str, Any] | None, document_to: dict[str, Any]) -> list[str]:
    current = state(document_from) if document_from is not None else None
    return [f"{v} {next(iter(b))}" for c in plan(current, state(document_to)).commands for v, b in c.items()]


BASE = ruleset(isolated=(B,), allowed=(("10.77.1.2/32", B, 80),), local_pods=("10.77.1.2", B))


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        pytest.param(BASE, [], id="unchanged-sends-nothing"),
        pytest.param(
            ruleset(isolated=(B,), allowed=(("10.77.1.2/32", B, 80),), local_pods=("10.77.1.2",)),
            ["delete element"],
            id="pod-gone-deletes-one-element",
        ),
        pytest.param(
            ruleset(isolated=(B, "10.77.2.3"), allowed=(("10.77.1.2/32", B, 80),), local_pods=("10.77.1.2", B)),
            ["add element"],
            id="new-isolated-pod-adds-a-map-element",
        ),
        pytest.param(
            ruleset(isolated=(B,), allowed=(("10.77.1.2/32", B, 80),), local_pods=("10.77.1.2", B), audit=True),
            ["flush chain", "add rule", "add rule"],
            id="changed-rules-replace-their-chain-only",
        ),
    ],
)
def test_a_change_sends_only_what_differs(changed: dict[str, Any], expected: list[str]) -> None:
    assert verbs(BASE, changed) == expected


def test_a_plan_asks_before_each_kept_set_and_stops_when_told() -> None:
    changed = ruleset(isolated=(B,), allowed=(("10.77.1.2/32", B, 80),), local_pods=("10.77.1.2",))
    asked: list[int] = []

    def never() -> bool:
        asked.append(1)
        return False

    assert plan(state(BASE), state(changed), interrupted=never) == plan(state(BASE), state(changed))
    assert len(asked) == len(state(BASE).sets.keys() & state(changed).sets.keys())
    with pytest.raises(GaveWay):
        plan(state(BASE), state(changed), interrupted=lambda: True)


def test_first_apply_creates_table_then_chains_then_sets_then_rules() -> None:
    sent = verbs(None, BASE)
    assert sent[0] == "create table"
    kinds = [v.split()[1] for v in sent[1:]]
    assert kinds == sorted(kinds, key={"chain": 0, "set": 1, "map": 1, "rule": 2}.get)


def test_a_listing_spelled_the_kernel_way_equals_the_written_ruleset() -> None:
    listed = json.loads(json.dumps(BASE))
    for obj in listed["nftables"]:
        body = next(iter(obj.values()))
        body["handle"] = 7
        if "set" in obj and obj["set"]["name"] == "allow_in":
            body["elem"] = [{"concat": ["10.77.1.2", B, 80]}]
        for statement in body.get("expr", []):
            if "counter" in statement:
                statement["counter"] = {"packets": 12, "bytes": 900}
    assert plan(state(listed), state(BASE)).empty


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(
            lambda d: d["nftables"].append(
                {"rule": {"family": "inet", "table": "policyctl", "chain": "ghost", "expr": []}}
            ),
            "",
            id="rule-of-undeclared-chain",
        ),
        pytest.param(
            lambda d: d["nftables"].append(
                {"set": {"family": "ip", "table": "other", "name": "x", "type": "ipv4_addr"}}
            ),
            "table",
            id="object-of-another-table",
        ),
        pytest.param(
            lambda d: d["nftables"].append({"set": {"family": "inet", "table": "policyctl", "name": "x"}}),
            "type",
            id="set-without-type",
        ),
        pytest.param(lambda d: d["nftables"].append({"flowtable": {"name": "f"}}), "", id="unsupported-object"),
    ],
)
def test_a_malformed_desired_ruleset_is_a_clear_error(mutate: Any, field: str) -> None:
    document = json.loads(json.dumps(BASE))
    mutate(document)
    with pytest.raises(RulesetError) as failure:
        read_table(document, family="inet", table="policyctl", source="node-1.json")
    assert str(failure.value).startswith("node-1.json:")
    assert failure.value.field == field


class Kernel:
    """A model of one table that refuses what nftables refuses: deleting a chain that has
    rules or is jumped to, deleting a set that a rule looks up, a rule or map element naming a
    missing set or chain, deleting a missing element."""

    def __init__(self) -> None:
        self.sets: dict[str, dict[str, Any]] = {}
        self.chains: dict[str, dict[str, Any]] = {}

    def references(self) -> tuple[set[str], set[str]]:
        rules = json.dumps([c["rules"] for c in self.chains.values()])
        sets = {s for s in self.sets if f'"@{s}"' in rules}
        maps = json.dumps([s["elem"] for s in self.sets.values()])
        chains = {c for c in self.chains if f'"target": "{c}"' in rules or f'"target": "{c}"' in maps}
        return sets, chains

    def play(self, command: dict[str, Any]) -> None:
        (verb, body), = command.items()
        (kind, obj), = body.items()
        name = obj.get("name")
        if kind == "table":
            return
        if kind == "chain" and verb == "add":
            rules = self.chains.get(name, {}).get("rules", [])
            self.chains[name] = {
                "spec": {k: v for k, v in obj.items() if k not in ("family", "table", "name")},
                "rules": rules,
            }
        elif kind == "chain" and verb == "flush":
            self.chains[name]["rules"] = []
        elif kind == "chain" and verb == "delete":
            assert not self.chains[name]["rules"], f"chain {name} not empty"
            assert name not in self.references()[1], f"chain {name} in use"
            del self.chains[name]
        elif kind in ("set", "map") and verb == "add":
            elements = {json.dumps(element_key(e if kind == "set" else e[0])): e for e in obj.get("elem", [])}
            spec = {k: v for k, v in obj.items() if k not in ("family", "table", "name", "elem")}
            self.sets[name] = {"kind": kind, "spec": spec, "elem": elements}
            self.check_targets()
        elif kind in ("set", "map") and verb == "delete":
            assert name not in self.references()[0], f"set {name} in use"
            del self.sets[name]
        elif kind == "element":
            target = self.sets[name]
            for e in obj["elem"]:
                key = json.dumps(element_key(e if target["kind"] == "set" else e[0]))
                if verb == "delete":
                    assert key in target["elem"], f"element {e} missing"
                    del target["elem"][key]
                else:
                    target["elem"][key] = e
            self.check_targets()
        elif kind == "rule":
            self.chains[obj["chain"]]["rules"].append({k: obj[k] for k in ("expr", "comment") if k in obj})
            text = json.dumps(obj["expr"])
            for s in self.sets:
                text = text.replace(f'"@{s}"', "")
            assert "@" not in text, "rule looks up a missing set"
            self.check_targets()
        else:
            raise AssertionError(f"unexpected command {command}")

    def check_targets(self) -> None:
        text = json.dumps([[c["rules"] for c in self.chains.values()], [s["elem"] for s in self.sets.values()]])
        for target in json.loads(json.dumps([t for t in _targets(text)])):
            assert target in self.chains, f"jump to missing chain {target}"

    def view(self) -> Any:
        return (
            {n: (s["kind"], s["spec"], sorted(s["elem"])) for n, s in self.sets.items()},
            {n: (c["spec"], json.dumps(c["rules"], sort_keys=True)) for n, c in self.chains.items()},
        )


def _targets(text: str) -> list[str]:
    import re

    return re.findall(r'"target": "([^"]+)"', text)


BASE_OBJ = {"family": "inet", "table": "policyctl"}


@st.composite
def tables(draw: Any) -> dict[str, Any]:
    """Small random tables over a fixed universe of names, with cross references."""
    objects: list[dict[str, Any]] = [{"table": {"family": "inet", "name": "policyctl"}}]
    sets = draw(st.lists(st.sampled_from(["s1", "s2", "s3"]), unique=True))
    for name in sets:
        interval = draw(st.booleans())
        pool = ["10.0.0.1", "10.0.0.2", "10.0.0.3"] + (
            [{"prefix": {"addr": "10.1.0.0", "len": 16}}] if interval else []
        )
        elem = draw(st.lists(st.sampled_from(range(len(pool))), unique=True))
        spec = {**BASE_OBJ, "name": name, "type": "ipv4_addr", "elem": [pool[i] for i in sorted(elem)]}
        if interval:
            spec["flags"] = ["interval"]
        objects.append({"set": spec})
    regular = draw(st.lists(st.sampled_from(["c1", "c2"]), unique=True))
    if regular and draw(st.booleans()):
        elem = draw(st.lists(st.sampled_from(["10.0.0.1", "10.0.0.2"]), unique=True))
        objects.append(
            {
                "map": {
                    **BASE_OBJ,
                    "name": "m",
                    "type": "ipv4_addr",
                    "map": "verdict",
                    "elem": [[a, {"jump": {"target": draw(st.sampled_from(regular))}}] for a in sorted(elem)],
                }
            }
        )
    chains = regular + (["base"] if draw(st.booleans()) else [])
    for name in chains:
        spec = {**BASE_OBJ, "name": name}
        if name == "base":
            spec.update(type="filter", hook=draw(st.sampled_from(["postrouting", "input"])), prio=0,
                        policy=draw(st.sampled_from(["accept", "drop"])))
        objects.append({"chain": spec})
    for name in chains:
        for _ in range(draw(st.integers(0, 2))):
            choice = draw(st.sampled_from(["set", "jump", "plain"]))
            if choice == "set" and sets:
                expr = [
                    {
                        "match": {
                            "op": "==",
                            "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                            "right": f"@{draw(st.sampled_from(sets))}",
                        }
                    },
                    {"accept": None},
                ]
            elif choice == "jump" and [c for c in regular if c != name]:
                expr = [{"jump": {"target": draw(st.sampled_from([c for c in regular if c != name]))}}]
            else:
                expr = [{"counter": None}, {draw(st.sampled_from(["accept", "drop"])): None}]
            objects.append({"rule": {**BASE_OBJ, "chain": name, "expr": expr}})
    return {"nftables": objects}


def load(kernel: Kernel, document: dict[str, Any]) -> None:
    for command in plan(None, state(document)).commands:
        kernel.play(dict(command))


@settings(max_examples=150, deadline=None)
@given(tables(), tables())
def test_the_plan_turns_any_table_into_any_other_in_a_valid_order(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    kernel, expected = Kernel(), Kernel()
    load(kernel, before)
    load(expected, after)
    for command in plan(state(before), state(after)).commands:
        kernel.play(dict(command))
    assert kernel.view() == expected.view()
    assert plan(state(after), state(after)).empty
