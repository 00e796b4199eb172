"""The lab's real enforcer path under change, proved with packets between lab pods.

One small cluster throughout: x/a and y/a on node-1, x/b on node-2; the policy ``x/b-from-xa``
isolates x/b for ingress and admits pod=a of namespace x on TCP 80, so x/a -> x/b:80 is
allowed and y/a -> x/b:80 is denied (y/a is in another namespace). Every expectation below
follows from that policy, not from the lab's output.
"""

from __future__ import annotations

import ipaddress
import json
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from policyctl.compiler.ruleset import Mode
from policyctl.lab import netns
from policyctl.lab.engine import LabEngine
from policyctl.lab.probes import Attempt, run_probes
from policyctl.lab.rulesets import RulesetError, apply_with_enforcer, compiler_for, enforce_command, table_name
from policyctl.lab.topology import Cni, PodPlan
from policyctl.probecases.engines import Probe
from policyctl.policy.model import Family, Protocol
from policyctl.policy.cluster import Cluster
from tests.builders import cluster, pod, pod_peer, policy, port, rule

pytestmark = pytest.mark.kernel

ADMIT_X_A = policy("x/b-from-xa", {"pod": "b"}, ingress=[rule(pod_peer({"pod": "a"}), ports=[port(80)])])
PODS = (pod("x/a", {"pod": "a"}, node="node-1"), pod("y/a", {"pod": "a"}, node="node-1"),
        pod("x/b", {"pod": "b"}, node="node-2"))
BASE = cluster(*PODS, ADMIT_X_A)
PROBE = Probe(80, Protocol.TCP, Family.IPV4)


def plan_pod(engine: LabEngine, key: str) -> PodPlan:
    plan = engine.state.plan
    assert plan is not None
    return plan.pod_by_key[key]


def connects(engine: LabEngine, source: str, destination: str, port_number: int = 80) -> bool:
    src, dst = plan_pod(engine, source), plan_pod(engine, destination)
    address = dst.address(Family.IPV4)
    assert address is not None
    return run_probes([Attempt("pair", src.netns, address)], protocol=Protocol.TCP, port=port_number)["pair"]


def node_netns(engine: LabEngine, name: str) -> str:
    plan = engine.state.plan
    assert plan is not None
    return plan.node_by_name[name].netns


def test_a_rejected_transaction_leaves_the_old_policy_in_force(state_root: Path, lab_namespaces: set[str]) -> None:
    with LabEngine(cni=Cni.BRIDGED) as engine:
        engine.observe(BASE, PROBE)
        good = compiler_for(engine.state.prefix)

        def broken(running: Cluster, node: str) -> Mapping[str, Any]:
            # The new ruleset would admit y/a too; one rule jumps to a chain that does not
            # exist, so the kernel must refuse the whole transaction.
            document = json.loads(json.dumps(good(running, node)))
            document["nftables"].append({"rule": {"family": "inet", "table": table_name(engine.state.prefix),
                                                  "chain": "ingress", "expr": [{"jump": {"target": "nowhere"}}]}})
            return document

        engine._compiler = broken
        admit_all = cluster(
            *PODS, policy("x/b-from-xa", {"pod": "b"}, ingress=[rule(pod_peer({}, {}), ports=[port(80)])])
        )
        with pytest.raises(RulesetError, match="nowhere"):
            engine.reconcile(admit_all)
        assert connects(engine, "x/a", "x/b")
        assert not connects(engine, "y/a", "x/b")


def test_re_running_a_nodes_enforcer_under_traffic_gives_no_wrong_answer(
    state_root: Path, lab_namespaces: set[str]
) -> None:
    with LabEngine(cni=Cni.ROUTED) as engine:
        engine.observe(BASE, PROBE)
        ruleset = engine.state.directory / "ruleset-node-2.json"
        wrong: list[str] = []
        rounds = 0
        stop = threading.Event()

        def traffic() -> None:
            nonlocal rounds
            while not stop.is_set():
                if not connects(engine, "x/a", "x/b"):
                    wrong.append("x/a -> x/b:80 refused")
                if connects(engine, "y/a", "x/b"):
                    wrong.append("y/a -> x/b:80 let through")
                rounds += 1

        worker = threading.Thread(target=traffic)
        worker.start()
        reruns = 0
        deadline = time.monotonic() + 60
        try:
            # Keep re-running until the traffic has gone round a few times meanwhile.
            while (reruns < 3 or rounds < 3) and time.monotonic() < deadline:
                apply_with_enforcer(node_netns(engine, "node-2"), "node-2", ruleset)
                reruns += 1
        finally:
            stop.set()
            worker.join()
        assert rounds >= 3 and wrong == []


@contextmanager
def listener(netns_name: str, address: str, port_number: int) -> Iterator[socket.socket]:
    with netns.inside(netns_name):
        sock = socket.create_server((address, port_number), reuse_port=True)
    try:
        yield sock
    finally:
        sock.close()


def arrives(receiver: socket.socket, sender: socket.socket, *, timeout: float) -> bool:
    sender.send(b"ping")
    with selectors.DefaultSelector() as selector:
        selector.register(receiver, selectors.EVENT_READ)
        return bool(selector.select(timeout)) and receiver.recv(16) == b"ping"


