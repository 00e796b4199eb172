"""The evaluator over the enforcer's committed table state against the evaluator of the JSON
document that table was written from: the same outcome for every packet, after every
incremental commit, with what an unchanged set built reused."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from policyctl.compiler.evaluator import Evaluator, UnsupportedExpression
from policyctl.compiler.incremental import NodeCompiler
from policyctl.compiler.markedpeers import IdentityMark
from policyctl.compiler.render_json import to_document
from policyctl.compiler.ruleset import Mode
from policyctl.compiler.delta import RulesetDelta
from policyctl.enforcer.diff import DeltaMismatch, plan_delta
from policyctl.enforcer.errors import RulesetError
from policyctl.enforcer.stateevaluator import StateEvaluators, StateSet
from policyctl.enforcer.tables import TableState, read_table
from tests.cluster_strategies import tiered_clusters
from tests.packets import HOOKS, drawn_packets
from tests.strategies import cluster_histories, node_with_pods

TABLE = "t"
MARK = IdentityMark(0x000F0000)
FOREIGN_MARK = 0xA5A0A5A5


def _committed(state: TableState | None, delta: RulesetDelta, document: dict[str, Any]) -> TableState:
    """What the enforcer commits: the delta patched into its last commit, or the whole
    ruleset first and where the delta does not fit (two local pods sharing an address). A
    ruleset the enforcer refuses (a dispatch map with one address twice) is never committed,
    so there is nothing to compare."""
    if state is not None:
        try:
            return plan_delta(state, delta)[1]
        except DeltaMismatch:
            pass
    try:
        return read_table(document, family="inet", table=TABLE)
    except RulesetError:
        reject()



@pytest.mark.parametrize("mark", [None, MARK], ids=["jumping", "marked"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_committed_state_decides_every_packet_as_its_document_does(
    mark: IdentityMark | None, data: st.DataObject
) -> None:
    """A node's table is followed through a history of cluster events as the agent commits
    it (the first ruleset read whole, then each delta patched in), or a cluster with
    cluster-scoped policies of every tier is committed whole; after every commit each
    packet gets the same outcome (verdict, trace, logs, mark) from the state as from the
    whole ruleset's document, with one set of evaluators reused throughout."""
    history = data.draw(st.one_of(cluster_histories(steps=5), tiered_clusters().map(lambda c: [c])))
    mode = data.draw(st.sampled_from(list(Mode)))
    node = node_with_pods(history)
    compiler = NodeCompiler(node, table=TABLE, mode=mode, identity_mark=mark)
    evaluators = StateEvaluators()
    state: TableState | None = None
    for snapshot in history:
        delta = compiler.update(snapshot)
        document = to_document(compiler.ruleset)
        state = _committed(state, delta, document)
        whole, committed = Evaluator(document), evaluators.evaluator(state)
        for connection, packet in drawn_packets(data, snapshot, 8, mark=FOREIGN_MARK if mark else 0):
            for hook in HOOKS:
                assert committed.evaluate(hook, packet) == whole.evaluate(hook, packet), (hook, connection)


def _state(*objects: dict[str, Any]) -> Any:
    return read_table({"nftables": [{"table": {"family": "inet", "name": TABLE}}, *objects]},
                      family="inet", table=TABLE)


def _set(name: str, kind: str, type_: Any, elements: list[Any], **spec: Any) -> dict[str, Any]:
    return {kind: {"family": "inet", "table": TABLE, "name": name, "type": type_, "elem": elements, **spec}}


PORTS = _set("ports", "set", ["ipv4_addr", "inet_proto", "inet_service"], [
    {"concat": ["10.0.0.1", "tcp", 80]},
    {"concat": [{"prefix": {"addr": "10.1.0.0", "len": 16}}, "udp", {"range": [1000, 1999]}]},
], flags=["interval"])
PEERS = _set("peers", "map", "ipv4_addr", [
    ["10.0.0.1", {"jump": {"target": "a"}}],
    [{"range": ["10.2.0.0", "10.2.0.255"]}, {"goto": {"target": "b"}}],
], map="verdict", flags=["interval"])


@pytest.mark.parametrize(
    ("key", "found"),
    [
        ((int(ipaddress.ip_address("10.0.0.1")), 6, 80), True),
        ((int(ipaddress.ip_address("10.0.0.1")), 6, 81), False),
        ((int(ipaddress.ip_address("10.0.0.1")), 17, 80), False),
        ((int(ipaddress.ip_address("10.1.200.3")), 17, 1000), True),
        ((int(ipaddress.ip_address("10.1.200.3")), 17, 1999), True),
        ((int(ipaddress.ip_address("10.1.200.3")), 17, 2000), False),
        ((int(ipaddress.ip_address("10.2.0.1")), 17, 1500), False),
    ],
)
def test_a_set_holds_a_key_when_every_field_lies_in_one_element(key: tuple[int, ...], found: bool) -> None:
    assert StateSet(_state(PORTS).sets["ports"]).contains(key) is found


@pytest.mark.parametrize(
    ("address", "verdict"),
    [
        ("10.0.0.1", {"jump": {"target": "a"}}),
        ("10.2.0.0", {"goto": {"target": "b"}}),
        ("10.2.0.255", {"goto": {"target": "b"}}),
        ("10.2.1.0", None),
    ],
)
def test_a_verdict_map_gives_the_verdict_of_the_element_holding_the_key(address: str, verdict: Any) -> None:
    peers = StateSet(_state(PEERS).sets["peers"])
    assert peers.lookup((int(ipaddress.ip_address(address)),)) == verdict


@pytest.mark.parametrize(
    "declared",
    [
        _set("m", "map", "ipv4_addr", [["10.0.0.1", "10.0.0.2"]], map="ipv4_addr"),
        _set("s", "set", "ether_addr", []),
        _set("s", "set", "ipv4_addr", [], flags=["interval", "timeout"]),
    ],
    ids=["data map", "key type", "flags"],
)
def test_what_the_evaluator_does_not_interpret_is_refused_not_guessed(declared: dict[str, Any]) -> None:
    state = _state(declared)
    with pytest.raises(UnsupportedExpression):
        StateSet(next(iter(state.sets.values())))


def test_an_unchanged_set_is_read_once_across_commits_and_a_changed_one_again() -> None:
    other = _set("other", "set", "ipv4_addr", ["10.9.9.9"])
    first = _state(PORTS, other)
    evaluators = StateEvaluators()
    before = evaluators.evaluator(first)
    ports, kept = before.sets["ports"], before.sets["other"]
    changed = _state(_set("ports", "set", ["ipv4_addr", "inet_proto", "inet_service"],
                          [{"concat": ["10.0.0.2", "tcp", 80]}], flags=["interval"]), other)
    second = TableState(family=first.family, name=first.name,
                        sets={"ports": changed.sets["ports"], "other": first.sets["other"]}, chains=first.chains)
    after = evaluators.evaluator(second)
    assert after.sets["other"] is kept
    assert after.sets["ports"] is not ports
    key = (int(ipaddress.ip_address("10.0.0.2")), 6, 80)
    assert after.sets["ports"].contains(key) and not ports.contains(key)
