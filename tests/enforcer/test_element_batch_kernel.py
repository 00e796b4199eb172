"""Element batches of our own against libnftables, in the kernel: the same element commands
sent both ways to two tables made alike leave every set and map listing the same elements and
finding the same ones, and fail alike, changing nothing; through the enforcer an element-only
delta goes as a batch, names a refused command itself, and leaves what a full apply would."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.compiler.compile import compile_node
from policyctl.compiler.delta import diff
from policyctl.compiler.render_json import to_document
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.batches import MAX_BATCH_BYTES, transaction_batch
from policyctl.enforcer.errors import NftApplyError
from policyctl.enforcer.tables import SetState, read_table
from tests.builders import cluster, pod, pod_peer, policy, port, rule
from tests.enforcer.bothways import sent_both_ways as both_ways
from tests.enforcer.netns import CLUSTER_OBJECTS, backend_in_a_node

pytestmark = pytest.mark.kernel

BY_JSON, BY_BATCH = "by-json", "by-batch"


def prefix(text: str) -> dict[str, Any]:
    address, length = text.split("/")
    return {"prefix": {"addr": address, "len": int(length)}}


#: Each set or map of a kind the compiler makes (and a few it could), with a pool of elements
#: no two of which overlap, so any subset of the pool is a valid content.
SETS: dict[str, tuple[dict[str, Any], list[Any]]] = {
    "v4": ({"type": "ipv4_addr"}, ["10.0.0.1", "10.0.0.2", "192.0.2.255", "0.0.0.0", "255.255.255.255"]),
    "v4-interval": ({"type": "ipv4_addr", "flags": ["interval"]}, [
        prefix("0.0.0.0/5"), prefix("10.0.0.0/8"), prefix("11.0.0.0/8"), "12.0.0.1",
        {"range": ["172.16.0.5", "172.16.0.9"]}, "172.16.0.10", prefix("224.0.0.0/4"), "255.255.255.255"]),
    "v6-interval": ({"type": "ipv6_addr", "flags": ["interval"]}, [
        "::", prefix("2001:db8::/32"), "2001:db9::1", {"range": ["fd00::5", "fd00::9"]}, prefix("ff00::/8")]),
    "ports-interval": ({"type": "inet_service", "flags": ["interval"]}, [
        0, 53, {"range": [80, 90]}, 91, {"range": [60000, 65535]}]),
    "peer-ports": ({"type": ["ipv4_addr", "inet_proto", "inet_service"]}, [
        {"concat": ["10.0.0.1", "tcp", 80]}, {"concat": ["10.0.0.1", "udp", 53]},
        {"concat": ["10.0.0.2", "sctp", 65535]}, {"concat": ["255.255.255.255", 6, 0]}]),
    "block-ports": ({"type": ["ipv4_addr", "inet_proto", "inet_service"], "flags": ["interval"]}, [
        {"concat": [prefix("10.1.0.0/16"), "tcp", {"range": [80, 90]}]},
        {"concat": [prefix("10.1.0.0/16"), "udp", 53]},
        {"concat": [{"range": ["10.2.0.1", "10.2.0.7"]}, "tcp", {"range": [0, 65535]}]},
        {"concat": [prefix("0.0.0.0/0"), "sctp", 7]}]),
    "block-ports-v6": ({"type": ["ipv6_addr", "inet_proto", "inet_service"], "flags": ["interval"]}, [
        {"concat": [prefix("2001:db8::/64"), "tcp", 443]},
        {"concat": [prefix("::/0"), "udp", {"range": [1000, 2000]}]}]),
    "marks": ({"type": "mark", "flags": ["interval"]}, [
        {"range": [65536, 131071]}, 5, 7, {"range": [196608, 262143]}, 4294967295]),
    "ingress-v4": ({"type": "ipv4_addr", "map": "verdict"}, [
        ["10.0.0.1", {"jump": {"target": "c1"}}], ["10.0.0.2", {"goto": {"target": "c2"}}],
        ["10.0.0.3", {"accept": None}], ["10.0.0.4", {"drop": None}], ["10.0.0.5", {"return": None}]]),
    "ingress-v6": ({"type": "ipv6_addr", "map": "verdict"}, [
        ["2001:db8::1", {"jump": {"target": "c1"}}], ["fd00::2", {"jump": {"target": "c2"}}]]),
    "identities": ({"type": "mark", "map": "verdict"}, [
        [65536, {"jump": {"target": "c1"}}], [131072, {"jump": {"target": "c2"}}], [1, {"continue": None}]]),
}


def table_document(table: str) -> dict[str, Any]:
    commands: list[dict[str, Any]] = [{"add": {"table": {"family": "inet", "name": table}}}]
    for chain in ("c1", "c2"):
        commands.append({"add": {"chain": {"family": "inet", "table": table, "name": chain}}})
    for name, (spec, _) in SETS.items():
        kind = "map" if "map" in spec else "set"
        commands.append({"add": {kind: {"family": "inet", "table": table, "name": name, **spec}}})
    return {"nftables": commands}


def element_command(verb: str, table: str, name: str, elements: Sequence[Any]) -> dict[str, Any]:
    if verb == "delete" and "map" in SETS[name][0]:
        elements = [element[0] for element in elements]
    return {verb: {"element": {"family": "inet", "table": table, "name": name, "elem": list(elements)}}}


@pytest.fixture(scope="module")
def tables() -> Iterator[LibnftablesBackend]:
    with backend_in_a_node(table_document(BY_JSON), table_document(BY_BATCH)) as backend:
        yield backend


def empty(backend: LibnftablesBackend) -> None:
    for table in (BY_JSON, BY_BATCH):
        backend.run({"nftables": [
            {"flush": {"map" if "map" in spec else "set": {"family": "inet", "table": table, "name": name}}}
            for name, (spec, _) in SETS.items()]})


def listed(backend: LibnftablesBackend, table: str) -> dict[str, Any]:
    """Every set's and map's elements as nft lists them."""
    listing = backend.list_table("inet", table)
    assert listing is not None
    found = {}
    for item in listing["nftables"]:
        for kind in ("set", "map"):
            if kind in item:
                found[item[kind]["name"]] = sorted(json.dumps(e, sort_keys=True) for e in item[kind].get("elem", []))
    return found


def kernel_sets(backend: LibnftablesBackend) -> Mapping[str, SetState]:
    return read_table(backend.list_table("inet", BY_BATCH) or {}, family="inet", table=BY_BATCH).sets


def sent_both_ways(backend: LibnftablesBackend, commands: list[tuple[str, str, list[Any]]]) -> str | None:
    """``commands`` sent as JSON to one table and as a batch to the other."""
    batch = transaction_batch([element_command(v, BY_BATCH, n, e) for v, n, e in commands], kernel_sets(backend),
                              family="inet", table=BY_BATCH)
    return both_ways(backend, {"nftables": [element_command(v, BY_JSON, n, e) for v, n, e in commands]}, batch)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.dictionaries(st.sampled_from(sorted(SETS)), st.lists(st.integers(0, 7), max_size=5),
                                      max_size=4), min_size=1, max_size=5))
def test_a_batch_leaves_every_set_as_libnftables_json_does(
    tables: LibnftablesBackend, steps: list[dict[str, list[int]]]
) -> None:
    """Each step toggles some elements of some sets (present ones are deleted, absent ones
    added) in one transaction, sent both ways; after each, both tables list the same."""
    empty(tables)
    present: dict[str, set[int]] = {name: set() for name in SETS}
    for step in steps:
        commands = []
        for name, picks in step.items():
            pool = SETS[name][1]
            chosen = {p % len(pool) for p in picks}
            gone, new = sorted(chosen & present[name]), sorted(chosen - present[name])
            if gone:
                commands.append(("delete", name, [pool[i] for i in gone]))
            if new:
                commands.append(("add", name, [pool[i] for i in new]))
            present[name] ^= chosen
        if commands:
            assert sent_both_ways(tables, commands) is None
        assert listed(tables, BY_BATCH) == listed(tables, BY_JSON)


@pytest.mark.parametrize(("name", "value", "held"), [
    ("v4-interval", "10.255.255.255", True), ("v4-interval", "12.0.0.0", False), ("v4-interval", "12.0.0.1", True),
    ("v4-interval", "12.0.0.2", False), ("v4-interval", "255.255.255.255", True), ("v4-interval", "9.1.2.3", False),
    ("v6-interval", "2001:db8:ffff::1", True), ("v6-interval", "::1", False), ("v6-interval", "ffff::1", True),
    ("ports-interval", "90", True), ("ports-interval", "92", False), ("ports-interval", "65535", True),
    ("block-ports", "10.1.2.3 . tcp . 85", True), ("block-ports", "10.1.2.3 . tcp . 91", False),
    ("block-ports", "203.0.113.1 . sctp . 7", True), ("block-ports-v6", "2001:db8::9 . tcp . 443", True),
    ("marks", "131071", True), ("marks", "131072", False), ("marks", "4294967295", True),
])
def test_a_batch_makes_the_kernel_find_what_libnftables_makes_it_find(
    tables: LibnftablesBackend, name: str, value: str, held: bool
) -> None:
    """The kernel's own lookup (``nft get element``; libnftables 1.0.6 has no JSON for it)."""
    empty(tables)
    assert sent_both_ways(tables, [("add", name, SETS[name][1])]) is None
    for table in (BY_JSON, BY_BATCH):
        found = subprocess.run(["ip", "netns", "exec", str(tables.netns), "nft", "get", "element", "inet", table,
                                name, f"{{ {value} }}"], capture_output=True, text=True, check=False)
        assert (found.returncode == 0) is held, (table, found.stderr)


