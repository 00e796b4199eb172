"""The marked peer layout (``compiler.markedpeers``) in the kernel: its deltas leave the table
exactly as a full apply would, through identities appearing, being renumbered and going; real
packets are decided as the policy says; and a packet leaves with the mark other components gave
it, whatever our rules did with the bits they were given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn
from unittest import mock

import pytest

from policyctl.compiler.compile import compile_node
from policyctl.compiler.incremental import NodeCompiler
from policyctl.compiler import markedpeers
from policyctl.compiler.markedpeers import TIDY_ELEMENTS, IdentityMark, canonical
from policyctl.compiler.render_json import to_document
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.policy.cluster import Cluster
from tests.builders import cluster, node, pod, pod_peer, policy, port, rule
from tests.enforcer.netns import CLUSTER_OBJECTS, Node

pytestmark = pytest.mark.kernel

#: Three bits: seven numbers, so the four identities of the history below collide in their
#: hashes and take the next free number, and one coming or going renumbers another.
MARK = IdentityMark(0x00070000)
TOP_MARK = IdentityMark(0xE0000000)
"""Three bits at the top: the kernel lists ``meta mark & 0xe0000000 == 0`` as a prefix."""

ALLOW_A_80 = policy("x/allow", {"pod": "b"}, ingress=[rule(pod_peer({"pod": "a"}), ports=[port(80)])])
ALLOW_TIERS = policy(
    "x/tiers",
    {"pod": "b"},
    ingress=[rule(pod_peer({"tier": t}), ports=[port(8000 + i)]) for i, t in enumerate(("web", "api", "db"))],
)
REMOTE = node("node-2", "10.77.9.1")


def _remote(name: str, labels: dict[str, str], last: int) -> object:
    return pod(f"x/{name}", labels, node="node-2", ips=[f"10.77.9.{last}"])


def _snapshot(*extra: object) -> Cluster:
    return cluster(*CLUSTER_OBJECTS, REMOTE, ALLOW_A_80, *extra)


HISTORY = (
    _snapshot(),
    _snapshot(ALLOW_TIERS, _remote("web-1", {"tier": "web"}, 10)),
    _snapshot(ALLOW_TIERS, _remote("web-1", {"tier": "web"}, 10), _remote("api-1", {"tier": "api"}, 11)),
    _snapshot(
        ALLOW_TIERS,
        _remote("web-1", {"tier": "web"}, 10),
        _remote("api-1", {"tier": "api"}, 11),
        _remote("db-1", {"tier": "db"}, 12),
    ),
    _snapshot(ALLOW_TIERS, _remote("web-1", {"tier": "db"}, 10), _remote("db-1", {"tier": "db"}, 12)),
    _snapshot(ALLOW_TIERS),
    _snapshot(),
)


def never() -> NoReturn:
    raise AssertionError("the delta was not applied from the trusted state")


@pytest.mark.parametrize("mark", [MARK, TOP_MARK], ids=["middle-bits", "top-bits"])
def test_each_step_applies_as_a_delta_equal_to_a_full_apply(backend: LibnftablesBackend, mark: IdentityMark) -> None:
    compiler = NodeCompiler("node-1", identity_mark=mark)
    enforcer = Enforcer(backend)
    enforcer.apply(to_document(compiler.ruleset))
    numbers_seen = set()
    for snapshot in HISTORY:
        delta = compiler.update(snapshot)
        assert canonical(compiler.ruleset, mark) == compile_node(snapshot, "node-1", identity_mark=mark)
        numbers_seen |= {tuple(m.elements) for m in compiler.ruleset.maps if m.name == "in-identities-v4"}
        assert enforcer.apply_delta(delta, desired=never).applied
        by_delta = enforcer.current()
        again = Enforcer(backend).apply(to_document(compiler.ruleset))
        assert not again.transaction.commands, "the kernel's listing differs from what was written"
        Enforcer(backend).cleanup()
        Enforcer(backend).apply(to_document(compiler.ruleset))
        assert by_delta == Enforcer(backend).current()
        enforcer = Enforcer(backend)
        enforcer.apply(to_document(compiler.ruleset))
    assert len(numbers_seen) >= 4, "the history should change the identity map several times"


@pytest.mark.parametrize("tidy", [TIDY_ELEMENTS, 0], ids=["departing-peers-freed", "departing-peers-retired"])
def test_each_step_applies_in_two_parts_and_the_table_then_equals_a_full_apply(
    backend: LibnftablesBackend, tidy: int
) -> None:
    """The agent's split (``NodeCompiler.split_unreachable``): the kernel takes the first part,
    which keeps the removed identity chains and the rules of freed or retired numbers (their
    chains emptied), and holds what the enforcer trusts; after ``settle`` the table equals a
    full apply of the step."""
    compiler = NodeCompiler("node-1", identity_mark=MARK)
    enforcer = Enforcer(backend)
    enforcer.apply(to_document(compiler.ruleset))
    left: list[str] = []
    with mock.patch.object(markedpeers, "TIDY_ELEMENTS", tidy):
        for snapshot in HISTORY:
            now, later = compiler.split_unreachable(compiler.update(snapshot))
            left += [*later.removed_chains, *(c.name for c in later.chains)]
            assert enforcer.apply_delta(now, desired=never, later=later).applied
            assert enforcer.current() == enforcer.committed
            enforcer.settle()
            by_delta = enforcer.current()
            assert by_delta == enforcer.committed
            Enforcer(backend).cleanup()
            Enforcer(backend).apply(to_document(compiler.ruleset))
            assert by_delta == Enforcer(backend).current()
            enforcer = Enforcer(backend)
            enforcer.apply(to_document(compiler.ruleset))
    assert any(n.startswith("in-from-") for n in left) and any(n.startswith("in-foreign") for n in left)


def _mark_counters(node_ns: Node) -> dict[str, int]:
    """Packets of the pods seen after our chains (postrouting, priority 200) with the mark
    given before them intact, and with any other mark (the node's own packets never had it)."""
    listing = json.loads(node_ns.node.exec("nft", "-j", "list", "table", "inet", "marker"))
    counts: dict[str, int] = {}
    for item in listing["nftables"]:
        rule_ = item.get("rule")
        if rule_ and rule_.get("chain") == "after" and "comment" in rule_:
            counter = next(e["counter"] for e in rule_["expr"] if "counter" in e)
            counts[rule_["comment"]] = counter["packets"]
    return counts


@pytest.mark.parametrize(
    "foreign",
    [0xA5A0A5A5, 0xA5A5A5A5, 0x00070000],
    ids=["none-of-the-bits", "some-of-the-bits", "all-of-the-bits-alone"],
)
def test_real_packets_are_decided_by_policy_and_keep_their_foreign_mark(
    node: Node, backend: LibnftablesBackend, tmp_path: Path, foreign: int
) -> None:
    """Another component marks the pods' packets before our chains: with none of our bits
    (the marked path), or with some or all of them (the path that finds peers without
    marks); either way the policy decides and the mark leaves as it came."""
    snapshot = _snapshot(_remote("web-1", {"tier": "web"}, 10), ALLOW_TIERS)
    ruleset = compile_node(snapshot, "node-1", identity_mark=MARK)
    assert {m.name for m in ruleset.maps} >= {"in-identities-v4"}
    assert not any(m.name == "in-peers-v4" for m in ruleset.maps), "the peer map must be data, not jumps"
    Enforcer(backend).apply(to_document(ruleset))
    script = f"""
    table inet marker {{
        chain before {{ type filter hook prerouting priority -150; meta mark set {foreign:#x}; }}
        chain after {{
            type filter hook postrouting priority 200;
            ip saddr {{ {Node.A_IP}, {Node.B_IP} }} meta mark {foreign:#x} counter comment "kept"
            ip saddr {{ {Node.A_IP}, {Node.B_IP} }} meta mark != {foreign:#x} counter comment "changed"
        }}
    }}
    """
    path = tmp_path / "marker.nft"
    path.write_text(script)
    node.node.exec("nft", "-f", str(path))
    server = node.serve(node.b, 80)
    denied = node.serve(node.b, 81)
    try:
        assert node.connects(node.a, Node.B_IP, 80), "pod=a is admitted on 80"
        assert not node.connects(node.a, Node.B_IP, 81, timeout=0.5), "and on nothing else"
    finally:
        server.close()
        denied.close()
    counts = _mark_counters(node)
    assert counts["kept"] > 0
    assert counts["changed"] == 0, f"{counts['changed']} packets left with another mark than {foreign:#x}"
