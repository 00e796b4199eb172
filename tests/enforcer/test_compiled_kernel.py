"""The compiler's own rulesets through the enforcer: they read back equal (so a re-apply sends
nothing), they enforce, audit mode lets a denied connection through and counts it, and the
evaluator-backed judge cuts revoked connections."""

from __future__ import annotations

import ipaddress

import pytest

from policyctl.compiler.compile import compile_node
from policyctl.compiler.render_json import to_document
from policyctl.compiler.ruleset import Mode
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.conntrack import ConntrackTool, revoke, ruleset_judge
from policyctl.enforcer.stats import policy_counters, rule_counters
from tests.builders import cluster, pod_peer, policy, port, rule
from tests.enforcer.netns import CLUSTER_OBJECTS, Node, echoes

pytestmark = pytest.mark.kernel

A, B = Node.A_IP, Node.B_IP
PODS = CLUSTER_OBJECTS
ALLOW_80 = policy("x/allow-80", {"pod": "b"}, ingress=[rule(pod_peer({"pod": "a"}), ports=[port(80)])])
ALLOW_80_81 = policy("x/allow-80", {"pod": "b"}, ingress=[rule(pod_peer({"pod": "a"}), ports=[port(80), port(81)])])


def compiled(*objects: object, mode: Mode = Mode.ENFORCE) -> dict:
    return to_document(compile_node(cluster(*PODS, *objects), "node-1", mode=mode))  # type: ignore[arg-type]


def test_a_compiled_ruleset_enforces_and_reads_back_unchanged(node: Node, backend: LibnftablesBackend) -> None:
    node.serve(node.b, 80)
    node.serve(node.b, 81)
    enforcer = Enforcer(backend)
    assert enforcer.apply(compiled(ALLOW_80)).transaction.created_table
    assert enforcer.apply(compiled(ALLOW_80)).transaction.empty
    assert node.connects(node.a, B, 80)
    assert not node.connects(node.a, B, 81, timeout=0.5)


def test_audit_mode_lets_a_denied_connection_through_and_counts_it(node: Node, backend: LibnftablesBackend) -> None:
    node.serve(node.b, 81)
    Enforcer(backend).apply(compiled(ALLOW_80, mode=Mode.AUDIT))
    assert node.connects(node.a, B, 81)
    listing = backend.list_table("inet", "policyctl")
    assert listing is not None
    by_policy = {p.policy: p for p in policy_counters(rule_counters(listing))}
    assert by_policy["x/allow-80"].audit >= 1
    assert by_policy["x/allow-80"].deny == 0


def test_enforce_mode_counts_the_denied_connection_as_denied(node: Node, backend: LibnftablesBackend) -> None:
    node.serve(node.b, 80)
    Enforcer(backend).apply(compiled(ALLOW_80))
    assert not node.connects(node.a, B, 81, timeout=0.5)
    assert node.connects(node.a, B, 80)
    listing = backend.list_table("inet", "policyctl")
    assert listing is not None
    counted = policy_counters(rule_counters(listing))
    found = {p.policy: p for p in counted}["x/allow-80"]
    assert found.deny >= 1 and found.allow >= 1 and found.audit == 0


def test_the_evaluator_judge_cuts_only_the_revoked_connection(node: Node, backend: LibnftablesBackend) -> None:
    node.serve(node.b, 80)
    node.serve(node.b, 81)
    enforcer = Enforcer(backend)
    enforcer.apply(compiled(ALLOW_80_81))
    on_80, on_81 = node.open(node.a, B, 80), node.open(node.a, B, 81)
    assert on_80 is not None and on_81 is not None
    try:
        narrowed = compiled(ALLOW_80)
        enforcer.apply(narrowed)
        local = {ipaddress.ip_address(A), ipaddress.ip_address(B)}
        report = revoke(ConntrackTool(netns=node.node.name), ruleset_judge(narrowed), local=local)
        assert [f.destination_port for f in report.revoked] == [81]
        assert not echoes(on_81) and echoes(on_80)
    finally:
        on_80.close()
        on_81.close()
