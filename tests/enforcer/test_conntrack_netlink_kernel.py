"""Revoking many flows over ctnetlink: every flow the judge denies is gone from a fresh dump,
every other flow is still there (a busy service losing access has thousands of flows)."""

from __future__ import annotations

import functools
import socket
import subprocess
from collections.abc import Iterator

import pytest

from policyctl.enforcer.conntrack import ConntrackCommand, ConntrackNetlink, ConntrackTool, Flow, revoke
from tests.enforcer.netns import Namespace, netns_supported, unique_prefix

pytestmark = pytest.mark.kernel

KEPT_PORT, CUT_PORT = 9000, 9001
FLOWS_PER_PORT = {"127.0.0.1": 900, "::1": 100}
#: Any conntrack-using rule makes the namespace track its traffic, loopback included.
TRACKING = """table inet track {
    chain output {
        type filter hook output priority 0; policy accept;
        ct state established accept
    }
}
"""


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    reason = netns_supported()
    if reason is not None:
        pytest.skip(reason)
    ns = Namespace(f"{unique_prefix()}-ct")
    try:
        ns.exec("ip", "link", "set", "lo", "up")
        subprocess.run(
            ["ip", "netns", "exec", ns.name, "nft", "-f", "-"], input=TRACKING, text=True, check=True,
            capture_output=True,
        )
        yield ns
    finally:
        ns.close()


def _send_flows(address: str, count: int) -> None:
    """``count`` UDP flows to each port from as many ephemeral source ports (each socket's
    first datagram makes one tracked flow; the entry outlives the socket, but a socket is
    closed only once all are sent, so that no two share a source port)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sockets = []
    try:
        for port in (KEPT_PORT, CUT_PORT):
            server = socket.socket(family, socket.SOCK_DGRAM)
            sockets.append(server)
            server.bind((address, port))
            for _ in range(count):
                client = socket.socket(family, socket.SOCK_DGRAM)
                sockets.append(client)
                client.sendto(b"x", (address, port))
    finally:
        for sock in sockets:
            sock.close()


def ours(flows: tuple[Flow, ...]) -> set[Flow]:
    return {f for f in flows if f.protocol == "udp" and f.destination_port in (KEPT_PORT, CUT_PORT)}


def denies_cut_port(flow: Flow) -> bool:
    return flow.destination_port != CUT_PORT


def test_every_denied_flow_of_thousands_is_cut_and_every_other_kept(namespace: Namespace) -> None:
    for address, count in FLOWS_PER_PORT.items():
        namespace.call(functools.partial(_send_flows, address, count))
    table = ConntrackNetlink(netns=namespace.name)
    try:
        before = ours(table.flows())
        expected_cut = {f for f in before if f.destination_port == CUT_PORT}
        assert len(before) == 2 * sum(FLOWS_PER_PORT.values())
        assert {f.family for f in expected_cut} == {"ipv4", "ipv6"}

        report = revoke(table, denies_cut_port)

        assert set(report.revoked) == expected_cut
        after = ours(table.flows())
        assert after == before - expected_cut
        assert all(f.destination_port == KEPT_PORT for f in after)
        gone = min(expected_cut, key=Flow.sort_key)
        assert table.delete(gone) is False
    finally:
        table.close()


def test_the_table_of_a_named_namespace_is_its_own(namespace: Namespace) -> None:
    namespace.call(lambda: _send_flows("127.0.0.1", 3))
    inside = ConntrackNetlink(netns=namespace.name)
    outside = ConntrackNetlink()
    try:
        flows = ours(inside.flows())
        assert len(flows) == 6
        assert not flows & set(outside.flows())
        assert outside.delete(min(flows, key=Flow.sort_key)) is False
        assert ours(inside.flows()) == flows
    finally:
        inside.close()
        outside.close()


def test_the_node_table_is_listed_by_the_command_and_cut_over_netlink(namespace: Namespace) -> None:
    """Both ways list the same flows; the tool lists with the faster one (the command) and
    cuts through the socket."""
    tool = ConntrackTool(netns=namespace.name)
    assert isinstance(tool.lister, ConntrackCommand) and isinstance(tool.cutter, ConntrackNetlink)
    namespace.call(functools.partial(_send_flows, "127.0.0.1", 2))
    assert ours(tool.flows()) == ours(tool.cutter.flows())
    report = revoke(tool, denies_cut_port)
    assert {(f.destination_port, f.family) for f in report.revoked} == {(CUT_PORT, "ipv4")} and len(report.revoked) == 2
    assert {f.destination_port for f in ours(tool.flows())} == {KEPT_PORT}
    tool.close()