def test_a_policy_change_cuts_an_established_connection_it_revokes(state_root: Path, lab_namespaces: set[str]) -> None:
    with LabEngine(cni=Cni.BRIDGED) as engine:
        engine.observe(BASE, PROBE)
        server_address = str(plan_pod(engine, "x/b").address(Family.IPV4))
        with listener(plan_pod(engine, "x/b").netns, server_address, 8080) as server:
            # Port 8080 is admitted by nothing yet: allow it, connect, then take it away.
            wide = cluster(*PODS, policy("x/b-from-xa", {"pod": "b"},
                                         ingress=[rule(pod_peer({"pod": "a"}), ports=[port(80), port(8080)])]))
            engine.reconcile(wide)
            with netns.inside(plan_pod(engine, "x/a").netns):
                client = socket.create_connection((server_address, 8080), timeout=2)
            accepted, _ = server.accept()
            with client, accepted:
                assert arrives(accepted, client, timeout=2.0)
                engine.reconcile(BASE)
                assert not arrives(accepted, client, timeout=1.0)
                assert connects(engine, "x/a", "x/b")


def test_audit_mode_lets_denied_traffic_through_and_counts_it(state_root: Path, lab_namespaces: set[str]) -> None:
    with LabEngine(cni=Cni.BRIDGED, mode=Mode.AUDIT) as engine:
        observed = engine.observe(BASE, PROBE).allowed
        assert observed["y/a"]["x/b"] is True and observed["x/a"]["x/b"] is True
        done = subprocess.run(
            ["ip", "netns", "exec", node_netns(engine, "node-2"), enforce_command()[0], "stats",
             "--table", table_name(engine.state.prefix), "-o", "json"],
            capture_output=True, text=True, check=True,
        )
        counters = json.loads(done.stdout)
        audited = sum(p["audit"] for p in counters["policies"])
        allowed = sum(p["allow"] for p in counters["policies"])
        assert audited >= 1 and allowed >= 1, counters
        assert all(p["deny"] == 0 for p in counters["policies"])


def syn_sources(raw: socket.socket) -> list[str]:
    """The source address of every SYN the tap has seen so far (read once: it drains)."""
    found = []
    while True:
        try:
            packet = raw.recv(65535)
        except BlockingIOError:
            return found
        header = (packet[0] & 0x0F) * 4
        if packet[header + 13] & 0x02:
            found.append(str(ipaddress.ip_address(packet[12:16])))


def syns_until(
    wanted: str, *, at: socket.socket, also: socket.socket, seconds: float = 5.0
) -> tuple[list[str], list[str]]:
    """SYN sources seen at both taps until ``wanted`` has been seen at ``at`` (bounded, so a
    busy machine delays the answer instead of changing it)."""
    seen, other = [], []
    deadline = time.monotonic() + seconds
    while wanted not in seen and time.monotonic() < deadline:
        seen += syn_sources(at)
        other += syn_sources(also)
        time.sleep(0.02)
    return seen + syn_sources(at), other + syn_sources(also)


@contextmanager
def tcp_tap(netns_name: str) -> Iterator[socket.socket]:
    """Every TCP packet that reaches the pod, before the pod's TCP stack sees it."""
    with netns.inside(netns_name):
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    raw.setblocking(False)
    try:
        yield raw
    finally:
        raw.close()


def one_syn(source_netns: str, address: str, port_number: int) -> None:
    with netns.inside(source_netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(0.3)
        try:
            sock.connect((address, port_number))
        except OSError:
            pass


def path_open(
    source_netns: str, source: str, destination_netns: str, destination: str, *, seconds: float = 30.0
) -> bool:
    """Whether an admitted SYN from ``source`` reaches ``destination`` within ``seconds``,
    sending one every try: on a busy machine the lab's path can take seconds to come back
    after a reconcile, and a packet lost to that would read as a policy drop."""
    with tcp_tap(destination_netns) as tap:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            one_syn(source_netns, destination, 80)
            if source in syns_until(source, at=tap, also=tap, seconds=1.0)[0]:
                return True
    return False


def test_a_pod_added_to_a_running_lab_is_covered_from_its_first_packet(
    state_root: Path, lab_namespaces: set[str]
) -> None:
    isolate_d = policy("x/d-from-nobody", {"pod": "d"}, ingress=[], types=["Ingress"])
    with LabEngine(cni=Cni.BRIDGED) as engine:
        engine.observe(BASE, PROBE)
        # x/d gets an address of its own so adding it renumbers no running pod (a renumbering
        # reconcile can leave cross-node traffic of node-1 stalled for seconds; see the lab
        # notes): this test is about the new pod's first packets.
        new_pod = pod("x/d", {"pod": "d"}, node="node-1", ips=["10.244.1.200"])
        grown = cluster(*PODS, new_pod, ADMIT_X_A, isolate_d)
        engine.reconcile(grown)
        d, b = plan_pod(engine, "x/d"), plan_pod(engine, "x/b")
        d_address, b_address = str(d.address(Family.IPV4)), str(b.address(Family.IPV4))
        a_address = str(plan_pod(engine, "x/a").address(Family.IPV4))
        assert path_open(plan_pod(engine, "x/a").netns, a_address, b.netns, b_address), (
            "x/a -> x/b never arrived after the reconcile: the lab's path is down, so no packet below would tell"
        )
        with tcp_tap(b.netns) as at_b, tcp_tap(d.netns) as at_d:
            # x/d's very first packets: as a client (not pod=a, so x/b refuses it) and as a
            # server (isolated, admitting nobody). Nothing in x/d has run before.
            one_syn(d.netns, b_address, 80)
            one_syn(plan_pod(engine, "x/a").netns, d_address, 80)
            one_syn(plan_pod(engine, "x/a").netns, b_address, 80)
            seen_b, seen_d = syns_until(a_address, at=at_b, also=at_d)
            # The same tap does see the admitted SYN, x/a -> x/b:80 (sent last, so the earlier
            # ones had their chance to arrive), and nothing else.
            assert set(seen_b) == {a_address}
            assert seen_d == []
