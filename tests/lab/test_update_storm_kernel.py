"""No packet lost, no window open: allowed streams keep flowing and denied traffic never
passes while the rules change under them, with real packets between lab pods.

x/a and y/a run on node-1, x/b on node-2. ``x/b-streams`` isolates x/b for ingress and admits
pod=a of namespace x on TCP 80, TCP 9000 and UDP 9001, so x/a reaches x/b there and y/a (the
same label, another namespace) reaches x/b on nothing. Each update changes both nodes'
rulesets without touching those verdicts: a second policy on x/b admits x/a on one more port
(a different one each round), and y/a's labels change (its identity sets change). Every
rule in the kernel is written by the agent's sync step (:class:`~policyctl.agent.sync.NodeSync`
with the enforcer inside each node's namespace), driven directly so that each update is one
sync; every tenth round also runs a full resync (the table read back from the kernel and
compared), and halfway the enforcers are replaced by new ones that know nothing, as after an
agent restart (the first apply of an enforcer reads the kernel and continues from it).
A second storm runs the agents as the DaemonSet does, ``policyctl agent --netns`` processes
reading the project's API server, and halfway stops one with SIGTERM and kills the other with
SIGKILL; the new processes take over while the updates go on and program the last round.

Meanwhile: a TCP stream x/a -> x/b:9000 and a UDP stream x/a -> x/b:9001 (numbered messages
every 2 ms), new TCP connections x/a -> x/b:80 one after another (each must be accepted), and
new TCP connections y/a -> x/b:80 one after another (each must fail). "Zero loss" is read from
the kernel: the TCP sender's ``tcpi_total_retrans`` stays 0 (a dropped segment is
retransmitted) and no reset arrives; every UDP datagram arrives, in order.
"""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
import typing

import pytest

from policyctl.agent.sync import NodeSync
from policyctl.bench.agentlab import AgentLab, Raw, model_of
from policyctl.bench.agentlab import namespace as raw_namespace
from policyctl.bench.agentlab import node as raw_node
from policyctl.bench.agentlab import pod as raw_pod
from policyctl.bench.agentlab import policy as raw_policy
from policyctl.compiler.compile import compile_node
from policyctl.compiler.render_json import to_document
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.conntrack import ConntrackTool
from policyctl.lab import netns
from policyctl.lab.engine import LabEngine
from policyctl.lab.topology import Cni, PodPlan, lab_cluster
from policyctl.policy.model import Family, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.probecases.engines import Probe
from tests.builders import cluster, pod, pod_peer, policy, port, rule

pytestmark = pytest.mark.kernel

TABLE = "policyctl"
POLICYCTL = str(Path(sys.executable).with_name("policyctl"))
TCP_STREAM, UDP_STREAM, PROBED = 9000, 9001, 80
STREAMS = policy(
    "x/b-streams",
    {"pod": "b"},
    ingress=[rule(pod_peer({"pod": "a"}), ports=[port(PROBED), port(TCP_STREAM), port(UDP_STREAM, "UDP")])],
)
HTTP = Probe(PROBED, Protocol.TCP, Family.IPV4)
TCP_INFO_TOTAL_RETRANS = 100
"""Offset of ``tcpi_total_retrans`` in Linux's ``struct tcp_info`` (8 one-byte fields, then
23 ``__u32`` before it)."""


def variant(round_number: int) -> Cluster:
    """The cluster of one round: the verdicts on the streams and the probes never change."""
    extra = policy(
        "x/b-extra", {"pod": "b"}, ingress=[rule(pod_peer({"pod": "a"}), ports=[port(10000 + round_number % 50)])]
    )
    return cluster(
        pod("x/a", {"pod": "a"}, node="node-1"),
        pod("y/a", {"pod": "a", "round": str(round_number % 3)}, node="node-1"),
        pod("x/b", {"pod": "b"}, node="node-2"),
        STREAMS,
        extra,
    )


@dataclass
class Traffic:
    """What the traffic threads saw; each list names what went wrong."""

    tcp_sent: int = 0
    tcp_received: int = 0
    udp_sent: int = 0
    udp_received: list[int] = field(default_factory=list)
    allowed_attempts: int = 0
    denied_attempts: int = 0
    wrong: list[str] = field(default_factory=list)


class Snapshot:
    def __init__(self, value: Cluster) -> None:
        self.value = value

    def snapshot(self) -> Cluster:
        return self.value


