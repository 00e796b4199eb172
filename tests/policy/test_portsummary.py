"""The exact allowed-port summary: split at policy boundaries, one evaluation per interval."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.policy.model import Protocol
from policyctl.policy.portsummary import LAST_PORT, PortRange, describe_ranges, summarize_ports
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from tests.builders import cluster, container_port, pod, pod_peer, policy, port, rule
from tests.strategies import cluster_families, clusters

CLIENT = pod("x/client", {"app": "client"}, ips=["10.0.0.1"])


def _server(*ports):
    return pod("x/server", {"app": "server"}, ips=["10.0.0.2"], ports=ports)


def _allowed(summary, protocol):
    return [(r.first, r.last) for r in summary.allowed_ranges() if r.protocol is protocol]


@pytest.mark.parametrize(
    ("ports", "server_ports", "expected_tcp", "expected_udp"),
    [
        pytest.param([port(80)], (), [(80, 80)], [], id="one-number"),
        pytest.param([port(80, end_port=90)], (), [(80, 90)], [], id="range-with-endPort"),
        pytest.param([port(80), port(81)], (), [(80, 81)], [], id="adjacent-numbers-merge"),
        pytest.param([port(80, end_port=85), port(83, end_port=90)], (), [(80, 90)], [], id="overlapping-ranges-merge"),
        pytest.param(
            [port("http")], (container_port(8080, "TCP", "http"),), [(8080, 8080)], [], id="named-port-resolved"
        ),
        pytest.param([port("http")], (container_port(8080, "UDP", "http"),), [], [], id="named-port-other-protocol"),
        pytest.param([port("http")], (), [], [], id="named-port-undefined"),
        pytest.param([port(None, "UDP")], (), [], [(1, LAST_PORT)], id="all-ports-of-udp"),
        pytest.param(
            [port(1), port(LAST_PORT)], (), [(1, 1), (LAST_PORT, LAST_PORT)], [], id="edges-of-the-port-space"
        ),
        pytest.param([], (), [(1, LAST_PORT)], [(1, LAST_PORT)], id="no-ports-means-every-port"),
    ],
)
def test_allowed_ports_are_exact_ranges(ports, server_ports, expected_tcp, expected_udp) -> None:
    server = _server(*server_ports)
    allow = policy("x/allow", {"app": "server"}, ingress=[rule(pod_peer({"app": "client"}), ports=ports)])
    summary = summarize_ports(cluster(CLIENT, server, allow), CLIENT, server)
    assert _allowed(summary, Protocol.TCP) == expected_tcp
    assert _allowed(summary, Protocol.UDP) == expected_udp


def test_each_half_is_summarised_on_its_own() -> None:
    server = _server()
    egress = policy("x/client-out", {"app": "client"}, egress=[rule(ports=[port(80, end_port=100)])], types=["Egress"])
    ingress = policy("x/server-in", {"app": "server"}, ingress=[rule(ports=[port(90, end_port=200)])])
    summary = summarize_ports(cluster(CLIENT, server, egress, ingress), CLIENT, server, protocols=[Protocol.TCP])
    assert [(r.first, r.last) for r in summary.allowed_ranges(lambda v: v.egress.allowed)] == [(80, 100)]
    assert [(r.first, r.last) for r in summary.allowed_ranges(lambda v: v.ingress.allowed)] == [(90, 200)]
    assert [(r.first, r.last) for r in summary.allowed_ranges()] == [(90, 100)]


def test_intervals_cover_every_port_of_every_protocol_once() -> None:
    server = _server()
    allow = policy("x/allow", {"app": "server"}, ingress=[rule(ports=[port(80), port(443, "UDP")])])
    summary = summarize_ports(cluster(CLIENT, server, allow), CLIENT, server)
    for protocol in Protocol:
        spans = [(i.first, i.last) for i in summary.intervals if i.protocol is protocol]
        assert spans[0][0] == 1 and spans[-1][1] == LAST_PORT
        assert all(a[1] + 1 == b[0] for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize(
    ("ranges", "expected"),
    [
        pytest.param([(Protocol.TCP, 1, LAST_PORT, True)], "everything allowed", id="all"),
        pytest.param([(Protocol.TCP, 1, LAST_PORT, False)], "everything denied", id="none"),
        pytest.param(
            [(Protocol.TCP, 1, 79, False), (Protocol.TCP, 80, 81, True), (Protocol.TCP, 82, LAST_PORT, False),
             (Protocol.UDP, 1, LAST_PORT, False)],
            "TCP 80-81 allowed, everything else denied",
            id="one-range",
        ),
        pytest.param(
            [(Protocol.TCP, 1, 21, True), (Protocol.TCP, 22, 22, False), (Protocol.TCP, 23, LAST_PORT, True),
             (Protocol.UDP, 1, LAST_PORT, True)],
            "TCP 22 denied, everything else allowed",
            id="one-hole",
        ),
        pytest.param(
            [
                (Protocol.TCP, 1, LAST_PORT, False),
                (Protocol.UDP, 1, LAST_PORT, True),
                (Protocol.SCTP, 1, LAST_PORT, False),
            ],
            "UDP (all ports) allowed, everything else denied",
            id="a-whole-protocol",
        ),
    ],
)
def test_describe_ranges_in_words(ranges, expected) -> None:
    assert describe_ranges([PortRange(*r) for r in ranges]) == expected


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_summary_agrees_with_evaluate_on_any_port(data) -> None:
    """The invariant the module rests on: the verdict is constant on each interval."""
    base = data.draw(clusters(max_pods=4, max_policies=3))
    source = data.draw(st.sampled_from(base.pods))
    destination = data.draw(st.sampled_from(base.pods))
    protocol = data.draw(st.sampled_from(list(Protocol)))
    family = data.draw(st.sampled_from(cluster_families(base)))
    summary = summarize_ports(base, source, destination, family=family, protocols=[protocol])
    interval = data.draw(st.sampled_from(summary.intervals))
    number = data.draw(st.integers(interval.first, interval.last))
    expected = evaluate(base, Connection(source, destination, protocol, number, family=summary.family))
    assert interval.verdict.allowed == expected.allowed
    assert interval.verdict.egress.allowed == expected.egress.allowed
    assert interval.verdict.ingress.allowed == expected.ingress.allowed
