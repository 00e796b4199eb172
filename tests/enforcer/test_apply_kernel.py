"""The enforcer against a real kernel, inside a private node namespace: one atomic
transaction per change, deltas only, nothing half-applied, restart by diff, cleanup that
touches only our table."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend, NftCommandBackend
from policyctl.enforcer.errors import NftApplyError
from tests.enforcer.netns import Node
from tests.enforcer.rulesets import ruleset

pytestmark = pytest.mark.kernel

A, B = Node.A_IP, Node.B_IP
#: b is isolated for ingress and accepts a -> b on port 80 only.
ONLY_80 = ruleset(isolated=(B,), allowed=((f"{A}/32", B, 80),), local_pods=(A, B))


def listing(backend: Any) -> list[dict[str, Any]]:
    """Our table's objects without handles and counter values, in listing order."""
    found = backend.list_table("inet", "policyctl")
    assert found is not None

    def strip(tree: Any) -> Any:
        if isinstance(tree, dict):
            return {k: (None if k == "counter" else strip(v)) for k, v in tree.items() if k != "handle"}
        if isinstance(tree, list):
            return [strip(v) for v in tree]
        return tree

    return [strip(o) for o in found["nftables"] if "metainfo" not in o]


def commands(report_transaction: Any) -> list[tuple[str, str]]:
    """(verb, object kind) of every command."""
    return [(verb, next(iter(body))) for c in report_transaction.commands for verb, body in c.items()]


def test_first_apply_creates_the_table_and_enforces_it(node: Node, backend: LibnftablesBackend) -> None:
    node.serve(node.b, 80)
    node.serve(node.b, 81)
    report = Enforcer(backend).apply(ONLY_80)
    assert report.applied and report.transaction.created_table
    assert commands(report.transaction)[0] == ("create", "table")
    assert node.connects(node.a, B, 80)
    assert not node.connects(node.a, B, 81, timeout=0.5)


def test_reapplying_the_same_ruleset_sends_nothing(backend: LibnftablesBackend) -> None:
    enforcer = Enforcer(backend)
    enforcer.apply(ONLY_80)
    again = enforcer.apply(ONLY_80)
    assert again.transaction.empty and not again.applied


def test_a_changed_pod_set_sends_only_element_deltas(backend: LibnftablesBackend) -> None:
    enforcer = Enforcer(backend)
    enforcer.apply(ONLY_80)
    changed = ruleset(
        isolated=(B,),
        allowed=((f"{A}/32", B, 80), ("10.77.3.0/24", B, 443)),
        local_pods=(A, "10.77.2.9"),
    )
    report = enforcer.apply(changed)
    assert commands(report.transaction) == [
        ("delete", "element"),
        ("add", "element"),
        ("add", "element"),
    ]
    deleted, added_allow, added_pods = (next(iter(c.values()))["element"] for c in report.transaction.commands)
    assert (deleted["name"], deleted["elem"]) == ("local_pods", [B])
    assert (added_allow["name"], added_pods["name"]) == ("allow_in", "local_pods")
    assert added_pods["elem"] == ["10.77.2.9"]
    assert (report.transaction.elements_added, report.transaction.elements_removed) == (2, 1)
    assert report.transaction.chains_replaced == ()
    assert enforcer.apply(changed).transaction.empty


def test_changed_rules_replace_only_their_chain(backend: LibnftablesBackend) -> None:
    enforcer = Enforcer(backend)
    enforcer.apply(ONLY_80)
    audit = ruleset(isolated=(B,), allowed=((f"{A}/32", B, 80),), local_pods=(A, B), audit=True)
    report = enforcer.apply(audit)
    assert report.transaction.chains_replaced == ("ingress",)
    assert commands(report.transaction) == [("flush", "chain"), ("add", "rule"), ("add", "rule")]
    assert enforcer.apply(audit).transaction.empty


