"""The whole ruleset an update replaces is let go by ``release`` (the agent calls it after the
kernel has the change), else by the next update, never by the update that replaces it; an
update that changes nothing keeps it."""

from __future__ import annotations

import dataclasses
import sys

from policyctl.compiler.incremental import NodeCompiler
from policyctl.policy.cluster import Cluster
from policyctl.policy.model import Labels
from tests import builders as b

CLUSTER = b.cluster(
    b.namespace("x"),
    b.node("node-1", "192.168.0.1"),
    b.pod("x/web", {"app": "web"}, node="node-1", ips=["10.0.1.10"]),
    b.pod("x/client", {"role": "client"}, node="node-1", ips=["10.0.1.11"]),
    b.policy("x/web", {"app": "web"}, ingress=[b.rule(b.pod_peer({"role": "client"}))]),
)


def _client_role(role: str, step: int = 0) -> Cluster:
    """x/client with ``role`` (a change to the ruleset when it leaves or joins the peer), and
    a label no selector reads (no change)."""
    return dataclasses.replace(CLUSTER, pods=tuple(
        dataclasses.replace(p, labels=Labels({"role": role, "step": str(step)})) if p.key == "x/client" else p
        for p in CLUSTER.pods))


def test_the_replaced_ruleset_is_held_until_release_or_the_next_update() -> None:
    compiler = NodeCompiler("node-1")
    compiler.update(CLUSTER)
    replaced = compiler.ruleset
    held = sys.getrefcount(replaced)
    assert not compiler.update(_client_role("other")).empty
    assert sys.getrefcount(replaced) == held, "the update that replaced it let it go"
    compiler.release()
    assert sys.getrefcount(replaced) == held - 1
    again = compiler.ruleset
    held = sys.getrefcount(again)
    compiler.update(_client_role("client"))
    compiler.update(_client_role("other"))
    assert sys.getrefcount(again) == held - 1, "without release, the next update lets it go"


def test_an_update_that_changes_nothing_keeps_the_whole_ruleset() -> None:
    compiler = NodeCompiler("node-1")
    compiler.update(CLUSTER)
    kept = compiler.ruleset
    assert compiler.update(_client_role("client", step=1)).empty
    assert compiler.ruleset is kept