@contextmanager
def opened(netns_name: str, family: socket.AddressFamily, kind: socket.SocketKind) -> Iterator[socket.socket]:
    with netns.inside(netns_name):
        sock = socket.socket(family, kind)
    with sock:
        yield sock


def connect_once(netns_name: str, address: str, *, timeout: float) -> bool:
    with opened(netns_name, socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((address, PROBED))
        except OSError:
            return False
        return True


def repeat(stop: threading.Event, body: Callable[[], None]) -> threading.Thread:
    def loop() -> None:
        while not stop.is_set():
            body()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def node_syncs(engine: LabEngine, state: Snapshot) -> tuple[list[NodeSync], list[LibnftablesBackend]]:
    plan = engine.state.plan
    assert plan is not None
    backends = [LibnftablesBackend(netns=n.netns) for n in plan.nodes]
    syncs = [
        NodeSync(state, node=n.name, enforcer=Enforcer(b, table=TABLE), conntrack=ConntrackTool(netns=n.netns),
                 resync_interval=1e9)
        for n, b in zip(plan.nodes, backends)
    ]
    return syncs, backends


class Updates(typing.Protocol):
    """The side that changes the rules while the traffic runs."""

    def start(self) -> None:
        """Program the first round's rules (before any traffic)."""

    def run(self, rounds: int) -> None:
        """``rounds`` updates, restarts included."""

    def close(self) -> None: ...


class Storm:
    """The agents' side: one :class:`NodeSync` per node on a shared snapshot."""

    def __init__(self, engine: LabEngine) -> None:
        plan = engine.state.plan
        assert plan is not None
        self.engine, self.plan = engine, plan
        self.state = Snapshot(lab_cluster(variant(0), plan))
        self.syncs, self.backends = node_syncs(engine, self.state)
        self.sent = self.resyncs = 0
        self.durations: list[float] = []

    def start(self) -> None:
        self.sync_all()
        self.sent = 0

    def sync_all(self) -> None:
        for sync in self.syncs:
            report = sync()
            self.sent += report.changed
            self.durations.append(report.duration_seconds)

    def run(self, rounds: int) -> None:
        """``rounds`` updates (one sync per node each), a full resync every tenth round, new
        enforcers halfway."""
        for round_number in range(1, rounds + 1):
            if round_number == rounds // 2:
                self.close()
                self.syncs, self.backends = node_syncs(self.engine, self.state)
            self.state.value = lab_cluster(variant(round_number), self.plan)
            self.sync_all()
            if round_number % 10 == 0:
                for sync in self.syncs:
                    sync()
                self.resyncs += 1

    def close(self) -> None:
        for backend in self.backends:
            backend.close()


def pod_of(engine: LabEngine, key: str) -> PodPlan:
    plan = engine.state.plan
    assert plan is not None
    return plan.pod_by_key[key]


def run_storm(engine: LabEngine, agents: Updates, rounds: int) -> Traffic:
    a, y, b = pod_of(engine, "x/a"), pod_of(engine, "y/a"), pod_of(engine, "x/b")
    address = str(b.address(Family.IPV4))
    seen = Traffic()
    stop = threading.Event()
    with ExitStack() as stack:
        stack.callback(agents.close)
        agents.start()
        with netns.inside(b.netns):
            server = stack.enter_context(socket.create_server((address, TCP_STREAM)))
            receiver = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            receiver.bind((address, UDP_STREAM))
        tcp = stack.enter_context(opened(a.netns, socket.AF_INET, socket.SOCK_STREAM))
        tcp.connect((address, TCP_STREAM))
        accepted, _ = server.accept()
        stack.enter_context(accepted)
        udp = stack.enter_context(opened(a.netns, socket.AF_INET, socket.SOCK_DGRAM))
        receiver.settimeout(0.5)
        accepted.settimeout(0.5)

        def send_tcp() -> None:
            try:
                tcp.sendall(struct.pack("!I", seen.tcp_sent))
            except OSError as error:
                seen.wrong.append(f"TCP stream send failed: {error}")
                stop.set()
                return
            seen.tcp_sent += 1
            time.sleep(0.002)

        buffer = bytearray()

        def receive_tcp() -> None:
            try:
                chunk = accepted.recv(65536)
            except TimeoutError:
                return
            except OSError as error:
                seen.wrong.append(f"TCP stream broken: {error}")
                stop.set()
                return
            buffer.extend(chunk)
            while len(buffer) >= 4:
                (number,) = struct.unpack("!I", buffer[:4])
                del buffer[:4]
                if number != seen.tcp_received:
                    seen.wrong.append(f"TCP message {number} arrived when {seen.tcp_received} was due")
                seen.tcp_received += 1

        def send_udp() -> None:
            udp.sendto(struct.pack("!I", seen.udp_sent), (address, UDP_STREAM))
            seen.udp_sent += 1
            time.sleep(0.002)

        def receive_udp() -> None:
            try:
                data = receiver.recv(64)
            except TimeoutError:
                return
            seen.udp_received.append(struct.unpack("!I", data)[0])

        def allowed_probe() -> None:
            seen.allowed_attempts += 1
            if not connect_once(a.netns, address, timeout=1.0):
                seen.wrong.append("x/a -> x/b:80 refused during the storm")
            time.sleep(0.01)

        def denied_probe() -> None:
            seen.denied_attempts += 1
            if connect_once(y.netns, address, timeout=0.05):
                seen.wrong.append("y/a -> x/b:80 let through during the storm")

        senders = [
            repeat(stop, send_tcp),
            repeat(stop, send_udp),
            repeat(stop, allowed_probe),
            repeat(stop, denied_probe),
        ]
        readers = [repeat(stop, receive_tcp), repeat(stop, receive_udp)]
        try:
            agents.run(rounds)
        finally:
            stop.set()
            for thread in senders:
                thread.join()
        time.sleep(0.5)
        drain = threading.Event()
        readers += [repeat(drain, receive_tcp), repeat(drain, receive_udp)]
        deadline = time.monotonic() + 5
        while (
            seen.tcp_received < seen.tcp_sent or len(seen.udp_received) < seen.udp_sent
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
        drain.set()
        for thread in readers:
            thread.join()
        retransmitted = struct.unpack_from("I", tcp.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256),
                                           TCP_INFO_TOTAL_RETRANS)[0]
        if retransmitted:
            seen.wrong.append(f"the TCP stream retransmitted {retransmitted} segments (packets were dropped)")
    return seen


def check(seen: Traffic) -> None:
    assert seen.wrong == []
    assert seen.tcp_sent > 0 and seen.tcp_received == seen.tcp_sent
    assert seen.udp_received == list(range(seen.udp_sent))
    assert seen.allowed_attempts > 0 and seen.denied_attempts > 0


@pytest.fixture
def engine(state_root: Path, lab_namespaces: set[str]) -> Iterator[LabEngine]:
    """A lab whose only rules are the syncs' (the lab's own applier is switched off), with
    servers on port 80 of every pod."""
    with LabEngine(cni=Cni.BRIDGED, applier=lambda netns_name, node, path: None) as lab:
        lab.observe(variant(0), HTTP)
        yield lab


def check_syncs(agents: Storm, rounds: int) -> None:
    assert agents.sent >= rounds, "every round must change x/b's node's table"
    assert agents.resyncs == rounds // 10


def test_streams_lose_nothing_and_denied_traffic_never_passes_across_200_updates(engine: LabEngine) -> None:
    agents = Storm(engine)
    check(run_storm(engine, agents, 200))
    check_syncs(agents, 200)


@pytest.mark.slow
def test_streams_lose_nothing_and_denied_traffic_never_passes_across_1000_updates(engine: LabEngine) -> None:
    agents = Storm(engine)
    check(run_storm(engine, agents, 1000))
    check_syncs(agents, 1000)


def raw_variant(round_number: int) -> list[Raw]:
    """:func:`variant` as API objects, for agents that read the API server."""
    ingress = [{"from": [{"podSelector": {"matchLabels": {"pod": "a"}}}], "ports": [
        {"port": PROBED, "protocol": "TCP"}, {"port": TCP_STREAM, "protocol": "TCP"},
        {"port": UDP_STREAM, "protocol": "UDP"}]}]  # fmt: skip
    extra = [{"from": [{"podSelector": {"matchLabels": {"pod": "a"}}}],
              "ports": [{"port": 10000 + round_number % 50, "protocol": "TCP"}]}]  # fmt: skip
    return [
        raw_namespace("x"),
        raw_namespace("y"),
        raw_node("node-1"),
        raw_node("node-2"),
        raw_pod("x/a", {"pod": "a"}, node="node-1"),
        raw_pod("y/a", {"pod": "a", "round": str(round_number % 3)}, node="node-1"),
        raw_pod("x/b", {"pod": "b"}, node="node-2"),
        raw_policy("x/b-streams", {"podSelector": {"matchLabels": {"pod": "b"}}, "ingress": ingress}),
        raw_policy("x/b-extra", {"podSelector": {"matchLabels": {"pod": "b"}}, "ingress": extra}),
    ]


class AgentProcesses:
    """The agents as the DaemonSet runs them: one ``policyctl agent --netns`` process per lab
    node, reading the project's API server. Each round writes the round's objects to the
    server; seven rounds after halfway node-1's agent is stopped with SIGTERM (a rolling
    update) and node-2's is killed with SIGKILL (a crash), and new processes take over while
    the rounds go on."""

    def __init__(self, lab: AgentLab, kubeconfig: str) -> None:
        self.lab, self.kubeconfig = lab, kubeconfig
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self.retired: dict[str, int] = {}
        self.restarted_at: int | None = None
        self.final_converged = False

    def spawn(self, node: str, netns_name: str) -> None:
        argv = [POLICYCTL, "agent", "--kubeconfig", self.kubeconfig, "--netns", netns_name, "--table", TABLE,
                "--metrics-port", "-1", "--health-port", "-1", "--min-interval", "0.05"]  # fmt: skip
        self.processes[node] = subprocess.Popen(
            argv, env={"NODE_NAME": node, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip

    def start(self) -> None:
        for node_plan in self.lab.nodes():
            self.spawn(node_plan.name, node_plan.netns)
        assert self.converged(0), "the agents never programmed the first round"

    def run(self, rounds: int) -> None:
        self.restarted_at = rounds // 2 + 7
        for round_number in range(1, rounds + 1):
            if round_number == self.restarted_at:
                self.restart()
            for obj in raw_variant(round_number)[-3:]:
                self.lab.write(obj)
            time.sleep(0.02)
        self.final_converged = self.converged(rounds)

    def restart(self) -> None:
        for node_plan in self.lab.nodes():
            process = self.processes[node_plan.name]
            process.send_signal(signal.SIGTERM if node_plan.name == "node-1" else signal.SIGKILL)
            self.retired[node_plan.name] = process.wait(timeout=10)
            self.spawn(node_plan.name, node_plan.netns)

    def converged(self, round_number: int, *, timeout: float = 20.0) -> bool:
        """Every node's table equals the compiled ruleset of ``round_number``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.programmed(round_number, n.name, n.netns) for n in self.lab.nodes()):
                return True
            assert all(p.poll() is None for p in self.processes.values()), "an agent process exited"
            time.sleep(0.05)
        return False

    def programmed(self, round_number: int, node: str, netns_name: str) -> bool:
        backend = LibnftablesBackend(netns=netns_name)
        try:
            return Enforcer(backend, table=TABLE).plan(self.expected(round_number, node)).empty
        finally:
            backend.close()

    def expected(self, round_number: int, node: str) -> dict[str, object]:
        plan = self.lab.engine.state.plan if self.lab.engine is not None else None
        assert plan is not None
        cluster = lab_cluster(model_of([self.lab.addressed(o) for o in raw_variant(round_number)]), plan)
        return to_document(compile_node(cluster, node, table=TABLE))

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def agent_lab(state_root: Path, lab_namespaces: set[str], tmp_path: Path) -> Iterator[tuple[AgentLab, str]]:
    """The lab and the project's API server holding round 0, servers on port 80 of every pod."""
    with AgentLab(table=TABLE) as lab:
        lab.build(raw_variant(0))
        assert lab.engine is not None
        lab.engine.observe(lab.cluster, HTTP)
        yield lab, lab.server.write_kubeconfig(tmp_path / "kubeconfig")


def test_streams_lose_nothing_and_denied_traffic_never_passes_while_agent_processes_restart(
    agent_lab: tuple[AgentLab, str],
) -> None:
    lab, kubeconfig = agent_lab
    assert lab.engine is not None
    agents = AgentProcesses(lab, kubeconfig)
    rounds = 200
    check(run_storm(lab.engine, agents, rounds))
    assert agents.retired == {"node-1": 0, "node-2": -signal.SIGKILL}
    assert agents.restarted_at is not None
    assert agents.expected(rounds, "node-2") != agents.expected(agents.restarted_at - 1, "node-2"), (
        "the last round must change what the restarted agents program"
    )
    assert agents.final_converged, "the restarted agents never programmed the last round"
