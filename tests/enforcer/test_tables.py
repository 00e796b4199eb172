"""Reading a desired ruleset against an earlier reading gives the same state, and takes the
sets written exactly as before from that reading instead of parsing them again."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policyctl.enforcer.tables import read_table
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
