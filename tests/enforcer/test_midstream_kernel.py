"""Mid-stream pickups with real packets: under the kernel's default ``nf_conntrack_tcp_loose=1``
a revoked TCP connection whose server (or, for a revoked egress, whose far end) speaks first
is picked up again as a new flow in the other direction. The compiled ruleset drops that
packet; without its mid-stream rules the connection resumes, which is what they are for."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from policyctl.compiler.chains import MIDSTREAM_COMMENTS
from policyctl.compiler.compile import compile_node
from policyctl.compiler.render_json import to_document
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.conntrack import ConntrackTool, revoke, ruleset_judge
from policyctl.enforcer.stats import rule_counters
from policyctl.policy.model import NetworkPolicy
from tests.builders import cluster, pod_peer, policy, port, rule
from tests.enforcer.netns import CLUSTER_OBJECTS, EchoServer, Node, echoes

pytestmark = pytest.mark.kernel

A, B = Node.A_IP, Node.B_IP
B_ADMITS_A = policy("x/b-in", {"pod": "b"}, ingress=[rule(pod_peer({"pod": "a"}), ports=[port(80)])])
B_ADMITS_NONE = policy("x/b-in", {"pod": "b"}, types=["Ingress"])
A_REACHES_B = policy("x/a-out", {"pod": "a"}, egress=[rule(pod_peer({"pod": "b"}), ports=[port(80)])], types=["Egress"])
A_REACHES_NONE = policy("x/a-out", {"pod": "a"}, types=["Egress"])
REVOKED = {
    "server-ingress": (B_ADMITS_A, B_ADMITS_NONE, "egress"),
    "client-egress": (A_REACHES_B, A_REACHES_NONE, "ingress"),
}
"""Which half a change revokes: (the policy before, the policy after, the base chain whose
mid-stream rule drops the server's first packet after revocation)."""


def _document(*policies: NetworkPolicy, midstream: bool = True) -> dict[str, Any]:
    """The compiled document; without ``midstream`` its mid-stream rules are left out (the
    kernel behaviour they answer, shown by contrast)."""
    document = to_document(compile_node(cluster(*CLUSTER_OBJECTS, *policies), "node-1"))
    if not midstream:
        document["nftables"] = [
            item for item in document["nftables"]
            if item.get("rule", {}).get("comment") not in MIDSTREAM_COMMENTS.values()
        ]
    return document


def _received(sock: socket.socket, payload: bytes, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(len(payload)) == payload
    except OSError:
        return False


def _midstream_drops(backend: LibnftablesBackend, chain: str) -> int:
    listing = backend.list_table("inet", "policyctl")
    assert listing is not None
    rules = rule_counters(listing)
    return sum(c.packets for c in rules if c.chain == chain and c.comment in MIDSTREAM_COMMENTS.values())


@pytest.mark.parametrize("revoked", sorted(REVOKED))
@pytest.mark.parametrize("midstream", [True, False], ids=["with-midstream-rules", "without"])
def test_a_revoked_connection_stays_cut_when_its_server_speaks_first(
    node: Node, backend: LibnftablesBackend, revoked: str, midstream: bool
) -> None:
    allowing, denying, chain = REVOKED[revoked]
    node.node.exec("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=1")
    server: EchoServer = node.serve(node.b, 80)
    enforcer = Enforcer(backend)
    enforcer.apply(_document(allowing, midstream=midstream))
    client = node.open(node.a, B, 80)
    assert client is not None
    try:
        assert echoes(client)
        denied = _document(denying, midstream=midstream)
        enforcer.apply(denied)
        local = {ipaddress.ip_address(A), ipaddress.ip_address(B)}
        report = revoke(ConntrackTool(netns=node.node.name), ruleset_judge(denied), local=local)
        assert [(str(f.source), str(f.destination), f.destination_port) for f in report.revoked] == [(A, B, 80)]
        server.connections[0].sendall(b"push")
        assert _received(client, b"push", timeout=1.0) is not midstream
        assert echoes(client, timeout=1.0) is not midstream
        if midstream:
            assert _midstream_drops(backend, chain) >= 1
    finally:
        client.close()


def test_connections_that_open_with_a_syn_are_decided_as_before(node: Node, backend: LibnftablesBackend) -> None:
    """The server, which has an ingress chain, may still open its own connections (its egress
    is not isolated), and the client still reaches it on the admitted port only."""
    node.serve(node.b, 80)
    node.serve(node.b, 81)
    node.serve(node.a, 90)
    Enforcer(backend).apply(_document(B_ADMITS_A))
    assert node.connects(node.a, B, 80)
    assert not node.connects(node.a, B, 81, timeout=0.5)
    assert node.connects(node.b, A, 90)
    assert _midstream_drops(backend, "egress") == 0
