"""The mid-stream drops across nodes: a revoked connection between pods on two lab nodes stays
cut when its server speaks first, and the node that drops the server's packet logs it to its
NFLOG group, explained by the mid-stream rule and the policy that polices the pod.

x/client (node-1) holds an established TCP connection to x/server (node-2) on port 9000. Each
node is synced as the agent syncs it (a :class:`NodeSync` with the real enforcer and conntrack
revocation in the node's namespace, the kernel's default ``nf_conntrack_tcp_loose=1``). Then a
policy change revokes one half: the server's ingress (node-2 cuts its entry, and the server's
next packet is a mid-stream pickup leaving a pod policed for ingress, dropped by node-2's
``egress``) or the client's egress (node-1 cuts its entry; node-2 still tracks the flow and
forwards the packet, which node-1's ``ingress`` drops on its way to a pod policed for egress).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from policyctl.agent.sync import NodeSync
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.conntrack import ConntrackTool
from policyctl.enforcer.drops import AddressBook, drop_document
from policyctl.enforcer.nflog import NflogReader
from policyctl.lab import netns
from policyctl.lab.state import drop_lease, take_lease
from policyctl.lab.topology import Cni, LabPlan, lab_cluster, plan_lab
from policyctl.policy.cluster import Cluster
from policyctl.policy.model import Family
from tests.agent.fakes import FixedSnapshots
from tests.builders import cluster, node, pod, pod_peer, policy, port, rule
from tests.enforcer.nflogdrain import drain

pytestmark = pytest.mark.kernel

GROUP = 44
QUIET = 0.8
PORT = 9000
CLIENT, SERVER = "x/client", "x/server"
PODS = (
    node("node-1"),
    node("node-2"),
    pod(CLIENT, {"role": "client"}, node="node-1", ips=["10.244.1.10"]),
    pod(SERVER, {"app": "server"}, node="node-2", ips=["10.244.2.10"]),
)
MID = ("TCP without SYN that conntrack does not track (a connection revoked or whose entry was lost): "
       "mid-stream pickups of policed pods are dropped")
REVOKED = {
    "server-ingress": (
        policy("x/server-in", {"app": "server"}, ingress=[rule(pod_peer({"role": "client"}), ports=[port(PORT)])]),
        policy("x/server-in", {"app": "server"}, types=["Ingress"]),
        "node-2",
        ("drop", "ingress", "mid-stream", SERVER,
         f"{MID} ({SERVER} is policed for ingress (isolated by x/server-in))"),
    ),
    "client-egress": (
        policy("x/client-out", {"role": "client"}, egress=[rule(pod_peer({"app": "server"}), ports=[port(PORT)])],
               types=["Egress"]),
        policy("x/client-out", {"role": "client"}, types=["Egress"]),
        "node-1",
        ("drop", "egress", "mid-stream", CLIENT,
         f"{MID} ({CLIENT} is policed for egress (isolated by x/client-out))"),
    ),
}
"""Which half a change revokes: the policy before and after, the node whose rule drops the
server's first packet, and what its drop document shows."""


@pytest.fixture
def lab(prefix: str, lab_namespaces: set[str]) -> Iterator[LabPlan]:
    """Namespaces, links and routes of the two nodes and two pods, leased to this process."""
    plan = plan_lab(cluster(*PODS), prefix=prefix, cni=Cni.BRIDGED, families=(Family.IPV4,))
    take_lease(prefix, os.getpid())
    try:
        netns.apply_plan(plan)
        yield plan
    finally:
        netns.teardown(prefix)
        drop_lease(prefix)


def _syncs(plan: LabPlan, model: FixedSnapshots) -> list[NodeSync]:
    table = f"{plan.prefix}policyctl"
    return [
        NodeSync(model, node=n.name, enforcer=Enforcer(LibnftablesBackend(netns=n.netns), table=table),
                 conntrack=ConntrackTool(netns=n.netns), log_group=GROUP)
        for n in plan.nodes
    ]


def _connection(plan: LabPlan) -> tuple[socket.socket, socket.socket, socket.socket]:
    """(listener, the server's end, the client's end) of one established connection, each
    socket opened inside its pod's namespace."""
    server_ns, client_ns = plan.pod_by_key[SERVER].netns, plan.pod_by_key[CLIENT].netns
    address = plan.pod_by_key[SERVER].address(Family.IPV4)
    assert address is not None
    with netns.inside(server_ns):
        listener = socket.create_server(("0.0.0.0", PORT))
    listener.settimeout(5.0)
    with netns.inside(client_ns):
        client = socket.create_connection((str(address), PORT), timeout=5.0)
    accepted, _ = listener.accept()
    return listener, accepted, client


def _received(sock: socket.socket, payload: bytes, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(len(payload)) == payload
    except (TimeoutError, OSError):
        return False


def _shown(document: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("action", "direction", "drop_rule", "pod", "reason")
    return (*(document[k] for k in keys), (document["source"]["name"], document["destination"]["name"]),
            document["source_port"])


@pytest.mark.parametrize("revoked", sorted(REVOKED))
def test_a_revoked_connection_across_nodes_stays_cut_and_its_drop_is_explained(lab: LabPlan, revoked: str) -> None:
    allowing, denying, dropping, shown = REVOKED[revoked]
    model = FixedSnapshots(lab_cluster(cluster(*PODS, allowing), lab))
    syncs = _syncs(lab, model)
    sockets: tuple[socket.socket, ...] = ()
    try:
        for sync in syncs:
            sync()
        listener, server, client = sockets = _connection(lab)
        client.sendall(b"ping")
        assert _received(server, b"ping", timeout=2.0), "the allowed connection does not carry data"
        denied: Cluster = lab_cluster(cluster(*PODS, denying), lab)
        model.cluster = denied
        with NflogReader(GROUP, netns=lab.node_by_name[dropping].netns) as reader:
            revocations = {sync.node: sync().revoked for sync in syncs}
            assert revocations[dropping] == 1, revocations
            server.sendall(b"push")
            assert not _received(client, b"push", timeout=1.0), "the revoked connection still carries data"
            documents = [drop_document(d) for d in drain([reader], AddressBook(denied), quiet=QUIET)]
    finally:
        for sock in sockets:
            sock.close()
        for sync in syncs:
            sync.enforcer.backend.close()  # type: ignore[attr-defined]
            sync.conntrack.close()  # type: ignore[union-attr]
    assert {_shown(d) for d in documents} == {(*shown, (SERVER, CLIENT), PORT)}
