"""The relation agrees with ``policy.semantics.evaluate`` point by point, at every class edge."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.policy.model import Family, Pod, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from policyctl.verifier.portsets import FIRST_PORT, LAST_PORT, PortSet
from policyctl.verifier.relation import connectivity
from tests.strategies import clusters, edge_addresses, edge_ports

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _probe_ports(cluster: Cluster, found: PortSet) -> set[tuple[Protocol, int]]:
    """Edge ports of the policies and, for every allowed run, its ends and the ports just
    outside them: where a wrong class boundary would show."""
    points = {(p, n) for p in Protocol for n in (*edge_ports(cluster), FIRST_PORT, LAST_PORT)}
    for protocol, low, high in found.ranges():
        points |= {(protocol, n) for n in (low - 1, low, high, high + 1) if FIRST_PORT <= n <= LAST_PORT}
    return points


def _agrees(cluster: Cluster, source, destination, family: Family, found: PortSet) -> None:
    for protocol, port in sorted(_probe_ports(cluster, found)):
        expected = evaluate(cluster, Connection(source, destination, protocol, port, family)).allowed
        assert found.contains(protocol, port) is expected, (source, destination, family, protocol, port, str(found))


@SETTINGS
@given(clusters(max_pods=5, addressless=True))
def test_pod_pair_ports_agree_with_semantics(cluster: Cluster) -> None:
    relation = connectivity(cluster, families=tuple(Family))
    for family in Family:
        for source in cluster.pods:
            for destination in cluster.pods:
                _agrees(cluster, source, destination, family, relation.ports(source, destination, family=family))


@SETTINGS
@given(clusters(max_pods=4), st.data())
def test_outside_address_ports_agree_with_semantics(cluster: Cluster, data: st.DataObject) -> None:
    relation = connectivity(cluster)
    for family in relation.families:
        outside = list(edge_addresses(cluster, family)) + [
            a for n in cluster.nodes for a in n.addresses if Family.of(a) is family
        ]
        address = data.draw(st.sampled_from(outside))
        pod: Pod = data.draw(st.sampled_from(cluster.pods))
        _agrees(cluster, pod, address, family, relation.to_address(pod, address))
        _agrees(cluster, address, pod, family, relation.from_address(address, pod))


@SETTINGS
@given(clusters(max_pods=5))
def test_count_equals_pairs_listed(cluster: Cluster) -> None:
    relation = connectivity(cluster)
    for family in relation.families:
        expected = sum(
            1
            for s in cluster.pods
            for d in cluster.pods
            if any(
                evaluate(cluster, Connection(s, d, p, n, family)).allowed
                for p, n in _probe_ports(cluster, relation.ports(s, d, family=family))
            )
        )
        assert relation.count(family) == expected
