"""``verify path`` over classes equals the shortest chain of pods the oracle allows.

The reference is a breadth-first search over *pods* whose edges are decided by
``policy.semantics.evaluate`` on the edge ports of the cluster (every policy port, range end
and one past it, every container port): the class search must find a chain exactly when the
reference does, of the same length, and each of its hops must be allowed by the oracle.
"""

from __future__ import annotations

from collections import deque

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.policy.model import Family, Pod, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from policyctl.verifier.paths import lateral_path
from policyctl.verifier.relation import connectivity
from tests.strategies import cluster_families, clusters, edge_ports

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _edge(cluster: Cluster, source: Pod, destination: Pod, family: Family) -> bool:
    return any(
        evaluate(cluster, Connection(source, destination, protocol, port, family)).allowed
        for protocol in Protocol
        for port in edge_ports(cluster)
    )


def _shortest(cluster: Cluster, source: Pod, destination: Pod, family: Family) -> int | None:
    hops = {source.key: 0}
    queue = deque([source])
    while queue:
        current = queue.popleft()
        for other in cluster.pods:
            if other.key in hops or other.key == current.key or not _edge(cluster, current, other, family):
                continue
            hops[other.key] = hops[current.key] + 1
            if other.key == destination.key:
                return hops[other.key]
            queue.append(other)
    return None


@SETTINGS
@given(clusters(max_pods=5, max_policies=3), st.data())
def test_lateral_path_is_the_shortest_chain_the_oracle_allows(cluster: Cluster, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(cluster.pods))
    destination = data.draw(st.sampled_from([p for p in cluster.pods if p.key != source.key] or [source]))
    family = data.draw(st.sampled_from(cluster_families(cluster)))
    if source.key == destination.key:
        return
    hops = lateral_path(connectivity(cluster), source, destination, family=family)
    expected = _shortest(cluster, source, destination, family)
    assert (None if hops is None else len(hops)) == expected
    for hop in hops or ():
        protocol, port = hop.ports.first()  # type: ignore[misc]
        assert evaluate(cluster, Connection(hop.source, hop.destination, protocol, port, family)).allowed
    if hops:
        assert hops[0].source.key == source.key and hops[-1].destination.key == destination.key
        assert all(a.destination.key == b.source.key for a, b in zip(hops, hops[1:]))
