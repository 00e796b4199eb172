"""The agent reads ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy from
the fake API server into its store and the kernel: a policy added, modified and deleted changes
the compiled ruleset in a throwaway network namespace, which always equals ``compile_node`` of
what the server holds; CRDs that are absent are no error, and one installed later is followed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from policyctl.agent.main import Agent
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.kubeapi.served import Discovery
from tests.agent.conftest import TABLE, seed
from tests.agent.test_agent_apiserver import converges
from tests.apiserver import FakeApiServer
from tests.kubeapi.cluster_objects import cnp, pods_of

pytestmark = pytest.mark.kernel

KINDS = ("ClusterNetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy")
WEB = pods_of({"team": "shop"}, {"app": "web"})
GATEWAYS = [pods_of({"team": "edge"}, {"role": "gw"})]


def guard(priority: int = 10, action: str = "Deny") -> dict[str, Any]:
    """An Admin policy on shop/web deciding ingress from the edge gateways (which its
    NetworkPolicy allows on the named port)."""
    return cnp("web-guard", priority=priority, subject=WEB,
               ingress=[{"action": action, "name": "gateways", "from": GATEWAYS}])  # fmt: skip


def table(kernel: Enforcer) -> str:
    return str(kernel.backend.list_table("inet", TABLE))


def sample(agent: Agent, name: str, labels: dict[str, str]) -> float | None:
    return agent.metrics.registry.get_sample_value(name, labels)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_cluster_network_policy_added_modified_and_deleted_reaches_the_kernel(
    apiserver: FakeApiServer, kernel: Enforcer, node_netns: str, start_agent: Callable[..., Agent]
) -> None:
    seed(apiserver)
    agent = start_agent(backend=LibnftablesBackend(netns=node_netns))
    assert agent.wait_ready(10), agent.readiness().reasons
    assert converges(kernel, apiserver)
    without = table(kernel)
    assert "web-guard" not in without

    apiserver.create(guard())
    assert converges(kernel, apiserver)
    assert [p.name for p in agent.store.snapshot().cluster_policies] == ["web-guard"]
    denying = table(kernel)
    assert denying != without and "web-guard" in denying
    assert sample(agent, "policyctl_objects", {"kind": "ClusterNetworkPolicy"}) == 1

    apiserver.update(guard(action="Accept"))
    assert converges(kernel, apiserver)
    assert agent.store.snapshot().cluster_policies[0].ingress[0].action.value == "Accept"
    assert table(kernel) != denying

    apiserver.delete("ClusterNetworkPolicy", None, "web-guard")
    assert converges(kernel, apiserver)
    assert agent.store.snapshot().cluster_policies == ()
    assert "web-guard" not in table(kernel)
    assert sample(agent, "policyctl_objects", {"kind": "ClusterNetworkPolicy"}) == 0


def test_absent_crds_are_no_error_and_a_crd_installed_later_is_enforced(
    apiserver: FakeApiServer, api: Any, kernel: Enforcer, node_netns: str, start_agent: Callable[..., Agent],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    for kind in KINDS:
        apiserver.remove_crd(kind)
    seed(apiserver)
    caplog.set_level(logging.INFO)
    agent = start_agent(backend=LibnftablesBackend(netns=node_netns), discovery=Discovery(api, max_age=0.2))
    assert agent.wait_ready(10), agent.readiness().reasons
    assert converges(kernel, apiserver)
    for resource in ("clusternetworkpolicies", "adminnetworkpolicies", "baselineadminnetworkpolicies"):
        assert sample(agent, "policyctl_resource_served", {"resource": resource}) == 0
        assert sample(agent, "policyctl_cache_synced", {"resource": resource}) == 1
    assert sample(agent, "policyctl_objects", {"kind": "AdminNetworkPolicy"}) == 0
    assert sample(agent, "policyctl_objects", {"kind": "Pod"}) == 6
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "policies" in r.getMessage()]
    time.sleep(0.5)
    absent = [r for r in caplog.records if r.getMessage().startswith("adminnetworkpolicies: not served")]
    assert len(absent) == 1 and absent[0].levelno == logging.INFO, "the absence is logged once, at info"

    apiserver.install_crd("ClusterNetworkPolicy", ("v1alpha2",))
    apiserver.create(guard())
    assert wait_for(lambda: "web-guard" in table(kernel)), "the policy of a CRD installed later is not enforced"
    assert converges(kernel, apiserver)
    assert sample(agent, "policyctl_resource_served", {"resource": "clusternetworkpolicies"}) == 1
    assert agent.readiness().ok, agent.readiness().reasons

    apiserver.remove_crd("ClusterNetworkPolicy")
    assert wait_for(lambda: "web-guard" not in table(kernel)), "the policies of a removed CRD are still enforced"
    assert converges(kernel, apiserver)
