"""The compiled engine against the reference semantics, on random clusters.

Clusters come from ``tests.strategies``: several nodes, single- and dual-stack, overlapping
selectors, ipBlocks with excepts cut around real addresses, named ports reused with different
numbers and protocols, port ranges, SCTP and hostNetwork pods. One property per invariant.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.compiler.compile import compile_node
from policyctl.compiler.engine import CompiledCluster, CompiledEngine
from policyctl.compiler.markedpeers import IdentityMark
from policyctl.compiler.render_json import render_json
from policyctl.compiler.render_text import render_text
from policyctl.probecases.engines import Probe
from policyctl.policy.model import Protocol
from policyctl.policy.cluster import Cluster
from policyctl.probecases.runner import ModelEngine
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from tests.cluster_strategies import tiered_clusters
from tests.packets import arriving_marks
from tests.strategies import cluster_families, clusters, connections, edge_addresses, edge_ports

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _mismatch(compiled: CompiledCluster, cluster: Cluster, connection: Connection) -> str | None:
    """What differs from the semantics, None when nothing does: the verdict, or a packet mark
    not left as it arrived (the marked layout changes its bits only while it decides)."""
    expected = evaluate(cluster, connection)
    marks = {o.mark for _, o in compiled.outcomes(connection) or ()}
    if marks - {compiled.packet_mark}:
        return f"{connection}: arrived with mark {compiled.packet_mark:#x}, left with {sorted(marks)}"
    if compiled.allowed(connection) is expected.allowed:
        return None
    return (
        f"{connection}: semantics says {expected.allowed} (egress: {expected.egress.note}; ingress: "
        f"{expected.ingress.note}); hops {compiled.outcomes(connection)}"
    )


ANY_CLUSTER = st.one_of(clusters(), tiered_clusters())
"""NetworkPolicy alone, or mixed with ClusterNetworkPolicy (both tiers), AdminNetworkPolicy
and BaselineAdminNetworkPolicy (``tests.cluster_strategies.tiered_clusters``): the tiers'
precedence, Pass, named ports, ``networks``, ``nodes`` and ``domainNames`` peers."""


MARK = IdentityMark(0x000F0000)


@pytest.mark.parametrize("layout", ["jumping", "marked"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_compiled_verdict_equals_semantics_on_random_connections(layout: str, data: st.DataObject) -> None:
    """In both peer layouts; in the marked one (four bits, so identities' hashes collide),
    packets arrive with a mark that other components set, in the mark bits too or not, and
    must leave with it."""
    cluster = data.draw(ANY_CLUSTER)
    compiled = (
        CompiledCluster(cluster) if layout == "jumping"
        else CompiledCluster(cluster, identity_mark=MARK, packet_mark=data.draw(arriving_marks(MARK.mask)))
    )
    for _ in range(15):
        connection = data.draw(connections(cluster))
        assert _mismatch(compiled, cluster, connection) is None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(clusters(max_pods=4, max_policies=3), tiered_clusters(max_pods=4, max_policies=2)))
def test_compiled_verdict_equals_semantics_at_every_edge(cluster: Cluster) -> None:
    """Every pod against every ipBlock/except boundary address (both directions), every node
    and every other pod, on every range end, port edge and resolved named port, for every
    protocol."""
    compiled = CompiledCluster(cluster)
    ports = edge_ports(cluster)
    for family in cluster_families(cluster):
        outside = edge_addresses(cluster, family)
        for pod in cluster.pods:
            others = [*outside, *cluster.pods, *cluster.nodes]
            for other in others:
                for protocol in Protocol:
                    for number in ports:
                        for source, destination in ((pod, other), (other, pod)):
                            connection = Connection(source, destination, protocol, number, family)
                            assert _mismatch(compiled, cluster, connection) is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_compiled_engine_observes_what_the_model_engine_observes(data: st.DataObject) -> None:
    cluster = data.draw(clusters())
    probe = Probe(
        port=data.draw(st.sampled_from(edge_ports(cluster))),
        protocol=data.draw(st.sampled_from(list(Protocol))),
        family=data.draw(st.sampled_from(cluster_families(cluster))),
        via_service=data.draw(st.booleans()),
    )
    engine = CompiledEngine()
    try:
        assert engine.observe(cluster, probe).allowed == ModelEngine().observe(cluster, probe).allowed
    finally:
        engine.close()


@settings(max_examples=60, deadline=None)
@given(clusters())
def test_compiling_a_random_cluster_twice_gives_identical_bytes(cluster: Cluster) -> None:
    for node in cluster.nodes:
        first, second = compile_node(cluster, node.name), compile_node(cluster, node.name)
        assert render_json(first) == render_json(second)
        assert render_text(first) == render_text(second)


@settings(max_examples=60, deadline=None)
@given(clusters())
def test_every_set_is_disjoint_and_sorted(cluster: Cluster) -> None:
    """nftables rejects overlapping elements in interval sets; hash sets hold single values."""
    for node in cluster.nodes:
        for s in compile_node(cluster, node.name).sets:
            assert list(s.elements) == sorted(set(s.elements))
            assert s.interval or all(f.is_single for e in s.elements for f in e)
            for i, a in enumerate(s.elements):
                for b in s.elements[i + 1 :]:
                    assert not all(x.low <= y.high and y.low <= x.high for x, y in zip(a, b)), (s.name, a, b)
