"""Converting AdminNetworkPolicy/BaselineAdminNetworkPolicy to ClusterNetworkPolicy preserves traffic.

The converted manifests are written as text (:func:`policyctl.cli.convert.render`), read back
with the loader, and the resulting cluster is compared with the original by the verifier's
proof and, connection by connection, by the oracle.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policyctl.policy.clustermodel import ClusterNetworkPolicy, SourceKind, Tier
from policyctl.manifests.clusterwrite import convert_policies
from policyctl.policy.diagnostics import has_errors
from policyctl.manifests.loader import load_documents
from policyctl.policy.model import Family, Pod
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from policyctl.manifests.yamlsource import read_documents
from policyctl.verifier.migration import first_counterexample

from policyctl.cli.convert import render
from tests.cluster_strategies import tiered_clusters
from tests.strategies import connections

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ordered(policies: list[ClusterNetworkPolicy]) -> tuple[ClusterNetworkPolicy, ...]:
    return tuple(sorted(policies, key=lambda p: (p.tier is not Tier.ADMIN, p.order)))


def _converted(cluster: Cluster) -> Cluster:
    """``cluster`` with its v1alpha1 policies replaced by the converted manifests, read back."""
    converted = convert_policies(cluster.cluster_policies)
    documents, problems = read_documents(render(converted), source="<converted>")
    result = load_documents(documents)
    assert not has_errors((*problems, *result.diagnostics)), [str(d) for d in (*problems, *result.diagnostics)]
    assert all(p.kind is SourceKind.CLUSTER_NETWORK_POLICY for p in result.cluster.cluster_policies)
    assert sorted(p.name for p in result.cluster.cluster_policies) == sorted(c.original.name for c in converted)
    replaced = {c.original.ref for c in converted}
    kept = [p for p in cluster.cluster_policies if p.ref not in replaced]
    return replace(cluster, cluster_policies=_ordered(kept + list(result.cluster.cluster_policies)))


def _legacy_only(cluster: Cluster) -> Cluster:
    """Only AdminNetworkPolicy and BaselineAdminNetworkPolicy objects (with the NetworkPolicies):
    a cluster a migration starts from."""
    legacy = [p for p in cluster.cluster_policies if p.kind is not SourceKind.CLUSTER_NETWORK_POLICY]
    return replace(cluster, cluster_policies=_ordered(legacy))


def _shape(policy: ClusterNetworkPolicy) -> tuple[object, ...]:
    """What a conversion must keep: tier, name, subject and every rule's place, name, action,
    peers and ports (peers and ports as sets: both lists are ORed)."""
    rules = tuple(
        (r.direction, r.index, r.name, r.action, frozenset(r.peers), frozenset(r.ports))
        for r in (*policy.ingress, *policy.egress)
    )
    return (policy.tier, policy.name, policy.subject, rules)


@SETTINGS
@given(tiered_clusters(max_pods=5, max_cluster_policies=4), st.data())
def test_conversion_preserves_the_relation_and_the_oracle(cluster: Cluster, data: st.DataObject) -> None:
    original = _legacy_only(cluster)
    converted = _converted(original)
    assert [_shape(p) for p in original.cluster_policies] == [_shape(p) for p in converted.cluster_policies]
    assert first_counterexample(original, converted) is None
    for _ in range(8):
        connection = data.draw(connections(original))
        assert evaluate(original, connection).allowed is evaluate(converted, connection).allowed, connection


@SETTINGS
@given(tiered_clusters(max_pods=5, max_cluster_policies=4))
def test_a_counterexample_is_a_connection_the_oracle_decides_differently(cluster: Cluster) -> None:
    """With ClusterNetworkPolicies beside the v1alpha1 objects, a tie at one priority may be
    broken the other way once every policy is a ClusterNetworkPolicy: then the proof must name
    a connection on which the two sets really differ."""
    converted = _converted(cluster)
    found = first_counterexample(cluster, converted)
    if found is None:
        return
    difference = found.difference
    protocol, port = difference.ports.first()  # type: ignore[misc]
    source, destination = (cluster.pod_by_key[e.key] if isinstance(e, Pod) else e
                           for e in (difference.source, difference.destination))  # fmt: skip
    connection = Connection(source, destination, protocol, port, difference.family)
    before = evaluate(cluster, connection).allowed
    after_connection = Connection(
        converted.pod_by_key[source.key] if isinstance(source, Pod) else source,
        converted.pod_by_key[destination.key] if isinstance(destination, Pod) else destination,
        protocol, port, difference.family,
    )  # fmt: skip
    after = evaluate(converted, after_connection).allowed
    assert before is not after
    assert before is (found.allowed_by == "original")
    assert difference.family in tuple(Family)