@pytest.mark.parametrize(("commands", "error"), [
    pytest.param([("add", "v4", ["10.0.0.1"]), ("delete", "v4", ["10.0.0.2"])], "No such file or directory",
                 id="delete-of-an-absent-element"),
    pytest.param([("add", "v4-interval", [prefix("10.0.0.0/8")]), ("add", "v4-interval", [prefix("10.1.0.0/16")])],
                 "File exists", id="overlapping-intervals"),
    pytest.param([("add", "ingress-v4", [["10.0.0.1", {"jump": {"target": "c1"}}]]),
                  ("add", "ingress-v4", [["10.0.0.1", {"jump": {"target": "c2"}}]])], "File exists",
                 id="a-map-key-with-other-data"),
    pytest.param([("add", "v4", ["10.0.0.9"]), ("add", "ingress-v4", [["10.0.0.9", {"jump": {"target": "nowhere"}}]])],
                 "No such file or directory", id="a-jump-to-a-missing-chain"),
])
def test_a_refused_batch_fails_as_libnftables_json_does_and_changes_nothing(
    tables: LibnftablesBackend, commands: list[tuple[str, str, list[Any]]], error: str
) -> None:
    empty(tables)
    before = listed(tables, BY_BATCH)
    refused = sent_both_ways(tables, commands)
    assert refused is not None and error in refused
    assert listed(tables, BY_BATCH) == listed(tables, BY_JSON) == before


