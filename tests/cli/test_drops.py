"""``policyctl drops``: drops printed as flows with their explanation, from the agent or read here."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from policyctl.agent.drops import DropLog
from policyctl.agent.httpserver import BoundedHTTPServer
from policyctl.cli.render_drops import drop_lines
from policyctl.enforcer.drops import AddressBook, attribute, drop_document
from tests.enforcer.test_drops import FIXTURE, addressed, logged

INGRESS = logged("policyctl drop ingress shop/b ", "lab/a", "shop/b")
DENY = logged("policyctl drop egress lab/a ", "lab/a", "shop/a")


def document(packet: Any) -> dict[str, Any]:
    drop = attribute(packet, AddressBook(addressed()), now=0.0)
    assert drop is not None
    return drop_document(drop)


def line(text: str) -> int:
    return next(i for i, found in enumerate(FIXTURE.read_text().splitlines(), 1) if text in found)


def test_a_network_policy_drop_reads_as_the_flow_then_the_isolation_and_the_hints() -> None:
    lines = drop_lines(document(INGRESS))
    policy = line("name: b-from-a") - 2
    assert lines[:3] == [
        "2023-11-14T22:13:20.500Z DROP ingress shop/b: lab/a (10.0.1.2) → shop/b (10.0.2.3) TCP/80",
        "  shop/b is isolated for Ingress by shop/b-from-a and no rule matches",
        f"  policy shop/b-from-a ({FIXTURE}:{policy}): ingress[0] ({FIXTURE}:{line('  - from:')}) peer ✘ port ✔",
    ]
    assert lines[3].startswith("  hint: ") and len(lines) >= 4


def test_a_cluster_policy_drop_reads_as_its_deny_rule_with_tier_and_priority() -> None:
    lines = drop_lines(document(DENY))
    assert lines[:2] == [
        "2023-11-14T22:13:20.500Z DROP egress lab/a: lab/a (10.0.1.2) → shop/a (10.0.1.3) TCP/80",
        f'  denied by ClusterNetworkPolicy/lab-a-not-to-shop-a egress[0] "deny-shop-a-web" '
        f"({FIXTURE}:{line('- name: deny-shop-a-web')}), Admin tier priority 10",
    ]
    assert all(not text.startswith("  policy ") for text in lines)


def test_a_drop_the_model_does_not_explain_says_so() -> None:
    lines = drop_lines(document(logged("policyctl drop ingress shop/b ", "shop/a", "shop/b")))
    assert lines[-1].startswith("  not explained: the model allows this ingress half")


@pytest.fixture
def agent_url() -> Iterator[str]:
    log = DropLog()
    for packet in (INGRESS, DENY):
        log.add(document(packet))
    server = BoundedHTTPServer({}, query_routes={"/drops": log.route}, address="127.0.0.1", port=0)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


def test_through_the_agent_json_is_one_document_per_line(run: Any, agent_url: str) -> None:
    result = run("drops", "--agent", agent_url, "--no-follow", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(text) for text in result.stdout.splitlines()] == [
        {"seq": 1, **document(INGRESS)}, {"seq": 2, **document(DENY)}]


def test_through_the_agent_text_is_the_same_as_read_here(run: Any, agent_url: str) -> None:
    result = run("drops", "--agent", agent_url, "--no-follow", "--count", "1")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == drop_lines(document(INGRESS))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--agent", "http://127.0.0.1:1"), "cannot read http://127.0.0.1:1/drops?since=0"),
        (("--agent", "http://127.0.0.1:1", "-f", str(FIXTURE)), "-f is for reading the drop log here"),
        (("--group", "70000", "-f", str(FIXTURE)), "70000"),
    ],
)
def test_unusable_input_exits_2_with_the_reason(run: Any, args: tuple[str, ...], message: str) -> None:
    result = run("drops", *args)
    assert result.exit_code == 2 and message in result.stderr


def test_following_the_agent_prints_drops_as_they_come(run: Any) -> None:
    log = DropLog()
    log.add(document(INGRESS))
    server = BoundedHTTPServer({}, query_routes={"/drops": log.route}, address="127.0.0.1", port=0)
    later = threading.Timer(0.5, lambda: log.add(document(DENY)))
    later.start()
    try:
        result = run("drops", "--agent", f"http://127.0.0.1:{server.port}", "--count", "2", "--duration", "20",
                     "-o", "json")
    finally:
        later.cancel()
        server.close()
    assert result.exit_code == 0
    assert [json.loads(text)["seq"] for text in result.stdout.splitlines()] == [1, 2]


def test_following_stops_at_the_duration_with_what_came(run: Any, agent_url: str) -> None:
    result = run("drops", "--agent", agent_url, "--duration", "1.5", "-o", "json")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 2
