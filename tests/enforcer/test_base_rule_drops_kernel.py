"""The base chains' drops with real packets reach the drop log: a revoked connection's server
speaking first is dropped by the mid-stream rule, traffic of a pod address no known pod holds by
the new-pod window, and each arrives on the NFLOG group and is explained by its rule."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pytest

from policyctl.compiler.compile import compile_node
from policyctl.compiler.droplog import log_to_group
from policyctl.compiler.newpods import NewPodWindow
from policyctl.compiler.render_json import to_document
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.conntrack import ConntrackTool, revoke, ruleset_judge
from policyctl.enforcer.drops import AddressBook, drop_document
from policyctl.enforcer.nflog import NflogReader
from policyctl.policy.cluster import Cluster
from policyctl.policy.model import NetworkPolicy
from tests.builders import cluster
from tests.enforcer.netns import CLUSTER_OBJECTS, EchoServer, Node
from tests.enforcer.test_midstream_kernel import REVOKED, B_ADMITS_A, _received
from tests.enforcer.nflogdrain import drain

pytestmark = pytest.mark.kernel

GROUP = 41
QUIET = 0.6
A, B = Node.A_IP, Node.B_IP
MID = ("TCP without SYN that conntrack does not track (a connection revoked or whose entry was lost): "
       "mid-stream pickups of policed pods are dropped")
WINDOW = "no known pod holds it yet: the new-pod window denies it until its pod is programmed"
UNKNOWN_B = f"address {B} is in node node-1's pod range and {WINDOW}"
SHOWN = ("action", "direction", "drop_rule", "pod", "reason", "problem", "explanation", "policies")


def _logged(ruleset_cluster: Cluster, **options: Any) -> dict[str, Any]:
    return to_document(log_to_group(compile_node(ruleset_cluster, "node-1", **options), GROUP))


def _shown(document: dict[str, Any]) -> tuple[Any, ...]:
    ends = (document["source"]["name"], document["destination"]["name"])
    return (*(tuple(v) if isinstance(v := document[k], list) else v for k in SHOWN), ends)


MIDSTREAM_SHOWN = {
    "server-ingress": ("drop", "ingress", "mid-stream", "x/b",
                       f"{MID} (x/b is policed for ingress (isolated by x/b-in))", None, None, (), ("x/b", "x/a")),
    "client-egress": ("drop", "egress", "mid-stream", "x/a",
                      f"{MID} (x/a is policed for egress (isolated by x/a-out))", None, None, (), ("x/b", "x/a")),
}


@pytest.mark.parametrize("revoked", sorted(REVOKED))
def test_a_revoked_connections_server_speaking_first_is_logged_as_a_mid_stream_drop(
    node: Node, backend: LibnftablesBackend, revoked: str
) -> None:
    allowing, denying, _ = REVOKED[revoked]
    node.node.exec("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=1")
    server: EchoServer = node.serve(node.b, 80)
    enforcer = Enforcer(backend)
    enforcer.apply(_logged(cluster(*CLUSTER_OBJECTS, allowing)))
    client = node.open(node.a, B, 80)
    assert client is not None
    with NflogReader(GROUP, netns=node.node.name) as reader:
        try:
            denied_cluster = cluster(*CLUSTER_OBJECTS, denying)
            denied = _logged(denied_cluster)
            enforcer.apply(denied)
            revoke(ConntrackTool(netns=node.node.name), ruleset_judge(denied),
                   local={ipaddress.ip_address(A), ipaddress.ip_address(B)})
            server.connections[0].sendall(b"push")
            assert not _received(client, b"push", timeout=1.0)
            documents = [drop_document(d) for d in drain([reader], AddressBook(denied_cluster), quiet=QUIET)]
        finally:
            client.close()
    midstream = [_shown(d) for d in documents if d["drop_rule"] == "mid-stream"]
    assert midstream and set(midstream) == {MIDSTREAM_SHOWN[revoked]}
    assert all(d["source"]["address"] == B and d["source_port"] == 80 and d["protocol"] == "TCP" for d in documents
               if d["drop_rule"] == "mid-stream")


def _without_b(*policies: NetworkPolicy) -> Cluster:
    """Node ``node-1`` with both pod subnets as its pod range, and pod ``b`` not known yet."""
    objects = [o for o in CLUSTER_OBJECTS if getattr(o, "key", None) != "x/b"]
    ranges = (ipaddress.ip_network("10.77.1.0/24"), ipaddress.ip_network("10.77.2.0/24"))
    built = cluster(*objects, *policies)
    return dataclasses.replace(built, nodes=tuple(dataclasses.replace(n, pod_cidrs=ranges) for n in built.nodes))


@pytest.mark.parametrize(
    ("sender", "address", "shown"),
    [
        pytest.param("a", B, ("drop", "ingress", "new-pod", None, UNKNOWN_B, None, None, (), ("x/a", B)),
                     id="to-the-unknown-address"),
        pytest.param("b", A, ("drop", "egress", "new-pod", None, UNKNOWN_B, None, None, (), (B, "x/a")),
                     id="from-the-unknown-address"),
    ],
)
def test_traffic_of_a_pod_address_no_known_pod_holds_is_logged_as_a_new_pod_drop(
    node: Node, backend: LibnftablesBackend, sender: str, address: str, shown: tuple[Any, ...]
) -> None:
    node.serve(node.a, 80)
    node.serve(node.b, 80)
    running = _without_b(B_ADMITS_A)
    Enforcer(backend).apply(_logged(running, new_pods=NewPodWindow.DENY))
    with NflogReader(GROUP, netns=node.node.name) as reader:
        assert not node.connects(getattr(node, sender), address, 80, timeout=0.5)
        documents = [drop_document(d) for d in drain([reader], AddressBook(running), quiet=QUIET)]
    assert documents and {_shown(d) for d in documents} == {shown}
