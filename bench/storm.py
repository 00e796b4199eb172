"""The update storm: allowed streams keep flowing and denied traffic never passes while the
rules change under them, with real packets between lab pods.

x/a and y/a run on node-1, x/b on node-2. ``x/b-streams`` isolates x/b for ingress and admits
pod=a of namespace x on TCP 80, TCP 9000 and UDP 9001, so x/a reaches x/b there and y/a (the
same label, another namespace) reaches x/b on nothing. Each round changes both nodes' rulesets
without touching those verdicts: a second policy on x/b admits x/a on one more port (a
different one each round), and y/a's labels change (its identity sets change).

Two ways to apply the rounds:

* ``syncs``: the agent's sync step (:meth:`~policyctl.agent.sync.NodeSync.for_agent`, the
  agent's settings, with the enforcer inside each node's namespace), driven directly so that
  each round is one sync; every tenth round also runs the periodic read-back
  (``NodeSync.verify``: the table read back from the kernel and compared), and halfway the
  enforcers are replaced by new ones that know nothing, as after an agent restart (the first
  apply of an enforcer reads the kernel and continues from it).
* ``processes``: the agents as the DaemonSet runs them, ``policyctl agent --netns`` processes
  reading the project's API server, each round written to the server. Seven rounds after
  halfway node-1's agent is stopped with SIGTERM (a rolling update) and node-2's is killed
  with SIGKILL (a crash); new processes take over while the rounds go on, and must program
  the last round.

Meanwhile: a TCP stream x/a -> x/b:9000 and a UDP stream x/a -> x/b:9001 (numbered messages
every 2 ms), new TCP connections x/a -> x/b:80 one after another (each must be accepted), and
new TCP connections y/a -> x/b:80 one after another (each must fail). "Zero loss" is read from
the kernel: the TCP sender's ``tcpi_total_retrans`` stays 0 (a dropped segment is
retransmitted) and no reset arrives; every UDP datagram arrives, in order.

Run: ``python -m policyctl.bench.storm --rounds 1000 --agents syncs`` (root, from the checkout:
it imports the API server from ``tests/apiserver``). JSON on stdout, or to ``--out``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from policyctl.agent.config import AgentConfig
from policyctl.agent.sync import NodeSync
from policyctl.bench.agentlab import AgentLab, Raw, model_of, namespace, node, pod, policy
from policyctl.bench.figures import Figure, Target, machine, median, quantile
from policyctl.compiler.compile import compile_node
from policyctl.compiler.layout import identity_chain_of_entry, identity_map_name, peer_bit_set_name
from policyctl.compiler.markedpeers import (
    DEFAULT_IDENTITY_MARK, NO_MARK, PEER_MAPS, Address, Half, IdentityMark, numbered_as,
)
from policyctl.compiler.render_json import to_document
from policyctl.compiler.ruleset import Ruleset
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.conntrack import ConntrackTool
from policyctl.enforcer.tables import TableState
from policyctl.lab import netns
from policyctl.lab.topology import PodPlan, lab_cluster
from policyctl.policy.cluster import Cluster
from policyctl.policy.model import Direction, Family, Protocol as IpProtocol
from policyctl.probecases.engines import Probe

TABLE = "policyctl"
POLICYCTL = str(Path(sys.executable).with_name("policyctl"))
TCP_STREAM, UDP_STREAM, PROBED = 9000, 9001, 80
HTTP = Probe(PROBED, IpProtocol.TCP, Family.IPV4)
TCP_INFO_TOTAL_RETRANS = 100
"""Offset of ``tcpi_total_retrans`` in Linux's ``struct tcp_info`` (8 one-byte fields, then
23 ``__u32`` before it)."""
MODES = ("syncs", "processes")
Carried = dict[Half, dict[Address, int]]
Targets = dict[Direction, dict[int, str]]


def round_objects(round_number: int) -> list[Raw]:
    """The API objects of one round: the verdicts on the streams and the probes never change."""
    admits_a = [{"podSelector": {"matchLabels": {"pod": "a"}}}]
    streams = [{"port": PROBED, "protocol": "TCP"}, {"port": TCP_STREAM, "protocol": "TCP"},
               {"port": UDP_STREAM, "protocol": "UDP"}]  # fmt: skip
    extra = [{"port": 10000 + round_number % 50, "protocol": "TCP"}]
    return [
        namespace("x"),
        namespace("y"),
        node("node-1"),
        node("node-2"),
        pod("x/a", {"pod": "a"}, node="node-1"),
        pod("y/a", {"pod": "a", "round": str(round_number % 3)}, node="node-1"),
        pod("x/b", {"pod": "b"}, node="node-2"),
        policy("x/b-streams", {"podSelector": {"matchLabels": {"pod": "b"}},
                               "ingress": [{"from": admits_a, "ports": streams}]}),  # fmt: skip
        policy("x/b-extra", {"podSelector": {"matchLabels": {"pod": "b"}},
                             "ingress": [{"from": admits_a, "ports": extra}]}),  # fmt: skip
    ]


CHANGING = 3
"""The last objects of :func:`round_objects` are the ones a round changes (y/a and the
policies)."""


def round_cluster(lab: AgentLab, round_number: int) -> Cluster:
    """The cluster of one round with the lab's addresses, as the agents' reflectors see it."""
    plan = lab.engine.state.plan if lab.engine is not None else None
    if plan is None:
        raise RuntimeError("the lab has no plan yet")
    return lab_cluster(model_of([lab.addressed(o) for o in round_objects(round_number)]), plan)


def expected_document(lab: AgentLab, round_number: int, node_name: str) -> dict[str, Any]:
    return to_document(compile_node(round_cluster(lab, round_number), node_name, table=TABLE))


def marked_numbers(state: TableState, mark: IdentityMark) -> tuple[Carried, Targets]:
    """The identity numbers a table of the marked layout holds: each peer address's number,
    read from the bit sets, and each number's identity chain, read from the identity map
    through its entry chain (``compiler.markedpeers``)."""
    carried: dict[Half, dict[Address, int]] = {}
    targets: dict[Direction, dict[int, str]] = {}
    for half in PEER_MAPS.values():
        identities = state.sets.get(identity_map_name(*half))
        if identities is None:
            continue
        numbers: dict[Address, int] = {}
        for index, position in enumerate(mark.positions):
            for listed in state.sets[peer_bit_set_name(*half, position)].elements.values():
                address = ipaddress.ip_address(listed)
                numbers[address] = numbers.get(address, 0) | 1 << index
        carried[half] = numbers
        for key, verdict in identities.elements.values():
            value = int(key, 0) if isinstance(key, str) else int(key)
            number = sum(1 << i for i, p in enumerate(mark.positions) if value >> p & 1)
            targets.setdefault(half[0], {})[number] = identity_chain_of_entry(verdict["jump"]["target"])
    return carried, targets


def marked_reach(carried: Carried, targets: Targets) -> dict[Half, dict[Address, str]]:
    """The identity chain each peer address reaches (a retired number's none)."""
    return {
        half: {ip: targets[half[0]][n] for ip, n in numbers.items() if n in targets.get(half[0], {})}
        for half, numbers in carried.items()
    }


def programmed(enforcer: Enforcer, expected: Ruleset, mark: IdentityMark | None) -> bool:
    """Whether the enforcer's table holds ``expected``, a whole compile: exactly, or in the
    marked layout with the table's own numbers, every peer reaching the chain it reaches in
    ``expected`` (an agent keeps numbers as state, a whole compile numbers afresh)."""
    if mark is None:
        return enforcer.plan(to_document(expected)).empty
    table = enforcer.current()
    if table is None:
        return False
    carried, targets = marked_numbers(table, mark)
    wanted = marked_numbers(enforcer.desired_state(to_document(expected)), mark)
    if marked_reach(carried, targets) != marked_reach(*wanted):
        return False
    return enforcer.plan(to_document(numbered_as(expected, mark, carried, targets))).empty


@dataclass
class Traffic:
    """What the traffic threads saw; ``wrong`` names each thing that went wrong."""

    tcp_sent: int = 0
    tcp_received: int = 0
    tcp_retransmitted: int = 0
    udp_sent: int = 0
    udp_received: list[int] = field(default_factory=list)
    allowed_attempts: int = 0
    allowed_refused: int = 0
    denied_attempts: int = 0
    denied_passed: int = 0
    wrong: list[str] = field(default_factory=list)

    udp_receive_buffer_errors: int = 0
    """Datagrams the receiving socket's buffer had no room for (``RcvbufErrors`` in x/b's
    namespace): lost by a reader thread that fell behind, not by the network."""

    @property
    def udp_lost(self) -> int:
        return self.udp_sent - len(set(self.udp_received))

    @property
    def udp_reordered(self) -> int:
        return sum(1 for before, after in zip(self.udp_received, self.udp_received[1:]) if after < before)


class Updates(Protocol):
    """The side that changes the rules while the traffic runs."""

    def start(self) -> None:
        """Program the first round's rules (before any traffic)."""

    def run(self, rounds: int) -> None:
        """``rounds`` updates, restarts included."""

    def close(self) -> None: ...


class _Snapshot:
    def __init__(self, value: Cluster) -> None:
        self.value = value

    def snapshot(self) -> Cluster:
        return self.value


class NodeSyncs:
    """One :class:`NodeSync` per node on a shared snapshot, each round one sync per node."""

    def __init__(self, lab: AgentLab, identity_mark: IdentityMark | None = DEFAULT_IDENTITY_MARK) -> None:
        self.lab = lab
        self.identity_mark = identity_mark
        self.state = _Snapshot(round_cluster(lab, 0))
        self.syncs: list[NodeSync] = []
        self.backends: list[LibnftablesBackend] = []
        self.sent = self.resyncs = 0
        self.durations: list[float] = []

    def _new_syncs(self) -> None:
        self.close()
        self.backends = [LibnftablesBackend(netns=n.netns) for n in self.lab.nodes()]
        mask = None if self.identity_mark is None else self.identity_mark.mask
        self.syncs = [
            NodeSync.for_agent(self.state, AgentConfig(node=n.name, table=TABLE, identity_mark=mask),
                               Enforcer(b, table=TABLE), conntrack=ConntrackTool(netns=n.netns))
            for n, b in zip(self.lab.nodes(), self.backends)
        ]

    def start(self) -> None:
        self._new_syncs()
        self._sync_all()
        self.sent = 0
        self.durations.clear()

    def _sync_all(self) -> None:
        for sync in self.syncs:
            report = sync()
            self.sent += report.changed
            self.durations.append(report.duration_seconds)

    def run(self, rounds: int) -> None:
        for round_number in range(1, rounds + 1):
            if round_number == rounds // 2:
                self._new_syncs()
            self.state.value = round_cluster(self.lab, round_number)
            self._sync_all()
            if round_number % 10 == 0:
                for sync in self.syncs:
                    sync.verify()
                self.resyncs += 1

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
        self.backends = []


class AgentProcesses:
    """``policyctl agent --netns`` processes, one per lab node, reading the API server."""

    def __init__(
        self, lab: AgentLab, kubeconfig: str, identity_mark: IdentityMark | None = DEFAULT_IDENTITY_MARK
    ) -> None:
        self.lab, self.kubeconfig = lab, kubeconfig
        self.identity_mark = identity_mark
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self.retired: dict[str, int] = {}
        self.restarted_at: int | None = None
        self.final_converged = False

    def _spawn(self, node_name: str, netns_name: str) -> None:
        mark = NO_MARK if self.identity_mark is None else f"{self.identity_mark.mask:#010x}"
        argv = [POLICYCTL, "agent", "--kubeconfig", self.kubeconfig, "--netns", netns_name, "--table", TABLE,
                "--metrics-port", "-1", "--health-port", "-1", "--min-interval", "0.05",
                "--identity-mark", mark]  # fmt: skip
        self.processes[node_name] = subprocess.Popen(
            argv, env={"NODE_NAME": node_name, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip

    def start(self) -> None:
        for node_plan in self.lab.nodes():
            self._spawn(node_plan.name, node_plan.netns)
        if not self.converged(0):
            raise RuntimeError("the agents never programmed the first round")

    def run(self, rounds: int) -> None:
        self.restarted_at = rounds // 2 + 7
        for round_number in range(1, rounds + 1):
            if round_number == self.restarted_at:
                self._restart()
            for obj in round_objects(round_number)[-CHANGING:]:
                self.lab.write(obj)
            time.sleep(0.02)
        self.final_converged = self.converged(rounds)

    def _restart(self) -> None:
        for node_plan in self.lab.nodes():
            process = self.processes[node_plan.name]
            process.send_signal(signal.SIGTERM if node_plan.name == "node-1" else signal.SIGKILL)
            self.retired[node_plan.name] = process.wait(timeout=10)
            self._spawn(node_plan.name, node_plan.netns)

    def converged(self, round_number: int, *, timeout: float = 20.0) -> bool:
        """Every node's table equals the compiled ruleset of ``round_number``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._programmed(round_number, n.name, n.netns) for n in self.lab.nodes()):
                return True
            exited = [name for name, p in self.processes.items() if p.poll() is not None]
            if exited:
                raise RuntimeError(f"agent processes exited: {exited}")
            time.sleep(0.05)
        return False

    def _programmed(self, round_number: int, node_name: str, netns_name: str) -> bool:
        backend = LibnftablesBackend(netns=netns_name)
        try:
            expected = compile_node(round_cluster(self.lab, round_number), node_name, table=TABLE,
                                    identity_mark=self.identity_mark)  # fmt: skip
            return programmed(Enforcer(backend, table=TABLE), expected, self.identity_mark)
        finally:
            backend.close()

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextmanager
def _opened(netns_name: str, family: socket.AddressFamily, kind: socket.SocketKind) -> Iterator[socket.socket]:
    with netns.inside(netns_name):
        sock = socket.socket(family, kind)
    with sock:
        yield sock


def _connect_once(netns_name: str, address: str, *, timeout: float) -> bool:
    with _opened(netns_name, socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((address, PROBED))
        except OSError:
            return False
        return True


def _repeat(stop: threading.Event, body: Callable[[], None]) -> threading.Thread:
    def loop() -> None:
        while not stop.is_set():
            body()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def _pod(lab: AgentLab, key: str) -> PodPlan:
    plan = lab.engine.state.plan if lab.engine is not None else None
    if plan is None:
        raise RuntimeError("the lab has no plan yet")
    found: PodPlan = plan.pod_by_key[key]
    return found


def run_storm(lab: AgentLab, updates: Updates, rounds: int) -> Traffic:
    """``rounds`` updates under the streams and probes; what the traffic saw."""
    a, y, b = _pod(lab, "x/a"), _pod(lab, "y/a"), _pod(lab, "x/b")
    address = str(b.address(Family.IPV4))
    seen = Traffic()
    stop = threading.Event()
    with ExitStack() as stack:
        stack.callback(updates.close)
        updates.start()
        with netns.inside(b.netns):
            server = stack.enter_context(socket.create_server((address, TCP_STREAM)))
            receiver = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            receiver.bind((address, UDP_STREAM))
        tcp = stack.enter_context(_opened(a.netns, socket.AF_INET, socket.SOCK_STREAM))
        tcp.connect((address, TCP_STREAM))
        accepted, _ = server.accept()
        stack.enter_context(accepted)
        udp = stack.enter_context(_opened(a.netns, socket.AF_INET, socket.SOCK_DGRAM))
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
            if not _connect_once(a.netns, address, timeout=1.0):
                seen.allowed_refused += 1
                seen.wrong.append("x/a -> x/b:80 refused during the storm")
            time.sleep(0.01)

        def denied_probe() -> None:
            seen.denied_attempts += 1
            if _connect_once(y.netns, address, timeout=0.05):
                seen.denied_passed += 1
                seen.wrong.append("y/a -> x/b:80 let through during the storm")

        senders = [_repeat(stop, send_tcp), _repeat(stop, send_udp), _repeat(stop, allowed_probe),
                   _repeat(stop, denied_probe)]  # fmt: skip
        readers = [_repeat(stop, receive_tcp), _repeat(stop, receive_udp)]
        try:
            updates.run(rounds)
        finally:
            stop.set()
            for thread in senders:
                thread.join()
        time.sleep(0.5)
        drain = threading.Event()
        readers += [_repeat(drain, receive_tcp), _repeat(drain, receive_udp)]
        deadline = time.monotonic() + 5
        while (
            seen.tcp_received < seen.tcp_sent or len(seen.udp_received) < seen.udp_sent
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
        drain.set()
        for thread in readers:
            thread.join()
        with netns.inside(b.netns):
            seen.udp_receive_buffer_errors = _udp_receive_buffer_errors()
        info = tcp.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        seen.tcp_retransmitted = struct.unpack_from("I", info, TCP_INFO_TOTAL_RETRANS)[0]
        if seen.tcp_retransmitted:
            seen.wrong.append(f"the TCP stream retransmitted {seen.tcp_retransmitted} segments (packets were dropped)")
    return seen


def _udp_receive_buffer_errors() -> int:
    """``Udp: RcvbufErrors`` of the calling thread's network namespace."""
    lines = [line.split() for line in Path("/proc/thread-self/net/snmp").read_text().splitlines()]
    names, values = [row for row in lines if row[0] == "Udp:"][:2]
    return int(values[names.index("RcvbufErrors")])


@contextmanager
def storm_lab() -> Iterator[AgentLab]:
    """The lab and the API server holding round 0, with servers on port 80 of every pod; no
    rule in the kernel yet."""
    with AgentLab(table=TABLE) as lab:
        lab.build(round_objects(0))
        assert lab.engine is not None
        lab.engine.observe(lab.cluster, HTTP)
        yield lab


def updates_for(lab: AgentLab, mode: str, workdir: Path) -> NodeSyncs | AgentProcesses:
    if mode == "syncs":
        return NodeSyncs(lab)
    if mode == "processes":
        return AgentProcesses(lab, lab.server.write_kubeconfig(workdir / "kubeconfig"))
    raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")


def figures(seen: Traffic, updates: NodeSyncs | AgentProcesses, rounds: int, seconds: float) -> list[Figure]:
    zero = Target(0.5)
    found = [
        Figure("storm.tcp_retransmitted", "segments", seen.tcp_retransmitted, target=zero,
               detail=f"{seen.tcp_sent} messages sent, {seen.tcp_received} received in order"),
        Figure("storm.udp_lost", "datagrams", seen.udp_lost, target=zero,
               detail=f"of {seen.udp_sent} sent; the receiving socket's buffer overflowed "
                      f"{seen.udp_receive_buffer_errors} times (RcvbufErrors: the reader, not the network)"),
        Figure("storm.udp_reordered", "datagrams", seen.udp_reordered, target=zero),
        Figure("storm.allowed_refused", "connections", seen.allowed_refused, target=zero,
               detail=f"of {seen.allowed_attempts} new allowed connections"),
        Figure("storm.denied_passed", "connections", seen.denied_passed, target=zero,
               detail=f"of {seen.denied_attempts} denied attempts"),
        Figure("storm.seconds", "s", seconds, detail=f"{rounds} rounds"),
    ]  # fmt: skip
    if isinstance(updates, NodeSyncs) and updates.durations:
        found += [
            Figure("storm.sync_p50", "ms", median(updates.durations) * 1000, detail="one node's sync, round to kernel"),
            Figure("storm.sync_p99", "ms", quantile(updates.durations, 0.99) * 1000),
        ]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--agents", choices=MODES, action="append", help="how rounds are applied (repeatable)")
    parser.add_argument("--out", type=Path)
    options = parser.parse_args(argv)
    runs: dict[str, Any] = {}
    for mode in options.agents or list(MODES):
        with storm_lab() as lab, ExitStack() as stack:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="policyctl-storm-")))
            updates = updates_for(lab, mode, workdir)
            began = time.monotonic()
            seen = run_storm(lab, updates, options.rounds)
            seconds = time.monotonic() - began
        runs[mode] = {
            "rounds": options.rounds,
            "figures": {f.name: f.to_json() for f in figures(seen, updates, options.rounds, seconds)},
            "wrong": seen.wrong[:20],
            **({"retired_exit_codes": updates.retired, "final_converged": updates.final_converged}
               if isinstance(updates, AgentProcesses) else {"changes_sent": updates.sent, "resyncs": updates.resyncs}),
        }  # fmt: skip
    document = json.dumps(
        {"runs": runs, "machine": machine()},
        indent=2, sort_keys=True,
    )  # fmt: skip
    if options.out:
        options.out.write_text(document + "\n")
    print(document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
