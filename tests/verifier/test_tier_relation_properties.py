"""The class relation with cluster-scoped tiers agrees with ``policy.semantics.evaluate``.

Random clusters mix ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy
with NetworkPolicy (:func:`tests.cluster_strategies.tiered_clusters`); every answer of the
relation is checked against the oracle at the edges of its port runs and of every policy port.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policyctl.policy.ipblocks import end_address
from policyctl.policy.model import Family, Node, Pod, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from policyctl.verifier.portsets import ALL, FIRST_PORT, LAST_PORT, NONE, PortSet
from policyctl.verifier.relation import Relation, connectivity

from tests.cluster_strategies import tiered_clusters
from tests.strategies import connections, edge_ports

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _probe_ports(cluster: Cluster, found: PortSet) -> set[tuple[Protocol, int]]:
    points = {(p, n) for p in Protocol for n in (*edge_ports(cluster), FIRST_PORT, LAST_PORT)}
    for protocol, low, high in found.ranges():
        points |= {(protocol, n) for n in (low - 1, low, high, high + 1) if FIRST_PORT <= n <= LAST_PORT}
    return points


def _agrees(cluster: Cluster, connection: Connection, found: PortSet) -> None:
    for protocol, port in sorted(_probe_ports(cluster, found)):
        probe = Connection(connection.source, connection.destination, protocol, port, connection.family,
                           via_service=connection.via_service)  # fmt: skip
        expected = evaluate(cluster, probe).allowed
        assert found.contains(protocol, port) is expected, (probe, str(found))


def _node_to_pod(relation: Relation, node: Node, pod: Pod, family: Family) -> PortSet:
    address = node.ip(family)
    if address is not None:
        return relation.from_address(address, pod)
    index = relation.index
    destination = index.view_of_pod(pod, family)
    if node.addresses or destination.impossible:
        return NONE
    if pod.node == node.name:
        return ALL
    return relation.decider.ports(index.view_of_node(node, family), destination)


def _relation_ports(relation: Relation, connection: Connection) -> PortSet:
    """The relation's answer for the connection's two ends, through its public entry points."""
    index, family = relation.index, connection.family
    source, destination = connection.source, connection.destination
    if isinstance(source, Pod) and isinstance(destination, Pod):
        if source.key == destination.key and connection.via_service:
            view = index.view_of_pod(source, family)
            return relation.decider.ports(view, view)
        return relation.ports(source, destination, family=family)
    if isinstance(source, Pod) and isinstance(destination, Node):
        return relation.decider.ports(index.view_of_pod(source, family), index.view_of_node(destination, family))
    if isinstance(source, Pod):
        return relation.to_address(source, destination)  # type: ignore[arg-type]
    if isinstance(destination, Pod) and isinstance(source, Node):
        return _node_to_pod(relation, source, destination, family)
    if isinstance(destination, Pod):
        return relation.from_address(source, destination)
    possible = not any(end_address(relation.cluster, e, family).impossible for e in (source, destination))
    return ALL if possible else NONE


@SETTINGS
@given(tiered_clusters(max_pods=5, addressless=True))
def test_pod_pair_ports_with_tiers_agree_with_semantics(cluster: Cluster) -> None:
    relation = connectivity(cluster, families=tuple(Family))
    for family in Family:
        for source in cluster.pods:
            for destination in cluster.pods:
                found = relation.ports(source, destination, family=family)
                _agrees(cluster, Connection(source, destination, Protocol.TCP, 80, family), found)


@SETTINGS
@given(tiered_clusters(max_pods=5, max_cluster_policies=4), st.data())
def test_probed_connections_with_tiers_agree_with_semantics(cluster: Cluster, data: st.DataObject) -> None:
    relation = connectivity(cluster, families=tuple(Family))
    for _ in range(6):
        connection = data.draw(connections(cluster))
        _agrees(cluster, connection, _relation_ports(relation, connection))


@SETTINGS
@given(tiered_clusters(max_pods=5))
def test_outside_classes_with_tiers_agree_with_semantics(cluster: Cluster) -> None:
    relation = connectivity(cluster)
    for family in relation.families:
        for outside in relation.external(family):
            for pod in cluster.pods:
                address = outside.witness
                _agrees(cluster, Connection(pod, address, Protocol.TCP, 80, family), relation.to_address(pod, address))
                inbound = relation.from_address(address, pod)
                _agrees(cluster, Connection(address, pod, Protocol.TCP, 80, family), inbound)
