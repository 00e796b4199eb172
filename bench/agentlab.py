"""A lab whose every rule is written by agents fed by the project's API server.

The lab builds network namespaces and addresses only (its own ruleset applier is switched
off); one in-process :class:`Agent` per lab node watches the fake API server
(``tests/apiserver``) on 127.0.0.1 of the root namespace and programs its node's namespace,
which is the ``--netns`` mode of ``policyctl agent``. This is the wiring of
``tests/agent/test_agent_lab.py``, kept here so the latency bench and its lab test share it.

A pod is laid out by the lab first (namespace, veth, address), then written to the API server
with that address, as a kubelet reports a pod's IP once its sandbox and CNI are up.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from kubernetes import config as kubeconfig_loader

from policyctl.agent.config import AgentConfig
from policyctl.agent.main import Agent
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.conntrack import ConntrackTool
from policyctl.kubeapi.projections import project
from policyctl.kubeapi.resources import RESOURCES, Resource
from policyctl.kubeapi.store import ClusterStore
from policyctl.lab.engine import LabEngine
from policyctl.lab.topology import lab_cluster
from policyctl.policy.cluster import Cluster
from tests.apiserver import FakeApiServer

Raw = dict[str, Any]
KIND_OF = {info.kind: resource for resource, info in RESOURCES.items()}
REFLECTOR_OPTIONS = {"connect_timeout": 2.0, "backoff": (0.05, 0.2)}


def namespace(name: str, **labels: str) -> Raw:
    return {"kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def node(name: str) -> Raw:
    """Addresses are the lab's choice, filled in when the node is written."""
    return {"kind": "Node", "metadata": {"name": name}, "status": {"addresses": []}}


def pod(key: str, labels: dict[str, str], *, node: str) -> Raw:
    ns, _, name = key.partition("/")
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "main"}]},
            "status": {"phase": "Running"}}  # fmt: skip


def policy(key: str, spec: Raw) -> Raw:
    ns, _, name = key.partition("/")
    return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns, "generation": 1}, "spec": spec}


def model_of(objects: list[Raw]) -> Cluster:
    """The cluster the API objects mean, projected as the agent's reflectors do."""
    store = ClusterStore()
    for resource in Resource:
        found = []
        for obj in objects:
            if KIND_OF[obj["kind"]] is resource:
                projection, _ = project(resource, {**obj, "metadata": {**obj["metadata"], "uid": "u"}})
                if projection is None:
                    raise ValueError(f"{obj['kind']} {obj['metadata']['name']}: not understood by the projection")
                found.append(projection)
        store.replace(resource, found)
    return store.snapshot()


def agent_config(node_name: str, table: str) -> AgentConfig:
    """The agent's defaults (as the DaemonSet runs it), without its HTTP endpoints."""
    return AgentConfig(node=node_name, table=table, metrics_port=-1, health_port=-1, drops_port=-1)


