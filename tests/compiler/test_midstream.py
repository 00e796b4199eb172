"""Mid-stream TCP pickups: a TCP packet without SYN that conntrack takes for a new connection
(``nf_conntrack_tcp_loose=1``) is dropped when the half it would skip is policed on this node,
so a revoked connection cannot come back as its server's egress or its client's ingress."""

from __future__ import annotations

import ipaddress
import json

import pytest

from policyctl.compiler.compile import compile_node
from policyctl.compiler.evaluator import ACK, SYN, Evaluator, Packet, UnsupportedExpression
from policyctl.compiler.render_json import render_json
from policyctl.compiler.render_text import render_text
from policyctl.compiler.ruleset import Chain, CtStateIn, Lookup, Mode, Ruleset, TcpNotSyn
from policyctl.policy.cluster import Cluster
from tests.builders import cluster, node, pod, pod_peer, policy, port, rule

PSH_ACK = ACK | 0x08
SERVER, CLIENT, OTHER, NODE = "10.0.1.10", "10.0.2.10", "10.0.1.20", "192.168.0.1"


def _cluster(*, client_egress: bool = False) -> Cluster:
    """x/server (node-1) admits x/client (node-2) on TCP 80; x/other (node-1) is not isolated.
    With ``client_egress`` the client is isolated for egress too and may reach the server."""
    policies = [policy("x/server-in", {"app": "server"}, ingress=[rule(pod_peer({"app": "client"}), ports=[port(80)])])]
    if client_egress:
        policies.append(
            policy("x/client-out", {"app": "client"}, egress=[rule(pod_peer({"app": "server"}), ports=[port(80)])])
        )
    return cluster(
        node("node-1", NODE, "fd00:192::1"),
        node("node-2", "192.168.0.2"),
        pod("x/server", {"app": "server"}, node="node-1", ips=[SERVER, "fd00:10:1::10"]),
        pod("x/other", {"app": "other"}, node="node-1", ips=[OTHER]),
        pod("x/client", {"app": "client"}, node="node-2", ips=[CLIENT]),
        *policies,
    )


def _evaluator(ruleset: Ruleset) -> Evaluator:
    return Evaluator(json.loads(render_json(ruleset)))


def _tcp(source: str, destination: str, dport: int, flags: int, state: str = "new") -> Packet:
    return Packet(ipaddress.ip_address(source), ipaddress.ip_address(destination), 6, dport, tcp_flags=flags,
                  ct_state=state)


@pytest.mark.parametrize(
    ("packet", "accepted"),
    [
        pytest.param(_tcp(SERVER, CLIENT, 40000, ACK), False, id="server-ack-picked-up-mid-stream-is-dropped"),
        pytest.param(_tcp(SERVER, CLIENT, 40000, PSH_ACK), False, id="server-data-picked-up-mid-stream-is-dropped"),
        pytest.param(
            _tcp("fd00:10:1::10", "fd00:10:2::10", 40000, ACK), False, id="the-same-over-ipv6"
        ),
        pytest.param(_tcp(SERVER, CLIENT, 443, SYN), True, id="server-opening-its-own-connection-passes"),
        pytest.param(_tcp(SERVER, CLIENT, 40000, ACK, "established"), True, id="established-replies-pass"),
        pytest.param(_tcp(OTHER, CLIENT, 40000, ACK), True, id="a-pod-without-an-ingress-chain-is-left-alone"),
        pytest.param(
            Packet(ipaddress.ip_address(SERVER), ipaddress.ip_address(CLIENT), 17, 40000), True,
            id="udp-has-no-opening-packet-and-passes",
        ),
    ],
)
def test_the_egress_chain_drops_a_mid_stream_pickup_from_a_pod_with_an_ingress_chain(
    packet: Packet, accepted: bool
) -> None:
    outcome = _evaluator(compile_node(_cluster(), "node-1")).evaluate("postrouting", packet)
    assert outcome.accepted is accepted


def test_an_allowed_new_connection_still_opens_with_its_syn() -> None:
    evaluator = _evaluator(compile_node(_cluster(), "node-1"))
    assert evaluator.evaluate("postrouting", _tcp(CLIENT, SERVER, 80, SYN)).accepted
    assert not evaluator.evaluate("postrouting", _tcp(CLIENT, SERVER, 81, SYN)).accepted


@pytest.mark.parametrize(
    ("source", "accepted"),
    [
        pytest.param(SERVER, False, id="from-a-pod"),
        pytest.param(NODE, False, id="from-the-node-itself-before-its-bypass"),
    ],
)
def test_the_ingress_chain_drops_a_mid_stream_pickup_to_a_pod_with_an_egress_chain(source: str, accepted: bool) -> None:
    """The client's node: the server's packet of a connection the client's egress opened."""
    evaluator = _evaluator(compile_node(_cluster(client_egress=True), "node-2"))
    assert evaluator.evaluate("postrouting", _tcp(source, CLIENT, 40000, ACK)).accepted is accepted


