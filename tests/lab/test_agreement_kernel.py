"""The three engines agree on random clusters: the reference semantics, the compiled rulesets
evaluated in Python, and real packets through the enforcer in the lab.

Few examples and no shrinking (a failing example is printed whole), because every one builds a
lab (namespaces, enforcer runs, Services); each is a
random small cluster from ``tests.strategies`` (one or both families, hostNetwork pods, ipBlocks
cut from the pods' and nodes' own addresses) and one random probe, through a Service or not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from policyctl.compiler.engine import CompiledEngine
from policyctl.compiler.markedpeers import IdentityMark
from policyctl.lab.engine import LabEngine
from policyctl.lab.topology import Cni
from policyctl.probecases.engines import Probe
from policyctl.policy.model import Protocol
from policyctl.probecases.runner import ModelEngine
from tests.cluster_strategies import tiered_clusters
from tests.strategies import cluster_families, clusters, edge_ports

pytestmark = pytest.mark.kernel

MARK = IdentityMark(0x00070000)


@pytest.mark.parametrize("cni", list(Cni), ids=lambda c: c.value)
@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_model_compiled_and_lab_engines_observe_the_same_table(
    cni: Cni, data: st.DataObject, state_root: Path, lab_namespaces: set[str]
) -> None:
    """NetworkPolicy alone, or under ClusterNetworkPolicy of both tiers, AdminNetworkPolicy and
    BaselineAdminNetworkPolicy (``tests.cluster_strategies.tiered_clusters``: labelled nodes
    with pinned addresses for ``nodes`` peers); the peer maps jumping, or in the marked layout
    (``compiler.markedpeers``)."""
    plain = clusters(max_pods=4, max_nodes=2, max_policies=3)
    tiered = tiered_clusters(max_pods=4, max_nodes=2, max_policies=2)
    cluster = data.draw(st.one_of(plain, tiered), label="cluster")
    mark = data.draw(st.sampled_from([None, MARK]), label="identity_mark")
    probe = Probe(
        port=data.draw(st.sampled_from(edge_ports(cluster)), label="port"),
        protocol=data.draw(st.sampled_from(list(Protocol)), label="protocol"),
        family=data.draw(st.sampled_from(cluster_families(cluster)), label="family"),
        via_service=data.draw(st.booleans(), label="via_service"),
    )
    model = ModelEngine().observe(cluster, probe).allowed
    compiled_engine = CompiledEngine(identity_mark=mark)
    try:
        compiled = compiled_engine.observe(cluster, probe).allowed
    finally:
        compiled_engine.close()
    with LabEngine(cni=cni, identity_mark=mark) as lab:
        observed = lab.observe(cluster, probe).allowed
    assert compiled == model
    assert {s: dict(row) for s, row in observed.items()} == {s: dict(row) for s, row in model.items()}