def test_a_set_whose_type_changes_is_recreated_with_its_rules(backend: LibnftablesBackend) -> None:
    enforcer = Enforcer(backend)
    enforcer.apply(ONLY_80)
    desired = ruleset(isolated=(B,), allowed=((f"{A}/32", B, 80),), local_pods=(A, B))
    for obj in desired["nftables"]:
        if obj.get("set", {}).get("name") == "local_pods":
            obj["set"]["flags"] = ["interval"]
    report = enforcer.apply(desired)
    assert report.transaction.sets_recreated == ("local_pods",)
    assert enforcer.apply(desired).transaction.empty


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param("jump-to-missing-chain", id="jump-to-missing-chain"),
        pytest.param("element-of-wrong-family", id="invalid-element-in-the-middle"),
        pytest.param("map-element-to-missing-chain", id="verdict-map-element-to-missing-chain"),
    ],
)
def test_a_rejected_transaction_leaves_the_previous_ruleset_whole(
    node: Node, backend: LibnftablesBackend, breakage: str
) -> None:
    node.serve(node.b, 80)
    node.serve(node.b, 81)
    enforcer = Enforcer(backend)
    enforcer.apply(ONLY_80)
    before = listing(backend)
    if breakage == "jump-to-missing-chain":
        bad = ruleset(
            isolated=(B,),
            allowed=((f"{A}/32", B, 80), (f"{A}/32", B, 81)),
            local_pods=(A,),
            extra_rules=({"chain": "postrouting", "expr": [{"jump": {"target": "nowhere"}}]},),
        )
        culprit_kind = "rule"
    elif breakage == "element-of-wrong-family":
        bad = ruleset(isolated=(B,), allowed=((f"{A}/32", B, 81),), local_pods=(A, "fd00::1", "10.77.9.9"))
        culprit_kind = "element"
    else:
        bad = ruleset(isolated=(B, "10.77.2.7"), allowed=((f"{A}/32", B, 81),), local_pods=(A,))
        for obj in bad["nftables"]:
            if obj.get("map", {}).get("name") == "ingress_dispatch":
                obj["map"]["elem"][1][1] = {"jump": {"target": "nowhere"}}
        culprit_kind = "element"
    with pytest.raises(NftApplyError) as failure:
        enforcer.apply(bad)
    error = failure.value
    assert error.nft_error.startswith("Error: ") and "internal:0:0-0" not in error.nft_error
    assert error.command is not None and culprit_kind in next(iter(error.command.values()))
    assert error.transaction_id and error.transaction_id in str(error)
    print(error)
    assert ("fd00::1" if breakage == "element-of-wrong-family" else "nowhere") in str(error)
    assert listing(backend) == before
    assert node.connects(node.a, B, 80)
    assert not node.connects(node.a, B, 81, timeout=0.5)


def test_a_fresh_enforcer_converges_by_diff_without_deleting_the_table(backend: LibnftablesBackend) -> None:
    Enforcer(backend).apply(ONLY_80)
    restarted = Enforcer(backend)
    assert restarted.apply(ONLY_80).transaction.empty
    changed = ruleset(isolated=(B,), allowed=((f"{A}/32", B, 81),), local_pods=(A, B))
    report = restarted.apply(changed)
    verbs = commands(report.transaction)
    assert ("delete", "table") not in verbs and ("create", "table") not in verbs
    assert verbs == [("delete", "element"), ("add", "element")]


def test_probes_during_reapply_never_see_a_wrong_answer(node: Node, backend: LibnftablesBackend) -> None:
    node.serve(node.b, 80)
    node.serve(node.b, 81)
    Enforcer(backend).apply(ONLY_80)
    wrong: list[str] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            if not node.connects(node.a, B, 80):
                wrong.append("allowed a->b:80 was refused")
            if node.connects(node.a, B, 81, timeout=0.2):
                wrong.append("denied a->b:81 got through")

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        other_pods = ruleset(
            isolated=(B,), allowed=((f"{A}/32", B, 80), ("10.0.0.0/8", "10.77.2.3", 22)), local_pods=(A, B)
        )
        for round_ in range(6):
            restarted = Enforcer(LibnftablesBackend(netns=node.node.name))
            restarted.apply(other_pods if round_ % 2 else ONLY_80)
    finally:
        stop.set()
        prober.join()
    assert wrong == []


def test_cleanup_removes_our_table_and_nothing_else(node: Node, backend: LibnftablesBackend) -> None:
    backend.run({"nftables": [
        {"add": {"table": {"family": "ip", "name": "foreign"}}},
        {"add": {"chain": {"family": "ip", "table": "foreign", "name": "keep"}}},
        {"add": {"table": {"family": "inet", "name": "policyctl-other"}}},
    ]})
    enforcer = Enforcer(backend)
    enforcer.apply(ONLY_80)
    assert enforcer.cleanup() is True
    assert backend.list_table("inet", "policyctl") is None
    assert backend.list_table("ip", "foreign") is not None
    assert backend.list_table("inet", "policyctl-other") is not None
    assert enforcer.cleanup() is False


def test_dry_run_applies_nothing(backend: LibnftablesBackend) -> None:
    enforcer = Enforcer(backend)
    report = enforcer.apply(ONLY_80, dry_run=True)
    assert report.dry_run and not report.applied and report.transaction.created_table
    assert backend.list_table("inet", "policyctl") is None


def test_the_nft_command_backend_applies_the_same_transactions(node: Node) -> None:
    nft = NftCommandBackend(netns=node.node.name)
    enforcer = Enforcer(nft)
    assert enforcer.apply(ONLY_80).transaction.created_table
    assert enforcer.apply(ONLY_80).transaction.empty