@pytest.mark.parametrize("command", [
    {"add": {"rule": {"family": "inet", "table": BY_BATCH, "chain": "c1", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.0.0.1"}}]}}},
    {"flush": {"set": {"family": "inet", "table": BY_BATCH, "name": "v4"}}},
    {"add": {"element": {"family": "inet", "table": "other", "name": "v4", "elem": ["10.0.0.1"]}}},
    {"add": {"element": {"family": "inet", "table": BY_BATCH, "name": "absent", "elem": ["10.0.0.1"]}}},
    {"add": {"element": {"family": "inet", "table": BY_BATCH, "name": "v4", "elem": [
        {"elem": {"val": "10.0.0.1", "timeout": 10}}]}}},
    {"add": {"element": {"family": "inet", "table": BY_BATCH, "name": "v4", "elem": ["2001:db8::1"]}}},
    {"add": {"element": {"family": "inet", "table": BY_BATCH, "name": "v4", "elem": [prefix("10.0.0.0/8")]}}},
    {"add": {"element": {"family": "inet", "table": BY_BATCH, "name": "ingress-v4", "elem": ["10.0.0.1"]}}},
], ids=["a-rule-with-a-match", "a-flush", "another-table", "an-unknown-set", "a-timeout", "another-family",
        "a-range-in-a-set-without-intervals", "a-map-element-without-data"])
def test_a_transaction_with_a_command_not_encoded_goes_to_libnftables(
    tables: LibnftablesBackend, command: dict[str, Any]
) -> None:
    assert transaction_batch([command], kernel_sets(tables), family="inet", table=BY_BATCH) is None


def test_a_large_transaction_is_split_into_messages_the_kernel_takes(tables: LibnftablesBackend) -> None:
    empty(tables)
    many = [f"10.{i // 256}.{i % 256}.1" for i in range(3000)]
    batch = transaction_batch([element_command("add", BY_BATCH, "v4", many)], kernel_sets(tables),
                          family="inet", table=BY_BATCH)
    assert batch is not None and len(batch.messages) > 1
    assert sent_both_ways(tables, [("add", "v4", many)]) is None
    assert listed(tables, BY_BATCH) == listed(tables, BY_JSON)
    assert len(listed(tables, BY_BATCH)["v4"]) == 3000


def test_a_transaction_larger_than_one_send_goes_to_libnftables(tables: LibnftablesBackend) -> None:
    """An IPv4 element takes 16 bytes; half as many as fill the bound are a batch."""
    many = [f"10.{i // 256}.{i % 256}.1" for i in range(MAX_BATCH_BYTES // 16)]
    sets = kernel_sets(tables)
    assert transaction_batch([element_command("add", BY_BATCH, "v4", many[: len(many) // 2])], sets,
                             family="inet", table=BY_BATCH) is not None
    assert transaction_batch([element_command("add", BY_BATCH, "v4", many)], sets,
                             family="inet", table=BY_BATCH) is None


ALLOW_A = policy("x/allow", {"pod": "b"}, ingress=[rule(pod_peer({"pod": "a"}), ports=[port(80)])])
ANOTHER_A = pod("x/a2", {"pod": "a"}, node="node-2", ips=["10.77.9.9"])


def test_a_remote_pod_is_an_element_batch_and_leaves_what_a_full_apply_would(backend: LibnftablesBackend) -> None:
    before = compile_node(cluster(*CLUSTER_OBJECTS, ALLOW_A), "node-1")
    after = compile_node(cluster(*CLUSTER_OBJECTS, ANOTHER_A, ALLOW_A), "node-1")
    enforcer = Enforcer(backend)
    enforcer.apply(to_document(before))
    report = enforcer.apply_delta(diff(before, after), desired=never)
    assert report.applied and enforcer.netlink_batches == 1
    assert Enforcer(backend).plan(to_document(after)).empty
    report = enforcer.apply_delta(diff(after, before), desired=never)
    assert report.applied and enforcer.netlink_batches == 2
    assert Enforcer(backend).plan(to_document(before)).empty


def test_a_refused_element_batch_names_its_command_and_the_next_apply_reads_the_kernel(
    backend: LibnftablesBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A removal the kernel has already seen (an element deleted by hand) is refused whole;
    the error names the command from the kernel's answer, not from dry runs."""
    before = compile_node(cluster(*CLUSTER_OBJECTS, ANOTHER_A, ALLOW_A), "node-1")
    after = compile_node(cluster(*CLUSTER_OBJECTS, ALLOW_A), "node-1")
    enforcer = Enforcer(backend)
    enforcer.apply(to_document(before))
    first = Enforcer(backend).plan(to_document(after)).commands[0]
    assert "delete" in first
    backend.run({"nftables": [dict(first)]})
    kernel = Enforcer(backend).current()
    monkeypatch.setattr(backend, "check", never)
    with pytest.raises(NftApplyError) as refused:
        enforcer.apply_delta(diff(before, after), desired=never)
    assert refused.value.index == 0 and refused.value.command == first
    assert "No such file or directory" in refused.value.nft_error
    assert Enforcer(backend).current() == kernel and enforcer.netlink_batches == 0
    enforcer.apply_delta(diff(before, after), desired=lambda: to_document(after))
    assert Enforcer(backend).plan(to_document(after)).empty


def never(*_: object) -> dict[str, Any]:
    raise AssertionError("the delta was not planned from the trusted state, or bisected with dry runs")