def test_audit_mode_counts_a_mid_stream_pickup_and_lets_it_through() -> None:
    evaluator = _evaluator(compile_node(_cluster(), "node-1", mode=Mode.AUDIT))
    outcome = evaluator.evaluate("postrouting", _tcp(SERVER, CLIENT, 40000, ACK))
    assert outcome.accepted
    assert ("egress", 2) in outcome.trace


def test_the_policed_sets_hold_each_dispatch_address_once() -> None:
    ruleset = compile_node(_cluster(client_egress=True), "node-2")
    sets = {s.name: s for s in ruleset.sets}
    maps = {m.name: m for m in ruleset.maps}
    for direction in ("ingress", "egress"):
        for v in ("4", "6"):
            held = {e[0].low for e in sets[f"{direction}-policed-v{v}"].elements}
            assert held == {int(a) for a, _ in maps[f"{direction}-v{v}"].elements}
    assert [e[0].low for e in sets["egress-policed-v4"].elements] == [int(ipaddress.ip_address(CLIENT))]


def _lookups(chain: Chain) -> list[str]:
    return [next((s.set for s in r.statements if isinstance(s, Lookup)), "") for r in chain.rules]


def test_the_mid_stream_rules_come_after_established_and_before_dispatch_and_the_node_bypass() -> None:
    ruleset = compile_node(_cluster(), "node-1")
    egress, ingress, input_ = (ruleset.chain(n) for n in ("egress", "ingress", "input"))
    assert _lookups(egress)[2:6] == ["ingress-policed-v4"] * 2 + ["ingress-policed-v6"] * 2
    assert _lookups(ingress)[2:8] == ["egress-policed-v4"] * 2 + ["egress-policed-v6"] * 2 + ["node-v4", "node-v6"]
    assert not any("-policed-" in name for name in _lookups(input_))
    assert all(r.statements[:2] == (CtStateIn(("new",)), TcpNotSyn()) for r in egress.rules[2:6])
    text = render_text(ruleset)
    assert "ct state new tcp flags != syn / fin,syn,rst,ack ip saddr @ingress-policed-v4 counter drop" in text
    assert ('ct state new tcp flags != syn / fin,syn,rst,ack ip saddr @ingress-policed-v4 limit rate 10/second '
            'burst 20 packets log prefix "policyctl drop mid-stream ingress "') in text


DROP = {"drop": None}


def _flags_rule(left: object, right: object, op: str = "!=") -> Evaluator:
    table = {"family": "inet", "table": "t"}
    return Evaluator({"nftables": [
        {"table": {"family": "inet", "name": "t"}},
        {"chain": {**table, "name": "c", "type": "filter", "hook": "postrouting", "prio": 0, "policy": "accept"}},
        {"rule": {**table, "chain": "c", "expr": [{"match": {"op": op, "left": left, "right": right}}, DROP]}},
    ]})


FLAGS = {"payload": {"protocol": "tcp", "field": "flags"}}
SADDR = {"payload": {"protocol": "ip", "field": "saddr"}}


@pytest.mark.parametrize(
    ("left", "right", "op"),
    [
        pytest.param({"&": [FLAGS, ["fin", "syn", "bogus"]]}, "syn", "!=", id="unknown-flag-in-the-mask"),
        pytest.param({"&": [FLAGS, ["syn"]]}, "syn", "in", id="another-operator"),
        pytest.param({"&": [SADDR, ["syn"]]}, "syn", "!=", id="not-tcp-flags"),
    ],
)
def test_the_evaluator_refuses_masked_matches_it_does_not_know(left: object, right: object, op: str) -> None:
    with pytest.raises(UnsupportedExpression):
        _flags_rule(left, right, op).evaluate("postrouting", _tcp(SERVER, CLIENT, 80, ACK))


def test_a_tcp_flags_match_never_matches_another_protocol() -> None:
    evaluator = _flags_rule({"&": [FLAGS, ["fin", "syn", "rst", "ack"]]}, "syn")
    assert not evaluator.evaluate("postrouting", _tcp(SERVER, CLIENT, 80, ACK)).accepted
    assert evaluator.evaluate("postrouting", _tcp(SERVER, CLIENT, 80, SYN)).accepted
    udp = Packet(ipaddress.ip_address(SERVER), ipaddress.ip_address(CLIENT), 17, 80, tcp_flags=ACK)
    assert evaluator.evaluate("postrouting", udp).accepted
