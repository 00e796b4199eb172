"""The agent keeps and counts the base chains' drops (mid-stream, new pod) under their own
marker, since no policy decides them."""

from __future__ import annotations

from policyctl.agent.drops import DropLog, DropMonitor
from policyctl.agent.metrics import AgentMetrics
from tests.agent.test_drops import INGRESS, Packets, samples
from tests.enforcer.test_base_rule_drops import with_nodes
from tests.enforcer.test_drops import logged

MIDSTREAM = logged("policyctl drop mid-stream ingress ", "shop/b", "lab/a")
NEW_POD = logged("policyctl audit new-pod egress ", "10.0.1.77", "shop/b")


def test_base_rule_drops_are_kept_with_their_reason_and_counted_under_their_marker() -> None:
    cluster = with_nodes()
    log, metrics = DropLog(), AgentMetrics()
    monitor = DropMonitor(lambda: Packets(), lambda: cluster, log=log, metrics=metrics, wall_clock=lambda: 7.0)
    assert monitor.handle((MIDSTREAM, NEW_POD, INGRESS, MIDSTREAM)) == 4
    kept = [(d["drop_rule"], d["pod"], d["reason"] is not None, d["problem"]) for _, d in log.since(0).drops]
    assert kept == [("mid-stream", "shop/b", True, None), ("new-pod", None, True, None),
                    ("pod-chain", "shop/b", False, None), ("mid-stream", "shop/b", True, None)]
    assert samples(metrics) == {("(mid-stream)", "ingress", "drop"): 2.0, ("(new pod)", "egress", "audit"): 1.0,
                                ("shop/b-from-a", "ingress", "drop"): 1.0}
