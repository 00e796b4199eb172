"""Cluster policies through the kernel as deltas: ``NodeCompiler`` compiles a snapshot with
cluster policies whole and diffs it against the last ruleset, and that delta, applied in one
transaction by the enforcer, leaves the table exactly as a full apply of the new ruleset would:
tiers appearing over NetworkPolicy, a rule's action and priority changing, tiers going."""

from __future__ import annotations

import dataclasses
from typing import NoReturn

import pytest

from policyctl.compiler.compile import compile_node
from policyctl.compiler.incremental import NodeCompiler
from policyctl.compiler.render_json import to_document
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.policy.clustermodel import Action, ClusterNetworkPolicy, ClusterRule, NodesPeer, Tier
from policyctl.policy.model import Direction, LabelSelector, PodPeer, PortMatch, Protocol, SelectedNamespaces
from policyctl.policy.cluster import Cluster
from tests.builders import cluster, ip_block, pod_peer, policy, port, rule, selector
from tests.enforcer.netns import CLUSTER_OBJECTS

pytestmark = pytest.mark.kernel

ALLOW_80 = policy("x/allow", {"pod": "b"}, ingress=[rule(pod_peer({"pod": "a"}), ports=[port(80)])])
TO_B = PodPeer(SelectedNamespaces(LabelSelector()), selector({"pod": "b"}))
A = PodPeer(SelectedNamespaces(LabelSelector()), selector({"pod": "a"}))


def _admin(action: Action, priority: int) -> ClusterNetworkPolicy:
    egress = (
        ClusterRule(Direction.EGRESS, 0, action, (TO_B,), (PortMatch(Protocol.TCP, 80),)),
        ClusterRule(Direction.EGRESS, 1, Action.DENY, (NodesPeer(LabelSelector()), ip_block("10.0.0.0/8"))),
    )
    return ClusterNetworkPolicy("guard", Tier.ADMIN, priority, A, (), egress)


BASELINE = ClusterNetworkPolicy(
    "default", Tier.BASELINE, 1000, A, (ClusterRule(Direction.INGRESS, 0, Action.DENY, (A,)),), ()
)


def _snapshot(*cluster_policies: ClusterNetworkPolicy) -> Cluster:
    return dataclasses.replace(cluster(*CLUSTER_OBJECTS, ALLOW_80), cluster_policies=cluster_policies)


def never() -> NoReturn:
    raise AssertionError("the delta was not applied from the trusted state")


HISTORY = (
    _snapshot(),
    _snapshot(_admin(Action.PASS, 5), BASELINE),
    _snapshot(_admin(Action.DENY, 5), BASELINE),
    _snapshot(_admin(Action.ACCEPT, 7)),
    _snapshot(),
)


def test_each_step_of_a_tiered_history_applies_as_a_delta_equal_to_a_full_apply(backend: LibnftablesBackend) -> None:
    compiler = NodeCompiler("node-1")
    enforcer = Enforcer(backend)
    enforcer.apply(to_document(compiler.ruleset))
    for snapshot in HISTORY:
        delta = compiler.update(snapshot)
        assert compiler.ruleset == compile_node(snapshot, "node-1")
        report = enforcer.apply_delta(delta, desired=never)
        assert report.applied
        by_delta = enforcer.current()
        Enforcer(backend).cleanup()
        Enforcer(backend).apply(to_document(compiler.ruleset))
        assert by_delta == Enforcer(backend).current()
        enforcer = Enforcer(backend)
        enforcer.apply(to_document(compiler.ruleset))
