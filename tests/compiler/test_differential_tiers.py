"""The compiled engine on random clusters that mix the cluster-scoped kinds with NetworkPolicy
(``tests.cluster_strategies.tiered_clusters``), where the tiers add something to check; its
verdicts against the reference semantics are ``test_differential``'s properties, which draw
these clusters too."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.compiler.compile import compile_node
from policyctl.compiler.engine import CompiledCluster
from policyctl.compiler.render_json import render_json
from policyctl.compiler.ruleset import Mode
from policyctl.policy.cluster import Cluster
from tests.cluster_strategies import tiered_clusters
from tests.strategies import connections


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_audit_mode_lets_every_tiered_connection_through(data: st.DataObject) -> None:
    """In audit mode a Deny, like a NetworkPolicy drop, logs, counts and returns."""
    cluster = data.draw(tiered_clusters())
    compiled = CompiledCluster(cluster, mode=Mode.AUDIT)
    for _ in range(10):
        connection = data.draw(connections(cluster))
        outcomes = compiled.outcomes(connection)
        assert outcomes is None or all(o.accepted for _, o in outcomes)


@settings(max_examples=40, deadline=None)
@given(tiered_clusters())
def test_compiling_a_tiered_cluster_twice_gives_identical_bytes(cluster: Cluster) -> None:
    for node in cluster.nodes:
        assert render_json(compile_node(cluster, node.name)) == render_json(compile_node(cluster, node.name))


@settings(max_examples=60, deadline=None)
@given(tiered_clusters())
def test_every_tier_set_is_disjoint_and_sorted(cluster: Cluster) -> None:
    for node in cluster.nodes:
        for s in compile_node(cluster, node.name).sets:
            assert list(s.elements) == sorted(set(s.elements))
            assert s.interval or all(f.is_single for e in s.elements for f in e)
            for i, a in enumerate(s.elements):
                for b in s.elements[i + 1 :]:
                    assert not all(x.low <= y.high and y.low <= x.high for x, y in zip(a, b)), (s.name, a, b)
