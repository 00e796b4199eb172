"""The compiled engine against the reference semantics on random clusters that mix
ClusterNetworkPolicy (both tiers), AdminNetworkPolicy and BaselineAdminNetworkPolicy with
NetworkPolicy (``tests.cluster_strategies.tiered_clusters``): the tiers' precedence, Pass,
named ports, ``networks``, ``nodes`` and ``domainNames`` peers, decided by the emitted JSON."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.compiler.compile import compile_node
from policyctl.compiler.engine import CompiledCluster
from policyctl.compiler.render_json import render_json
from policyctl.compiler.ruleset import Mode
from policyctl.policy.model import Cluster, Protocol
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from tests.cluster_strategies import tiered_clusters
from tests.strategies import cluster_families, connections, edge_addresses, edge_ports


def _mismatch(compiled: CompiledCluster, cluster: Cluster, connection: Connection) -> str | None:
    expected = evaluate(cluster, connection)
    if compiled.allowed(connection) is expected.allowed:
        return None
    return (
        f"{connection}: semantics says {expected.allowed} (egress: {expected.egress.note}; ingress: "
        f"{expected.ingress.note}); hops {compiled.outcomes(connection)}"
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_compiled_verdict_equals_semantics_on_tiered_clusters(data: st.DataObject) -> None:
    cluster = data.draw(tiered_clusters())
    compiled = CompiledCluster(cluster)
    for _ in range(20):
        connection = data.draw(connections(cluster))
        assert _mismatch(compiled, cluster, connection) is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiered_clusters(max_pods=4, max_policies=2))
def test_compiled_verdict_equals_semantics_at_every_edge_of_tiered_clusters(cluster: Cluster) -> None:
    """Every pod against every other pod, node and CIDR edge address, both ways, on every
    edge port and protocol."""
    compiled = CompiledCluster(cluster)
    ports = edge_ports(cluster)
    for family in cluster_families(cluster):
        others = [*edge_addresses(cluster, family), *cluster.pods, *cluster.nodes]
        for pod in cluster.pods:
            for other in others:
                for protocol in Protocol:
                    for number in ports:
                        for source, destination in ((pod, other), (other, pod)):
                            connection = Connection(source, destination, protocol, number, family)
                            assert _mismatch(compiled, cluster, connection) is None


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
