"""The agent end to end in the lab: one agent per lab node, its nftables work inside the
node's network namespace, its API reads from the fake API server. Creating, changing and
deleting pods, namespaces and policies through the API changes what real packets can do.

The lab builds namespaces and addresses only (its own ruleset applier is switched off): every
rule in the kernel was written by an agent. The reflectors reach the server on 127.0.0.1 of
the root namespace, and each agent's enforcer joins its node's namespace for the nft work,
which is the ``--netns`` mode of ``policyctl agent``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from policyctl.agent.main import Agent
from policyctl.bench.agentlab import KIND_OF, key_of, model_of
from policyctl.compiler.compile import compile_node
from policyctl.compiler.droplog import log_to_group
from policyctl.compiler.render_json import to_document
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.conntrack import ConntrackTool
from policyctl.lab.engine import LabEngine
from policyctl.lab.topology import lab_cluster
from policyctl.probecases.engines import Probe
from policyctl.policy.model import Family, Protocol
from policyctl.policy.cluster import Cluster
from tests.agent.conftest import fast_config, kernel_reason
from tests.apiserver import FakeApiServer
from tests.kubeapi import objects as raw
from tests.kubeapi.conftest import server_cluster

pytestmark = pytest.mark.kernel

TABLE = "policyctl"
NODES = ("node-a", "node-b")
HTTP = Probe(port=80, protocol=Protocol.TCP, family=Family.IPV4)
Raw = dict[str, Any]


def bare_node(name: str) -> Raw:
    return {"kind": "Node", "metadata": {"name": name}, "status": {"addresses": []}}


def web_from_gateways() -> Raw:
    return raw.policy("shop/web-from-gateways", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "edge"}},
                               "podSelector": {"matchLabels": {"role": "gw"}}}],
                     "ports": [{"port": 80, "protocol": "TCP"}]}],
    })


class LabCluster:
    """Keeps the lab and the API server on one list of objects: the lab lays out the pods
    (and picks their addresses), then the server is told, addresses included."""

    def __init__(self, server: FakeApiServer, engine: LabEngine) -> None:
        self.server = server
        self.engine = engine
        self.cluster = Cluster()

    def become(self, objects: list[Raw]) -> None:
        """A pod keeps the address it was given (as a running pod does): only new pods get
        one from the lab. The node namespaces must outlive every step: the agents' enforcers
        work inside them."""
        objects = [self._addressed(o) if self._known(o) else o for o in objects]
        model = model_of(objects)
        plan = self.engine.reconcile(model).plan
        assert plan is not None
        self.cluster = lab_cluster(model, plan)
        desired = {key_of(o): self._addressed(o) for o in objects}
        current = {key_of(o): o for kind in KIND_OF for o in self.server.objects(kind)}
        for key in sorted(set(current) - set(desired)):
            self.server.delete(key[0], key[1] or None, key[2])
        for key in sorted(desired):
            if key not in current:
                self.server.create(desired[key])
            elif _content(current[key]) != _content(desired[key]):
                self.server.update(desired[key])

    def _known(self, obj: Raw) -> bool:
        """A pod the lab already runs. Nodes are left to the lab's own (stable) choice: a
        node whose layout changed would be rebuilt, and with it the agent's table."""
        meta = obj["metadata"]
        return obj["kind"] == "Pod" and f"{meta['namespace']}/{meta['name']}" in self.cluster.pod_by_key

    def _addressed(self, obj: Raw) -> Raw:
        value = copy.deepcopy(obj)
        if obj["kind"] == "Pod":
            pod = self.cluster.pod_by_key[f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"]
            value["status"]["podIPs"] = [{"ip": str(ip)} for ip in pod.ips]
            value["status"]["podIP"] = str(pod.ips[0])
        elif obj["kind"] == "Node":
            node = self.cluster.node_by_name[obj["metadata"]["name"]]
            value["status"]["addresses"] = [{"type": "InternalIP", "address": str(a)} for a in node.addresses]
        return value

    def allowed(self) -> dict[str, dict[str, bool]]:
        return {src: dict(row) for src, row in self.engine.observe(self.cluster, HTTP).allowed.items()}


def _content(obj: Raw) -> Raw:
    meta = {k: v for k, v in obj["metadata"].items() if k not in ("uid", "resourceVersion")}
    return {**obj, "metadata": meta}


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LabEngine]:
    reason = kernel_reason()
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("POLICYCTL_LAB_STATE", str(tmp_path / "labs"))
    engine = LabEngine(cni="bridged", timeout=0.5, applier=lambda netns, node, path: None)
    try:
        yield engine
    finally:
        engine.close()


