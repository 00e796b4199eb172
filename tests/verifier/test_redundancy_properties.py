"""``verify redundant`` on one relation equals removing each candidate and comparing relations.

The reference rebuilds the cluster without the policy (or without the rule), builds a second
relation and compares the two whole class matrices (:func:`verifier.comparison.differences`,
both ways); the incremental check (:mod:`verifier.redundancy`) must call redundant exactly the
candidates the reference finds no difference for. A candidate called not redundant must have a
real difference: one connection the oracle (``policy.semantics.evaluate``) decides differently
with and without it.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings

from policyctl.policy.model import Direction, NetworkPolicy, PolicyRef
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from policyctl.verifier.comparison import differences
from policyctl.verifier.queries import redundancies
from policyctl.verifier.relation import Relation
from tests.cluster_strategies import tiered_clusters
from tests.strategies import clusters

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Key = tuple[PolicyRef, str]
"""A candidate: the policy and ``""`` for the whole policy, else ``spec.ingress[0]`` etc."""


def _without(cluster: Cluster, policy: NetworkPolicy, direction: Direction | None, index: int | None) -> Cluster:
    if direction is None:
        return replace(cluster, policies=tuple(p for p in cluster.policies if p.ref != policy.ref))
    kept = tuple(r for r in policy.rules(direction) if r.index != index)
    changed = replace(policy, ingress=kept) if direction is Direction.INGRESS else replace(policy, egress=kept)
    return replace(cluster, policies=tuple(changed if p.ref == policy.ref else p for p in cluster.policies))


def _candidates(cluster: Cluster) -> list[tuple[Key, Cluster]]:
    found = []
    for policy in cluster.policies:
        found.append(((policy.ref, ""), _without(cluster, policy, None, None)))
        for direction in (Direction.INGRESS, Direction.EGRESS):
            if policy.isolates(direction):
                for rule in policy.rules(direction):
                    field = f"spec.{direction.value.lower()}[{rule.index}]"
                    found.append(((policy.ref, field), _without(cluster, policy, direction, rule.index)))
    return found


def _found(cluster: Cluster) -> set[Key]:
    refs = {f"NetworkPolicy {p.ref}": p.ref for p in cluster.policies}
    return {(refs[f.object], f.field) for f in redundancies(cluster)}


@SETTINGS
@given(clusters(max_pods=5, max_policies=4))
def test_redundant_candidates_equal_removing_each_and_comparing_relations(cluster: Cluster) -> None:
    base = Relation(cluster)
    expected = set()
    for key, without in _candidates(cluster):
        other = Relation(without, families=base.families)
        if next(differences(base, other), None) is None and next(differences(other, base), None) is None:
            expected.add(key)
    assert _found(cluster) == expected


@SETTINGS
@given(clusters(max_pods=5, max_policies=4))
def test_a_candidate_not_called_redundant_changes_a_connection_the_oracle_decides(cluster: Cluster) -> None:
    redundant = _found(cluster)
    base = Relation(cluster)
    for key, without in _candidates(cluster):
        if key in redundant:
            continue
        other = Relation(without, families=base.families)
        difference = next(differences(base, other), None) or next(differences(other, base), None)
        assert difference is not None, key
        protocol, port = difference.ports.first()  # type: ignore[misc]
        connection = Connection(difference.source, difference.destination, protocol, port, difference.family)
        assert evaluate(cluster, connection).allowed != evaluate(without, connection).allowed, key


@SETTINGS
@given(tiered_clusters(max_pods=4, max_policies=3, min_policies=1, max_cluster_policies=2))
def test_redundancy_with_cluster_policy_tiers_equals_removing_and_comparing(cluster: Cluster) -> None:
    """NetworkPolicy decides only what the Admin tier passes or leaves, and hands the rest to
    the Baseline tier when it stops isolating: the removal is recomputed through the tiers."""
    base = Relation(cluster)
    expected = set()
    for key, without in _candidates(cluster):
        other = Relation(without, families=base.families)
        if next(differences(base, other), None) is None and next(differences(other, base), None) is None:
            expected.add(key)
    assert _found(cluster) == expected
