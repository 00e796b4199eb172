"""The new-pod window's drops reach the drop log in the lab: with real packets between lab pods,
every packet node-1 drops because no known pod holds its address arrives on the node's NFLOG
group and is explained, on the agent's view (which lacks the pod), as the new-pod window."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from policyctl.agent.sync import NodeSync
from policyctl.compiler.newpods import NewPodWindow
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.drops import AddressBook, drop_document
from policyctl.enforcer.nflog import NflogReader
from policyctl.lab.topology import LabPlan
from policyctl.policy.cluster import Cluster
from tests.agent.fakes import FixedSnapshots
from tests.lab.test_new_pod_window_kernel import NEW, TOUCHING_NEW, lab, probe  # noqa: F401 (the lab fixture)
from tests.enforcer.nflogdrain import drain

pytestmark = pytest.mark.kernel

GROUP = 43
QUIET = 0.8
ADDRESS = "10.244.1.20"
REASON = (f"address {ADDRESS} is in node node-1's pod range and no known pod holds it yet: "
          "the new-pod window denies it until its pod is programmed")


def _syncs(plan: LabPlan, model: FixedSnapshots) -> Iterator[NodeSync]:
    for node_plan in plan.nodes:
        backend = LibnftablesBackend(netns=node_plan.netns)
        yield NodeSync(model, node=node_plan.name, enforcer=Enforcer(backend, table=f"{plan.prefix}policyctl"),
                       new_pods=NewPodWindow.DENY, log_group=GROUP)


def _expected(source: str, destination: str) -> tuple[Any, ...]:
    """What a probe of the pair shows: the half of the unknown address, its end named by
    address (the view has no pod there), no pod, the window's reason and no problem."""
    direction = "egress" if source == NEW else "ingress"
    ends = (ADDRESS if source == NEW else source, ADDRESS if destination == NEW else destination)
    return ("drop", direction, "new-pod", None, REASON, None, None, (), ends)


def _shown(document: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("action", "direction", "drop_rule", "pod", "reason", "problem", "explanation")
    return (*(document[k] for k in keys), tuple(document["policies"]),
            (document["source"]["name"], document["destination"]["name"]))


def test_each_new_pod_drop_in_the_lab_is_logged_and_explained_as_the_window(
    lab: tuple[LabPlan, Cluster],  # noqa: F811
) -> None:
    plan, running = lab
    view = dataclasses.replace(running, pods=tuple(p for p in running.pods if p.key != NEW))
    nodes = list(_syncs(plan, FixedSnapshots(view)))
    try:
        for sync in nodes:
            sync()
        with NflogReader(GROUP, netns=plan.node_by_name["node-1"].netns) as reader:
            seen = probe(plan)
            documents = [drop_document(d) for d in drain([reader], AddressBook(view), quiet=QUIET)]
    finally:
        for sync in nodes:
            sync.enforcer.backend.close()  # type: ignore[attr-defined]
    assert not any(seen[pair] for pair in TOUCHING_NEW)
    window = {_shown(d) for d in documents if d["drop_rule"] == "new-pod"}
    assert window == {_expected(*pair) for pair in TOUCHING_NEW}
    others = [d for d in documents if d["drop_rule"] != "new-pod"]
    assert all(d["drop_rule"] == "isolated" and d["problem"] is None and NEW not in (d["source"]["name"],
               d["destination"]["name"]) for d in others)
