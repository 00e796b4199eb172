"""The agent's drop monitor: packets explained on the agent's view, counted, kept and served."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from policyctl.agent.drops import DropLog, DropMonitor
from policyctl.agent.httpserver import BoundedHTTPServer
from policyctl.agent.metrics import AgentMetrics
from policyctl.agent.sync import NodeSync
from policyctl.compiler.compile import compile_node
from policyctl.compiler.droplog import log_to_group
from policyctl.compiler.render_json import to_document
from policyctl.compiler.ruleset import Log
from policyctl.enforcer.drops import AddressBook, attribute, drop_document
from policyctl.enforcer.nflog import LoggedPacket, NflogError
from policyctl.policy.cluster import Cluster
from tests.agent.fakes import FixedSnapshots, RecordingEnforcer
from tests.builders import node, pod
from tests.enforcer.test_drops import addressed, logged


class Packets:
    """A packet source that hands out batches, then nothing."""

    def __init__(self, *batches: tuple[LoggedPacket, ...]) -> None:
        self.batches = list(batches)
        self.closed = False

    def read(self, timeout: float | None) -> tuple[LoggedPacket, ...]:
        return self.batches.pop(0) if self.batches else ()

    def close(self) -> None:
        self.closed = True


INGRESS = logged("policyctl drop ingress shop/b ", "lab/a", "shop/b")
DENY = logged("policyctl drop egress lab/a ", "lab/a", "shop/a")
ALIEN = LoggedPacket("kube-proxy drop ", 2, b"")


def samples(metrics: AgentMetrics) -> dict[tuple[str, str, str], float]:
    text = metrics.exposition().body.decode()
    family = next(f for f in text_string_to_metric_families(text) if f.name == "policyctl_dropped_packets")
    return {(s.labels["policy"], s.labels["direction"], s.labels["action"]): s.value for s in family.samples
            if s.name.endswith("_total")}


def test_each_drop_is_explained_on_the_current_view_counted_and_kept() -> None:
    cluster = addressed()
    log, metrics = DropLog(), AgentMetrics()
    monitor = DropMonitor(lambda: Packets(), lambda: cluster, log=log, metrics=metrics, wall_clock=lambda: 7.0)
    assert monitor.handle((INGRESS, DENY, ALIEN, INGRESS)) == 3
    book = AddressBook(cluster)
    expected = [drop_document(attribute(p, book, now=7.0)) for p in (INGRESS, DENY, INGRESS)]  # type: ignore[arg-type]
    page = log.since(0)
    assert [d for _, d in page.drops] == expected and (page.next, page.missed) == (3, 0)
    assert samples(metrics) == {("shop/b-from-a", "ingress", "drop"): 2.0,
                                ("ClusterNetworkPolicy/lab-a-not-to-shop-a", "egress", "drop"): 1.0}


def test_an_unreadable_packet_is_counted_not_kept() -> None:
    monitor = DropMonitor(lambda: Packets(), addressed, log=DropLog())
    assert monitor.handle((LoggedPacket("policyctl drop ingress shop/b ", 2, b"\x45"),)) == 0
    assert monitor.unreadable == 1 and monitor.log.since(0).drops == ()


def test_the_address_index_follows_the_snapshot() -> None:
    views = [addressed(), Cluster()]
    monitor = DropMonitor(lambda: Packets(), lambda: views[0], log=DropLog())
    monitor.handle((INGRESS,))
    views[0] = views[1]
    monitor.handle((INGRESS,))
    first, second = (d for _, d in monitor.log.since(0).drops)
    assert first["source"]["kind"] == "pod" and second["source"]["kind"] == "address"
    assert "another cluster view" in second["problem"]


@pytest.mark.parametrize(
    ("capacity", "added", "since", "seqs", "next_seq", "missed"),
    [
        (5, 3, 0, [1, 2, 3], 3, 0),
        (5, 3, 2, [3], 3, 0),
        (5, 3, 3, [], 3, 0),
        (3, 7, 0, [5, 6, 7], 7, 4),
        (3, 7, 5, [6, 7], 7, 0),
        (3, 7, 2, [5, 6, 7], 7, 2),
        (3, 0, 0, [], 0, 0),
    ],
)
def test_the_buffer_is_bounded_and_says_what_a_reader_missed(
    capacity: int, added: int, since: int, seqs: list[int], next_seq: int, missed: int
) -> None:
    log = DropLog(capacity)
    for n in range(added):
        log.add({"n": n + 1})
    page = log.since(since)
    assert ([s for s, _ in page.drops], page.next, page.missed) == (seqs, next_seq, missed)
    assert all(d["n"] == s for s, d in page.drops)


def get(port: int, path: str) -> tuple[int, list[dict[str, Any]]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, [json.loads(line) for line in answer.read().decode().splitlines()]
    except urllib.error.HTTPError as error:
        return error.code, []


def test_drops_are_served_as_json_lines_after_a_sequence_number() -> None:
    log = DropLog()
    for n in range(3):
        log.add({"n": n})
    server = BoundedHTTPServer({}, query_routes={"/drops": log.route}, address="127.0.0.1", port=0)
    try:
        assert get(server.port, "/drops") == (200, [{"next": 3, "missed": 0}, {"seq": 1, "n": 0}, {"seq": 2, "n": 1},
                                                    {"seq": 3, "n": 2}])
        assert get(server.port, "/drops?since=2") == (200, [{"next": 3, "missed": 0}, {"seq": 3, "n": 2}])
        assert get(server.port, "/drops?since=x")[0] == 400
        assert get(server.port, "/other")[0] == 404
    finally:
        server.close()


def test_a_group_that_cannot_be_bound_is_retried_without_ending_the_thread() -> None:
    attempts: list[int] = []
    stop = threading.Event()

    def refuse() -> Packets:
        attempts.append(1)
        stop.set()
        raise NflogError("group in use")

    DropMonitor(refuse, addressed, log=DropLog()).run(stop)
    assert attempts == [1]


def test_the_monitor_reads_until_stopped_and_closes_its_source() -> None:
    stop = threading.Event()
    source = Packets((INGRESS,), (DENY,))
    log = DropLog()
    original = source.read

    def read(timeout: float | None) -> tuple[LoggedPacket, ...]:
        if not source.batches:
            stop.set()
        return original(timeout)

    source.read = read  # type: ignore[method-assign]
    DropMonitor(lambda: source, addressed, log=log, tick=0.01).run(stop)
    assert [d["direction"] for _, d in log.since(0).drops] == ["ingress", "egress"] and source.closed


def test_a_sync_with_a_log_group_applies_grouped_rulesets_and_deltas() -> None:
    cluster = replace(addressed(), nodes=(node("node-1", "192.168.0.1"),))
    snapshots = FixedSnapshots(cluster)
    enforcer = RecordingEnforcer()
    sync = NodeSync(snapshots, node="node-1", enforcer=enforcer, log_group=12, resync_interval=1e9)
    sync()
    assert enforcer.applies[-1] == to_document(log_to_group(compile_node(cluster, "node-1"), 12))
    snapshots.cluster = replace(cluster, pods=cluster.pods + (pod("lab/c", {"pod": "a"}, node="node-1",
                                                                  ips=["10.0.1.9"]),))
    sync()
    logs = [s for c in enforcer.deltas[-1].chains for r in c.rules for s in r.statements if isinstance(s, Log)]
    assert logs and {log.group for log in logs} == {12}
    assert enforcer.applies[-1] == to_document(log_to_group(compile_node(snapshots.cluster, "node-1"), 12))


def test_drops_the_kernel_could_not_hand_over_are_counted() -> None:
    stop = threading.Event()
    source = Packets((INGRESS,))
    source.overruns = 2  # type: ignore[attr-defined]
    original = source.read

    def read(timeout: float | None) -> tuple[LoggedPacket, ...]:
        if not source.batches:
            stop.set()
        return original(timeout)

    source.read = read  # type: ignore[method-assign]
    monitor = DropMonitor(lambda: source, addressed, log=DropLog(), tick=0.01)
    monitor.run(stop)
    assert monitor.lost_reads == 2 and source.overruns == 0  # type: ignore[attr-defined]
