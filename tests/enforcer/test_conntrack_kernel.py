"""Revoked connections stop: an established TCP connection through the node is cut once a
change no longer allows it, and keeps flowing when revocation is off (--keep-established)."""

from __future__ import annotations

import ipaddress

import pytest

from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.conntrack import ConntrackTool, Flow, revoke
from tests.enforcer.netns import Node, echoes
from tests.enforcer.rulesets import ruleset

pytestmark = pytest.mark.kernel

A, B = Node.A_IP, Node.B_IP
BOTH = ruleset(isolated=(B,), allowed=((f"{A}/32", B, 80), (f"{A}/32", B, 81)), local_pods=(A, B))
ONLY_80 = ruleset(isolated=(B,), allowed=((f"{A}/32", B, 80),), local_pods=(A, B))


def only_80(flow: Flow) -> bool:
    """What ONLY_80 allows, stated independently of the ruleset: b accepts a on port 80."""
    return str(flow.destination) != B or (str(flow.source) == A and flow.destination_port == 80)


@pytest.mark.parametrize("keep_established", [False, True], ids=["revoked", "keep-established"])
def test_an_established_connection_is_cut_when_a_change_revokes_it(
    node: Node, backend: LibnftablesBackend, keep_established: bool
) -> None:
    node.serve(node.b, 80)
    node.serve(node.b, 81)
    enforcer = Enforcer(backend)
    enforcer.apply(BOTH)
    on_81 = node.open(node.a, B, 81)
    on_80 = node.open(node.a, B, 80)
    assert on_81 is not None and on_80 is not None
    try:
        assert echoes(on_81) and echoes(on_80)
        enforcer.apply(ONLY_80)
        if not keep_established:
            local = {ipaddress.ip_address(A), ipaddress.ip_address(B)}
            report = revoke(ConntrackTool(netns=node.node.name), only_80, local=local)
            assert [(str(f.source), str(f.destination), f.destination_port) for f in report.revoked] == [(A, B, 81)]
            assert any(f.destination_port == 80 for f in report.judged)
        assert echoes(on_81, timeout=1.0) is keep_established
        assert echoes(on_80)
        assert not node.connects(node.a, B, 81, timeout=0.5)
    finally:
        on_81.close()
        on_80.close()
