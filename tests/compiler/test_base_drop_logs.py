"""The base chains' drop rules (mid-stream pickups, the new-pod window) log each drop, rate-limited,
with a prefix of their own, only on the drop path, and to the NFLOG group like the pod chains."""

from __future__ import annotations

import ipaddress
import json

import pytest

from policyctl.compiler.compile import compile_node
from policyctl.compiler.droplog import LOG_RATE, log_to_group
from policyctl.compiler.evaluator import ACK, SYN, Evaluator, Packet
from policyctl.compiler.newpods import NewPodWindow
from policyctl.compiler.render_json import render_json
from policyctl.compiler.render_text import render_text
from policyctl.compiler.ruleset import Log, Mode, Ruleset
from tests.compiler.test_midstream import CLIENT, OTHER, SERVER, _cluster
from tests.compiler.test_newpods import BASE, CIDRS, GATEWAY, NODE_IP, REMOTE, UNKNOWN, with_cidrs

MID_IN = "policyctl drop mid-stream ingress "
MID_OUT = "policyctl drop mid-stream egress "
NEW_OUT = "policyctl drop new-pod egress "
NEW_IN = "policyctl drop new-pod ingress "


def _tcp(source: object, destination: object, dport: int, flags: int, state: str = "new") -> Packet:
    return Packet(ipaddress.ip_address(source), ipaddress.ip_address(destination), 6, dport,  # type: ignore[arg-type]
                  tcp_flags=flags, ct_state=state)


def _evaluator(ruleset: Ruleset) -> Evaluator:
    return Evaluator(json.loads(render_json(ruleset)), local_addresses=(NODE_IP, GATEWAY))


def _window(mode: Mode = Mode.ENFORCE) -> Ruleset:
    return compile_node(with_cidrs(BASE, *CIDRS), "n1", mode=mode, new_pods=NewPodWindow.DENY)


@pytest.mark.parametrize(
    ("ruleset", "hook", "packet", "accepted", "logs"),
    [
        pytest.param(lambda: compile_node(_cluster(), "node-1"), "postrouting", _tcp(SERVER, CLIENT, 40000, ACK),
                     False, (MID_IN,), id="mid-stream-pickup-from-a-pod-with-an-ingress-chain-logs-once"),
        pytest.param(lambda: compile_node(_cluster(client_egress=True), "node-2"), "postrouting",
                     _tcp(SERVER, CLIENT, 40000, ACK), False, (MID_OUT,),
                     id="mid-stream-pickup-to-a-pod-with-an-egress-chain-logs-once"),
        pytest.param(lambda: compile_node(_cluster(), "node-1"), "postrouting", _tcp(SERVER, CLIENT, 443, SYN),
                     True, (), id="an-opening-syn-is-not-logged"),
        pytest.param(lambda: compile_node(_cluster(), "node-1"), "postrouting",
                     _tcp(SERVER, CLIENT, 40000, ACK, "established"), True, (),
                     id="an-established-reply-is-not-logged"),
        pytest.param(lambda: compile_node(_cluster(), "node-1"), "postrouting", _tcp(OTHER, CLIENT, 40000, ACK),
                     True, (), id="a-pickup-from-an-unpoliced-pod-is-not-logged"),
        pytest.param(_window, "postrouting", _tcp(UNKNOWN, REMOTE, 80, SYN), False, (NEW_OUT,),
                     id="an-unknown-address-sending-logs-new-pod-egress"),
        pytest.param(_window, "input", _tcp(UNKNOWN, NODE_IP, 80, SYN), False, (NEW_OUT,),
                     id="an-unknown-address-reaching-the-node-logs-new-pod-egress"),
        pytest.param(_window, "postrouting", _tcp(REMOTE, UNKNOWN, 80, SYN), False, (NEW_IN,),
                     id="traffic-to-an-unknown-address-logs-new-pod-ingress"),
        pytest.param(_window, "postrouting", _tcp(NODE_IP, UNKNOWN, 80, SYN), True, (),
                     id="the-node-reaching-an-unknown-address-is-not-logged"),
        pytest.param(_window, "postrouting", _tcp(REMOTE, "10.244.1.11", 80, SYN), True, (),
                     id="a-known-pod-is-not-logged"),
    ],
)
def test_a_base_chain_drop_is_logged_with_its_own_prefix_and_nothing_accepted_is(
    ruleset: object, hook: str, packet: Packet, accepted: bool, logs: tuple[str, ...]
) -> None:
    outcome = _evaluator(ruleset()).evaluate(hook, packet)  # type: ignore[operator]
    assert (outcome.accepted, outcome.logs) == (accepted, logs)


@pytest.mark.parametrize(
    ("ruleset", "prefixes"),
    [
        pytest.param(lambda: compile_node(_cluster(), "node-1", mode=Mode.AUDIT),
                     {"policyctl audit mid-stream ingress ", "policyctl audit mid-stream egress "}, id="mid-stream"),
        pytest.param(lambda: _window(Mode.AUDIT),
                     {"policyctl audit mid-stream ingress ", "policyctl audit mid-stream egress ",
                      "policyctl audit new-pod egress ", "policyctl audit new-pod ingress "}, id="new-pod-window"),
    ],
)
def test_audit_mode_logs_the_base_rules_as_audit(ruleset: object, prefixes: set[str]) -> None:
    built: Ruleset = ruleset()  # type: ignore[operator]
    found = {s.prefix for c in built.chains if c.hook is not None for r in c.rules for s in r.statements
             if isinstance(s, Log)}
    assert found == prefixes


def test_audit_mode_logs_a_new_pod_packet_and_lets_it_through() -> None:
    outcome = _evaluator(_window(Mode.AUDIT)).evaluate("postrouting", _tcp(UNKNOWN, REMOTE, 80, SYN))
    assert (outcome.accepted, outcome.logs) == (True, ("policyctl audit new-pod egress ",))


def test_each_log_rule_is_rate_limited_and_has_the_matches_of_the_drop_after_it() -> None:
    for chain in _window().chains:
        rules = chain.rules
        for i, rule in enumerate(rules):
            if not any(isinstance(s, Log) for s in rule.statements) or chain.hook is None:
                continue
            matches = rule.statements[:-2]
            assert rule.statements[-2:-1] == (LOG_RATE,)
            assert rules[i + 1].statements[: len(matches)] == matches
            assert "drop" in str(rules[i + 1].statements[-1]).lower()


def test_the_drop_log_group_reaches_the_base_rules() -> None:
    text = render_text(log_to_group(_window(), 7))
    for prefix in (MID_IN, MID_OUT, NEW_OUT, NEW_IN):
        assert f'log prefix "{prefix}" group 7' in text
    assert text.count("log prefix") == text.count("group 7")
