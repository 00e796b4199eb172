"""The agent's drop monitor end to end: agents fed by the project's API server, their rulesets
logging to an NFLOG group in each lab node's namespace, real packets between lab pods.

Every drop an agent serves on ``/drops`` (read with ``policyctl drops --agent``) is a pair the
oracle denies, in the half the oracle denies first on the packet's way, explained exactly as the
oracle explains it on the cluster the API server holds; every denied pair is seen; and
``policyctl_dropped_packets_total`` counts the served drops by policy and direction. Denials:
NetworkPolicy ingress (shop/db -> shop/web, on node-a) and an Admin-tier ClusterNetworkPolicy
egress Deny (edge/gw -> shop/db, on node-b).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from click.testing import CliRunner

from policyctl.agent.main import Agent
from policyctl.cli.drops import drops
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.drops import explanation_document
from policyctl.lab.engine import LabEngine
from policyctl.policy.verdicts import DecidedBy
from tests.agent.conftest import fast_config
from tests.agent.test_agent_lab import TABLE, LabCluster, bare_node, converged, lab, web_from_gateways
from tests.apiserver import FakeApiServer
from tests.kubeapi import objects as raw
from tests.kubeapi.cluster_objects import cnp, pods_of
from tests.lab.test_drops_kernel import oracle_denial

pytestmark = pytest.mark.kernel
__all__ = ["lab"]

GROUP = 4343


def read_drops(agent: Agent) -> list[dict[str, Any]]:
    assert agent.drops_server is not None
    url = f"http://127.0.0.1:{agent.drops_server.port}"
    result = CliRunner().invoke(drops, ["--agent", url, "--no-follow", "-o", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def settled(agents: list[Agent]) -> list[dict[str, Any]]:
    """The drops once no new one arrived for two of the monitors' read ticks."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(2.5)
        now = [d for a in agents for d in read_drops(a)]
        if now and len(now) == len(seen):
            return now
        seen = now
    return seen


def test_the_agent_explains_each_drop_of_its_ruleset_as_the_oracle_does(
    lab: LabEngine, api: Any, apiserver: FakeApiServer
) -> None:
    objects = [
        raw.namespace("shop", team="shop"),
        raw.namespace("edge", team="edge"),
        bare_node("node-a"),
        bare_node("node-b"),
        raw.pod("shop/web", {"app": "web"}, node="node-a"),
        raw.pod("shop/db", {"app": "db"}, node="node-b"),
        raw.pod("edge/gw", {"role": "gw"}, node="node-b"),
        web_from_gateways(),
        cnp("db-guard", priority=5, subject=pods_of({"team": "edge"}, {"role": "gw"}),
            egress=[{"action": "Deny", "name": "no-db", "to": [pods_of({"team": "shop"}, {"app": "db"})]}]),
    ]
    world = LabCluster(apiserver, lab)
    world.become(objects)
    plan = lab.state.plan
    assert plan is not None
    agents: list[Agent] = []
    try:
        for node in plan.nodes:
            config = fast_config(node=node.name, table=TABLE, health_port=-1, drop_log_group=GROUP, drops_port=0,
                                 netns=node.netns)
            agent = Agent(config, api=api, backend=LibnftablesBackend(netns=node.netns),
                          reflector_options={"connect_timeout": 2.0, "backoff": (0.05, 0.2)})
            agents.append(agent.start())
        assert all(a.wait_ready(15) for a in agents), [a.readiness().reasons for a in agents]
        assert converged(lab, apiserver, group=GROUP)
        world.allowed()
        served = settled(agents)
        counted = {a.config.node: a.metrics.registry for a in agents}
        by_node = {a.config.node: read_drops(a) for a in agents}
    finally:
        for agent in agents:
            agent.stop()

    cluster = world.cluster
    denied = {}
    for source in cluster.pods:
        for destination in cluster.pods:
            half = oracle_denial(cluster, source, destination)
            if half is not None:
                denied[(source.key, destination.key)] = half
    assert {(d["source"]["name"], d["destination"]["name"]) for d in served} == set(denied)
    for document in served:
        half = denied[(document["source"]["name"], document["destination"]["name"])]
        assert half.pod is not None
        assert (document["direction"], document["pod"], document["problem"]) == (
            half.direction.value.lower(), half.pod.key, None)
        assert document["explanation"] == explanation_document(half)
    assert {(p, h.decided_by) for p, h in denied.items()} >= {
        (("shop/db", "shop/web"), DecidedBy.NETWORK_POLICY), (("edge/gw", "shop/db"), DecidedBy.ADMIN)}
    for name, documents in by_node.items():
        expected = Counter((",".join(d["policies"]), d["direction"]) for d in documents)
        for (policy, direction), number in expected.items():
            labels = {"policy": policy, "direction": direction, "action": "drop"}
            assert counted[name].get_sample_value("policyctl_dropped_packets_total", labels) == number