class AgentLab:
    """The lab, the API server and one agent per node over one list of objects."""

    def __init__(self, *, table: str = "policyctl", config: AgentConfig | None = None) -> None:
        self.table = table
        self._config = config
        self._tmp = tempfile.TemporaryDirectory(prefix="policyctl-agentlab-")
        self.server = FakeApiServer()
        self.engine: LabEngine | None = None
        self.cluster = Cluster()
        self.objects: dict[tuple[str, str, str], Raw] = {}
        self.agents: list[Agent] = []
        self._api: Any = None

    def __enter__(self) -> AgentLab:
        self.server.__enter__()
        self._api = kubeconfig_loader.new_client_from_config(
            config_file=self.server.write_kubeconfig(Path(self._tmp.name) / "kubeconfig")
        )
        self.engine = LabEngine(cni="bridged", timeout=0.5, applier=lambda netns, node, path: None)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for agent in self.agents:
            agent.stop()
        if self.engine is not None:
            self.engine.close()
        if self._api is not None:
            self._api.close()
        self.server.__exit__(kind, error, tb)
        self._tmp.cleanup()

    def build(self, objects: list[Raw]) -> None:
        """Lay out ``objects`` in the lab and write them to the API server (before agents start)."""
        self._layout([*self.objects.values(), *objects])
        for obj in objects:
            self.server.create(self.addressed(obj))
            self.objects[key_of(obj)] = obj

    def start_agents(self, *, timeout: float = 120.0) -> float:
        """One agent per lab node; returns the seconds until every one reported ready."""
        started = time.monotonic()
        for node_plan in self._plan().nodes:
            config = self._config or agent_config(node_plan.name, self.table)
            config = dataclasses.replace(config, node=node_plan.name, table=self.table)
            agent = Agent(
                config,
                api=self._api,
                backend=LibnftablesBackend(netns=node_plan.netns),
                conntrack=ConntrackTool(netns=node_plan.netns),
                reflector_options=REFLECTOR_OPTIONS,
            )
            self.agents.append(agent.start())
        if not all(a.wait_ready(timeout) for a in self.agents):
            raise RuntimeError(f"agents not ready: {[a.readiness().reasons for a in self.agents]}")
        return time.monotonic() - started

    def layout_pod(self, obj: Raw) -> Raw:
        """Build a new pod's namespace and address in the lab; returns the object to write."""
        self._layout([*self.objects.values(), obj])
        return self.addressed(obj)

    def write(self, obj: Raw) -> float:
        """Create or update ``obj`` on the API server; returns the monotonic time the write began."""
        key = key_of(obj)
        value = self.addressed(obj) if obj["kind"] in ("Pod", "Node") else obj
        began = time.monotonic()
        if key in self.objects:
            self.server.update(value)
        else:
            self.server.create(value)
        self.objects[key] = obj
        return began

    def delete(self, obj: Raw) -> float:
        """Delete ``obj`` from the API server (a pod keeps its lab namespace); returns when the write began."""
        kind, ns, name = key_of(obj)
        began = time.monotonic()
        self.server.delete(kind, ns or None, name)
        del self.objects[(kind, ns, name)]
        return began

    def nodes(self) -> tuple[Any, ...]:
        return tuple(self._plan().nodes)

    def netns_of(self, pod_key: str) -> str:
        return self._plan().pod_by_key[pod_key].netns

    def address_of(self, pod_key: str) -> str:
        return str(self.cluster.pod_by_key[pod_key].ips[0])

    def _plan(self) -> Any:
        assert self.engine is not None
        plan = self.engine.state.plan
        if plan is None:
            raise RuntimeError("the lab has no plan yet")
        return plan

    def _layout(self, objects: list[Raw]) -> None:
        assert self.engine is not None
        model = model_of([self.addressed(o) if self._known(o) else o for o in objects])
        plan = self.engine.reconcile(model).plan
        assert plan is not None
        self.cluster = lab_cluster(model, plan)

    def _known(self, obj: Raw) -> bool:
        meta = obj["metadata"]
        return obj["kind"] == "Pod" and f"{meta['namespace']}/{meta['name']}" in self.cluster.pod_by_key

    def addressed(self, obj: Raw) -> Raw:
        """``obj`` as written to the API server: a pod with the address the lab gave it, a node
        with its lab addresses (as the kubelet reports them)."""
        value = copy.deepcopy(obj)
        if obj["kind"] == "Pod":
            found = self.cluster.pod_by_key[f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"]
            value["status"]["podIPs"] = [{"ip": str(ip)} for ip in found.ips]
            value["status"]["podIP"] = str(found.ips[0])
        elif obj["kind"] == "Node":
            found_node = self.cluster.node_by_name[obj["metadata"]["name"]]
            value["status"]["addresses"] = [{"type": "InternalIP", "address": str(a)} for a in found_node.addresses]
        return value


def key_of(obj: Raw) -> tuple[str, str, str]:
    meta = obj["metadata"]
    namespaced = RESOURCES[KIND_OF[obj["kind"]]].namespaced
    return obj["kind"], meta.get("namespace", "") if namespaced else "", meta["name"]
