"""``verify coverage`` from selector sets equals the oracle's selecting policies pod by pod.

Isolation is decided once per distinct set of selectors a pod satisfies
(``PolicyIndex.applying``); the reference asks ``policy.semantics.selecting_policies`` for
every pod. Random pods have no workload, so every finding names exactly one pod.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from policyctl.policy.model import Direction
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import selecting_policies
from policyctl.verifier.queries import uncovered_pods
from tests.strategies import clusters

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(clusters(max_pods=6, max_policies=4))
def test_uncovered_pods_equal_the_selecting_policies_pod_by_pod(cluster: Cluster) -> None:
    expected = {
        (pod.key, direction.value)
        for pod in cluster.pods
        if not pod.host_network
        for direction in (Direction.INGRESS, Direction.EGRESS)
        if not any(p.isolates(direction) for p in selecting_policies(cluster, pod))
    }
    found = {
        (f.message.split(" ")[0], f.message.split("isolated for ")[1].split(":")[0]) for f in uncovered_pods(cluster)
    }
    assert found == expected
