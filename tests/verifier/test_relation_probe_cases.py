"""Every probe case (the project's, the transcribed upstream ClusterNetworkPolicy conformance
cases and the shared ones) passes with the class relation as the engine: the verifier agrees
with truth tables reasoned out from the APIs, not only with the oracle."""

from __future__ import annotations

from pathlib import Path

import pytest
from policyctl.probecases.engines import Observation, Probe
from policyctl.policy.cluster import Cluster
from policyctl.probecases.cases import load_probe_case
from policyctl.probecases.runner import run_case
from policyctl.verifier.relation import connectivity

REPO = Path(__file__).resolve().parents[2]
CASES = sorted((REPO / "tests" / "cases").rglob("*.yaml"))


class RelationEngine:
    """Decides a probe from :func:`verifier.relation.connectivity`; a pod reaching itself
    through a Service is not the own-address bypass, so it is decided from its view."""

    name = "relation"

    def observe(self, cluster: Cluster, probe: Probe) -> Observation:
        relation = connectivity(cluster, families=(probe.family,))
        pods = sorted(cluster.pods, key=lambda p: p.key)
        allowed: dict[str, dict[str, bool]] = {}
        for source in pods:
            row = allowed.setdefault(source.key, {})
            for destination in pods:
                if probe.via_service and source.key == destination.key:
                    view = relation.view(source, probe.family)
                    ports = relation.decider.ports(view, view)
                else:
                    ports = relation.ports(source, destination, family=probe.family)
                row[destination.key] = ports.contains(probe.protocol, probe.port)
        return Observation(allowed, "relation")

    def close(self) -> None:
        """Nothing to release."""


@pytest.mark.parametrize("path", CASES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_case_passes_with_the_class_relation(path: Path) -> None:
    result = run_case(load_probe_case(path), RelationEngine())
    mismatches = [
        (step, o.probe.probe, m) for step, outcomes in enumerate(result.steps) for o in outcomes for m in o.mismatches
    ]
    assert result.passed, f"{path}: {mismatches[:10]}"
