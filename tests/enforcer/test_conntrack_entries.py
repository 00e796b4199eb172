"""Reading ctnetlink entries (as pyroute2 decodes them) into flows (no kernel needed)."""

from __future__ import annotations

import ipaddress
import socket
from types import SimpleNamespace

import pytest
from pyroute2.conntrack import NFCTATcpProtoInfo
from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

from policyctl.enforcer.conntrack import Flow, flow_of_entry

ip = ipaddress.ip_address
ESTABLISHED = NFCTATcpProtoInfo(state=3)


def entry(orig: NFCTAttrTuple, protoinfo: NFCTATcpProtoInfo | None = None) -> SimpleNamespace:
    return SimpleNamespace(tuple_orig=orig, tuple_reply=orig.reverse(), protoinfo=protoinfo)


@pytest.mark.parametrize(
    ("orig", "protoinfo", "flow"),
    [
        pytest.param(
            NFCTAttrTuple(saddr="10.77.1.2", daddr="10.77.2.2", proto=6, sport=40000, dport=81),
            ESTABLISHED,
            Flow("tcp", ip("10.77.1.2"), ip("10.77.2.2"), 40000, 81, "ESTABLISHED"),
            id="tcp-with-its-state",
        ),
        pytest.param(
            NFCTAttrTuple(saddr="10.77.1.2", daddr="10.77.9.9", proto=17, sport=5353, dport=53),
            None,
            Flow("udp", ip("10.77.1.2"), ip("10.77.9.9"), 5353, 53),
            id="udp-without-state",
        ),
        pytest.param(
            NFCTAttrTuple(family=socket.AF_INET6, saddr="fd00::1", daddr="fd00::2", proto=132, sport=1, dport=3868),
            None,
            Flow("sctp", ip("fd00::1"), ip("fd00::2"), 1, 3868),
            id="sctp-over-ipv6",
        ),
        pytest.param(
            NFCTAttrTuple(saddr="10.77.1.2", daddr="10.77.2.2", proto=1, icmp_id=7, icmp_type=8),
            None,
            None,
            id="icmp-is-not-decided-by-port",
        ),
        pytest.param(
            NFCTAttrTuple(saddr="10.77.1.2", daddr="not-an-address", proto=17, sport=1, dport=2),
            None,
            None,
            id="unreadable-address",
        ),
    ],
)
def test_an_entry_is_read_by_its_original_tuple(
    orig: NFCTAttrTuple, protoinfo: NFCTATcpProtoInfo | None, flow: Flow | None
) -> None:
    assert flow_of_entry(entry(orig, protoinfo)) == flow
