"""Lint's selection by pod groups equals the API's matcher applied pod by pod.

``LintContext`` matches each selector once per group of pods (same namespace, labels, ports
and families) and finds ipBlock-covered pods by bisection; on random clusters both must give
exactly the pods that :func:`policy.peers.match_pod_peer` and ``IPBlockPeer.contains`` give
for every pod.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from policyctl.policy.model import IPBlockPeer, LabelSelector, OwnNamespace, PodPeer
from policyctl.policy.cluster import Cluster
from policyctl.policy.peers import match_pod_peer
from policyctl.verifier.lint_context import LintContext, rules_of
from policyctl.verifier.lint_peers import _addresses, _covered
from tests.strategies import clusters

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _keys(pods: object) -> list[str]:
    return [p.key for p in pods]  # type: ignore[attr-defined]


@SETTINGS
@given(clusters(max_pods=8, max_policies=4))
def test_group_selection_equals_the_matcher_pod_by_pod(cluster: Cluster) -> None:
    context = LintContext(cluster)
    pods = sorted((p for p in cluster.pods), key=lambda p: p.key)
    for policy in cluster.policies:
        own = PodPeer(OwnNamespace(policy.namespace), policy.pod_selector)
        expected = [p.key for p in pods if match_pod_peer(cluster, own, other=p).matched]
        assert _keys(context.selected(policy)) == expected
        for rule in rules_of(policy):
            for peer in rule.peers:
                if isinstance(peer, PodPeer):
                    for asked in (peer, PodPeer(peer.namespaces, LabelSelector())):
                        expected = [p.key for p in pods if match_pod_peer(cluster, asked, other=p).matched]
                        assert _keys(context.peer_pods(asked)) == expected


@SETTINGS
@given(clusters(max_pods=8, max_policies=4))
def test_ipblock_coverage_by_bisection_equals_the_block_test_pod_by_pod(cluster: Cluster) -> None:
    context = LintContext(cluster)
    addresses = _addresses(context)
    for policy in cluster.policies:
        for rule in rules_of(policy):
            for peer in rule.peers:
                if isinstance(peer, IPBlockPeer):
                    expected = sorted(p.key for p in context.pods() if any(peer.contains(a) for a in p.ips))
                    assert _keys(_covered(peer, addresses)) == expected
