"""Tier lint findings are sound on random clusters: what a finding says changes nothing does not.

* ``cluster-rule-shadowed`` and ``baseline-unreachable``: removing the rule leaves every
  connection as it was;
* ``pass-to-nowhere``: writing Accept instead of the Pass leaves every connection as it was.

"Every connection" is the verifier's proof over pods, outside addresses and node addresses
(:func:`verifier.migration.first_counterexample`), itself checked against the oracle elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from policyctl.policy.clustermodel import Action, ClusterNetworkPolicy
from policyctl.policy.diagnostics import Diagnostic
from policyctl.policy.model import Direction
from policyctl.policy.cluster import Cluster
from policyctl.verifier.lint import RULES, lint
from policyctl.verifier.migration import first_counterexample

from tests.cluster_strategies import tiered_clusters

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_FIELD = re.compile(r"spec\.(ingress|egress)\[(\d+)\]")
_CHECKED = ("cluster-rule-shadowed", "baseline-unreachable", "pass-to-nowhere")


def _rewritten(cluster: Cluster, finding: Diagnostic) -> Cluster:
    """``cluster`` with the rule the finding names removed (or, for a Pass, made an Accept)."""
    match = _FIELD.match(finding.field)
    assert match is not None, finding
    direction = Direction.INGRESS if match.group(1) == "ingress" else Direction.EGRESS
    position = int(match.group(2))

    def change(policy: ClusterNetworkPolicy) -> ClusterNetworkPolicy:
        if str(policy) != finding.object:
            return policy
        rules = list(policy.rules(direction))
        if finding.code == "pass-to-nowhere":
            rules[position] = replace(rules[position], action=Action.ACCEPT)
        else:
            del rules[position]
        field = "ingress" if direction is Direction.INGRESS else "egress"
        return replace(policy, **{field: tuple(rules)})

    return replace(cluster, cluster_policies=tuple(change(p) for p in cluster.cluster_policies))


@SETTINGS
@given(tiered_clusters(max_pods=4, max_cluster_policies=4))
def test_what_tier_lint_calls_ineffective_changes_no_connection(cluster: Cluster) -> None:
    findings = lint(cluster, skip=[c for c in RULES if c not in _CHECKED])
    for finding in findings:
        counterexample = first_counterexample(cluster, _rewritten(cluster, finding))
        assert counterexample is None, (str(finding), str(counterexample))