def converged(lab: LabEngine, server: FakeApiServer, *, timeout: float = 10.0, group: int | None = None) -> bool:
    """Every node's table equals ``compile_node`` of what the server holds (with its drop log
    sent to NFLOG ``group`` when the agents were given one)."""
    plan = lab.state.plan
    assert plan is not None
    backends = {n.name: LibnftablesBackend(netns=n.netns) for n in plan.nodes}
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cluster = server_cluster(server)
            if all(
                Enforcer(backends[name], table=TABLE)
                .plan(to_document(log_to_group(compile_node(cluster, name, table=TABLE), group)))
                .empty
                for name in NODES
            ):
                return True
            time.sleep(0.05)
        return False
    finally:
        for backend in backends.values():
            backend.close()


def test_api_changes_change_what_packets_can_do(lab: LabEngine, api: Any, apiserver: FakeApiServer) -> None:
    base = [
        raw.namespace("shop", team="shop"),
        raw.namespace("edge", team="edge"),
        bare_node("node-a"),
        bare_node("node-b"),
        raw.pod("shop/web", {"app": "web"}, node="node-a"),
        raw.pod("shop/db", {"app": "db"}, node="node-b"),
        raw.pod("edge/gw", {"role": "gw"}, node="node-b"),
        web_from_gateways(),
    ]
    world = LabCluster(apiserver, lab)
    world.become(base)
    plan = lab.state.plan
    assert plan is not None
    agents = []
    try:
        for node in plan.nodes:
            agent = Agent(fast_config(node=node.name, table=TABLE, health_port=-1), api=api,
                          backend=LibnftablesBackend(netns=node.netns), conntrack=ConntrackTool(netns=node.netns),
                          reflector_options={"connect_timeout": 2.0, "backoff": (0.05, 0.2)})
            agents.append(agent.start())
        assert all(a.wait_ready(15) for a in agents), [a.readiness().reasons for a in agents]
        assert converged(lab, apiserver)
        seen = world.allowed()
        assert (seen["edge/gw"]["shop/web"], seen["shop/db"]["shop/web"], seen["shop/web"]["shop/db"]) == (
            True,
            False,
            True,
        )

        retired_gateway = raw.pod("edge/gw", {"role": "retired"}, node="node-b")
        world.become([o for o in base if key_of(o) != key_of(retired_gateway)] + [retired_gateway])
        assert converged(lab, apiserver)
        assert world.allowed()["edge/gw"]["shop/web"] is False, "a relabelled pod kept its access"

        partner = [raw.namespace("partner", team="edge"), raw.pod("partner/gw", {"role": "gw"}, node="node-a")]
        step3 = [o for o in base if key_of(o) != key_of(retired_gateway)] + [retired_gateway] + partner
        world.become(step3)
        assert converged(lab, apiserver)
        seen = world.allowed()
        assert (seen["partner/gw"]["shop/web"], seen["edge/gw"]["shop/web"]) == (True, False), "new namespace and pod"

        moved = raw.namespace("partner", team="other")
        step4 = [o for o in step3 if key_of(o) != key_of(moved)] + [moved]
        world.become(step4)
        assert converged(lab, apiserver)
        assert world.allowed()["partner/gw"]["shop/web"] is False, "a relabelled namespace kept its access"

        step5 = [o for o in step4 if key_of(o) not in (key_of(web_from_gateways()), key_of(retired_gateway))]
        world.become(step5)
        assert converged(lab, apiserver)
        seen = world.allowed()
        assert (seen["shop/db"]["shop/web"], seen["partner/gw"]["shop/web"]) == (True, True), "policy deleted"

        step6 = [o for o in step5 if o["metadata"].get("namespace") != "partner" and key_of(o) != key_of(moved)]
        world.become(step6)
        assert converged(lab, apiserver)
        assert set(world.allowed()) == {"shop/db", "shop/web"}
    finally:
        for agent in agents:
            agent.stop()
