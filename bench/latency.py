"""End-to-end enforcement latency: from an API write to the first packets that show its effect.

The definitions are ClusterLoader2's network policy enforcement latency, measured in a lab
where one agent per node, fed by the project's API server, writes every rule
(``bench/agentlab.py``):

* ``latency.policy_create``: a policy is created over existing pods (it isolates a target
  pod that a client could reach); the time until the client's new connections are refused.
* ``latency.pod_create``: a pod is created under an existing policy that admits it (the
  target admits pods with the new pod's labels only); the time until the new pod's
  connections reach the target.
* ``latency.policy_delete``: the policy that admitted an established flow is deleted (the
  target stays isolated); the time until that flow's packets stop getting through.

Probing: a thread in the source pod's namespace opens a new TCP connection every
``interval`` (or, for an established flow, sends a numbered message over it and waits for its
echo), each with ``timeout``. Every attempt is stamped with the monotonic time it started. The
latency is the start of the first attempt from which every later attempt shows the new
verdict (at least ``confirm`` of them), minus the time the API write began; so it is exact to
within one ``interval``, and a single attempt lost to a busy machine does not count as the
flip. Before each write the prober must see the old verdict, or the sample is void.

Run: ``python -m policyctl.bench.latency --pods 100 --reps 20`` (root, from the checkout: it
imports the API server from ``tests/apiserver``). JSON on stdout, or to ``--out``.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import selectors
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policyctl.bench.agentlab import AgentLab, Raw, namespace, node, pod, policy
from policyctl.bench.figures import Figure, Target, machine, median, quantile
from policyctl.lab.netns import inside, set_sysctls

PORT = 7000
TEAM = "lat"
NODES = ("node-a", "node-b")
PODS_PER_NODE = 200
"""The lab gives each node a /24 pod CIDR; 200 pods per node as in the bench's generated clusters."""
TARGETS = {"policy_create": Target(0.100), "pod_create": Target(0.100), "policy_delete": Target(1.0)}
"""Issue #15: (a) and (b) p99 < 100 ms, (c) < 1 s, at 1k pods."""


@dataclass(frozen=True, slots=True)
class Sample:
    started: float
    ok: bool


@dataclass(frozen=True, slots=True)
class Probing:
    interval: float = 0.005
    timeout: float = 0.2
    confirm: int = 10
    baseline: float = 0.5
    deadline: float = 10.0


Attempts = Callable[[Probing, threading.Event, Callable[[Sample], None]], None]
"""Probes until the event is set, handing each finished attempt to the callback."""


@dataclass(slots=True)
class Prober:
    """Attempts in a background thread; :meth:`flip` reads what it has seen so far."""

    attempt: Attempts
    probing: Probing
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self) -> Prober:
        def run() -> None:
            try:
                self.attempt(self.probing, self._stop, self._add)
            except BaseException as caught:  # noqa: BLE001 - reported by the caller, never swallowed
                self.error = caught

        self._thread = threading.Thread(target=run, name="latency-prober", daemon=True)
        self._thread.start()
        return self

    def _add(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self.error is not None:
            raise RuntimeError(f"prober failed: {self.error}") from self.error

    def seen(self, since: float = 0.0) -> list[Sample]:
        with self._lock:
            return sorted((s for s in self.samples if s.started >= since), key=lambda s: s.started)


def flip_time(samples: list[Sample], new: bool, *, confirm: int) -> float | None:
    """Start of the first attempt from which every attempt shows ``new``, if at least ``confirm`` do."""
    run: list[Sample] = []
    for sample in samples:
        run = [*run, sample] if sample.ok is new else []
    if len(run) < confirm:
        return None
    return run[0].started


def connects(netns: str, address: str, port: int) -> Attempts:
    """A new non-blocking TCP connection every interval; allowed when the handshake completes."""

    def attempt(probing: Probing, stop: threading.Event, add: Callable[[Sample], None]) -> None:
        selector = selectors.DefaultSelector()
        pending: dict[socket.socket, float] = {}
        with inside(netns):
            next_at = time.monotonic()
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_at:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setblocking(False)
                    code = sock.connect_ex((address, port))
                    if code in (0, errno.EINPROGRESS):
                        pending[sock] = now
                        selector.register(sock, selectors.EVENT_WRITE)
                    else:
                        add(Sample(now, False))
                        sock.close()
                    next_at = now + probing.interval
                for key, _ in selector.select(max(0.0, next_at - time.monotonic())):
                    sock = key.fileobj  # type: ignore[assignment]
                    started = pending.pop(sock)
                    selector.unregister(sock)
                    add(Sample(started, sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0))
                    sock.close()
                now = time.monotonic()
                for sock, started in list(pending.items()):
                    if now - started > probing.timeout:
                        del pending[sock]
                        selector.unregister(sock)
                        add(Sample(started, False))
                        sock.close()
        for sock in pending:
            sock.close()
        selector.close()

    return attempt


def established(netns: str, address: str, port: int) -> Attempts:
    """One TCP connection; a 4-byte message every interval, allowed when its echo returns in time."""

    def attempt(probing: Probing, stop: threading.Event, add: Callable[[Sample], None]) -> None:
        try:
            with inside(netns):
                sock = socket.create_connection((address, port), timeout=probing.deadline / 2)
        except OSError:
            add(Sample(time.monotonic(), False))
            return
        sock.setblocking(False)
        sent: deque[float] = deque()
        received = 0
        next_at = time.monotonic()
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_at:
                    try:
                        sock.send(b"ping")
                        sent.append(now)
                    except (BlockingIOError, ConnectionError):
                        add(Sample(now, False))
                    next_at = now + probing.interval
                try:
                    data = sock.recv(65536)
                    received += len(data)
                    while received >= 4 and sent:
                        received -= 4
                        add(Sample(sent.popleft(), True))
                except BlockingIOError:
                    pass
                except ConnectionError:
                    pass
                now = time.monotonic()
                while sent and now - sent[0] > probing.timeout:
                    add(Sample(sent.popleft(), False))
                time.sleep(min(0.001, max(0.0, next_at - time.monotonic())))
        finally:
            sock.close()

    return attempt


class EchoServers:
    """TCP servers in pod namespaces: accept, echo, close on EOF."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="latency-echo", daemon=True)
        self._thread.start()

    def serve(self, netns: str, port: int) -> None:
        with inside(netns):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        listener.listen(1024)
        listener.setblocking(False)
        with self._lock:
            self._selector.register(listener, selectors.EVENT_READ, "listen")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                ready = self._selector.select(0.05)
            for key, _ in ready:
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if key.data == "listen":
                    try:
                        conn, _ = sock.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    with self._lock:
                        self._selector.register(conn, selectors.EVENT_READ, "echo")
                    continue
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionError:
                    data = b""
                if data:
                    try:
                        sock.sendall(data)
                        continue
                    except (BlockingIOError, ConnectionError):
                        pass
                with self._lock:
                    self._selector.unregister(sock)
                sock.close()


@dataclass(frozen=True, slots=True)
class Measurement:
    """One repetition: its latency (None: the new verdict was not seen before the deadline) and
    whether the old verdict held before the write."""

    latency: float | None
    baseline_ok: bool
    attempts: int
    trace: str = ""
    """When the new verdict was not seen: what each attempt after the write saw (``o`` the old
    verdict, ``x`` the new), for diagnosis."""


def measure(prober: Prober, write: Callable[[], float], *, old: bool) -> Measurement:
    """Start probing, check the old verdict, write, wait for the new verdict."""
    probing = prober.probing
    prober.start()
    try:
        time.sleep(probing.baseline)
        before = prober.seen()
        baseline_ok = bool(before) and all(s.ok is old for s in before[len(before) // 2 :])
        began = write()
        deadline = began + probing.deadline
        flipped = None
        while time.monotonic() < deadline:
            time.sleep(0.02)
            after = prober.seen(began)
            flipped = flip_time(after, not old, confirm=probing.confirm)
            if flipped is not None:
                break
        after = prober.seen(began)
        trace = "" if flipped is not None else "".join("o" if s.ok is old else "x" for s in after)[:400]
        return Measurement(None if flipped is None else flipped - began, baseline_ok, len(after), trace)
    finally:
        prober.stop()


@dataclass(frozen=True, slots=True)
class Shape:
    """``pods`` in all: background apps in namespaces of ten (each isolated, with a policy
    admitting its own namespace), the probe pods of ``reps`` repetitions, across ``nodes``."""

    pods: int
    reps: int
    nodes: tuple[str, ...] = NODES
    node_sysctls: tuple[tuple[str, str], ...] = ()
    """Set in every node's namespace before the agents start. None is needed: under the kernel's
    default ``net.netfilter.nf_conntrack_tcp_loose=1`` the ruleset's mid-stream rules keep a
    revoked TCP flow from being picked up again (``docs/ruleset.md``); runs before them set it
    to 0."""


def background(shape: Shape) -> list[Raw]:
    count = max(0, shape.pods - (2 * shape.reps + 2))
    objects: list[Raw] = []
    for index in range(0, count, 10):
        ns = f"bg-{index // 10}"
        objects.append(namespace(ns, team=f"t{index // 10 % 8}"))
        objects.append(policy(f"{ns}/deny", {"podSelector": {}, "policyTypes": ["Ingress"]}))
        objects.append(
            policy(
                f"{ns}/same-namespace",
                {
                    "podSelector": {"matchLabels": {"tier": "app"}},
                    "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 8080, "protocol": "TCP"}]}],
                },
            )
        )
        for offset in range(min(10, count - index)):
            objects.append(
                pod(
                    f"{ns}/app-{offset}",
                    {"tier": "app", "app": f"a{offset % 3}"},
                    node=shape.nodes[(index + offset) % len(shape.nodes)],
                )
            )
    return objects


def probe_objects(shape: Shape) -> list[Raw]:
    """The client on the first node, targets on the last: traffic crosses the underlay."""
    client_node, target_node = shape.nodes[0], shape.nodes[-1]
    objects: list[Raw] = [
        namespace(TEAM, team=TEAM),
        pod(f"{TEAM}/client", {"role": "client"}, node=client_node),
        pod(f"{TEAM}/b-target", {"role": "b-target"}, node=target_node),
        policy(
            f"{TEAM}/b-admit",
            {
                "podSelector": {"matchLabels": {"role": "b-target"}},
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": {"role": "b-client"}}}],
                        "ports": [{"port": PORT, "protocol": "TCP"}],
                    }
                ],
            },
        ),
        policy(f"{TEAM}/c-isolate", {"podSelector": {"matchLabels": {"role": "c-target"}}, "policyTypes": ["Ingress"]}),
    ]
    for rep in range(shape.reps):
        objects.append(pod(f"{TEAM}/a-{rep}", {"role": "a-target", "rep": str(rep)}, node=target_node))
        objects.append(pod(f"{TEAM}/c-{rep}", {"role": "c-target", "rep": str(rep)}, node=target_node))
        objects.append(c_admit(rep))
    return objects


def a_isolate(rep: int) -> Raw:
    return policy(
        f"{TEAM}/a-isolate-{rep}",
        {"podSelector": {"matchLabels": {"role": "a-target", "rep": str(rep)}}, "policyTypes": ["Ingress"]},
    )


def c_admit(rep: int) -> Raw:
    return policy(
        f"{TEAM}/c-admit-{rep}",
        {
            "podSelector": {"matchLabels": {"role": "c-target", "rep": str(rep)}},
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                    "ports": [{"port": PORT, "protocol": "TCP"}],
                }
            ],
        },
    )


def b_client(rep: int, shape: Shape) -> Raw:
    return pod(f"{TEAM}/b-client-{rep}", {"role": "b-client"}, node=shape.nodes[0])


@dataclass(frozen=True, slots=True)
class Run:
    """What one size measured: per kind, the repetitions, and how long the lab took to build."""

    shape: Shape
    measurements: dict[str, list[Measurement]]
    build_seconds: float
    agents_ready_seconds: float


@contextmanager
def lab_of(shape: Shape) -> Iterator[tuple[AgentLab, EchoServers, float, float]]:
    servers = EchoServers()
    try:
        with AgentLab() as lab:
            started = time.monotonic()
            lab.build([node(n) for n in shape.nodes] + background(shape) + probe_objects(shape))
            for key in [f"{TEAM}/b-target"] + [f"{TEAM}/{kind}-{rep}" for rep in range(shape.reps) for kind in "ac"]:
                servers.serve(lab.netns_of(key), PORT)
            built = time.monotonic() - started
            for node_plan in lab.nodes():
                set_sysctls(node_plan.netns, dict(shape.node_sysctls))
            ready = lab.start_agents()
            yield lab, servers, built, ready
    finally:
        servers.close()


def run(shape: Shape, probing: Probing, *, gap: float = 1.2, log: Callable[[str], None] = lambda _: None) -> Run:
    """Every repetition of each kind, ``gap`` apart (above the agent's default ``min_interval``
    of 1 s, so each write meets an idle agent, as a lone change on a real cluster does)."""
    found: dict[str, list[Measurement]] = {kind: [] for kind in TARGETS}
    with lab_of(shape) as (lab, _, built, ready):
        log(f"{shape.pods} pods: lab built in {built:.1f} s, agents ready in {ready:.1f} s")
        client = lab.netns_of(f"{TEAM}/client")
        for rep in range(shape.reps):
            time.sleep(gap)
            target = lab.address_of(f"{TEAM}/a-{rep}")
            found["policy_create"].append(
                measure(Prober(connects(client, target, PORT), probing), lambda: lab.write(a_isolate(rep)), old=True)
            )
            time.sleep(gap)
            new_pod = b_client(rep, shape)
            lab.layout_pod(new_pod)
            source = lab.netns_of(f"{TEAM}/b-client-{rep}")
            found["pod_create"].append(
                measure(
                    Prober(connects(source, lab.address_of(f"{TEAM}/b-target"), PORT), probing),
                    lambda: lab.write(new_pod),
                    old=False,
                )
            )
            time.sleep(gap)
            target = lab.address_of(f"{TEAM}/c-{rep}")
            found["policy_delete"].append(
                measure(Prober(established(client, target, PORT), probing), lambda: lab.delete(c_admit(rep)), old=True)
            )
            log(f"  rep {rep}: " + ", ".join(f"{k} {_ms(v[-1].latency)}" for k, v in found.items()))
    return Run(shape, found, built, ready)


def _ms(value: float | None) -> str:
    return "not seen" if value is None else f"{value * 1000:.1f} ms"


def figures(result: Run, probing: Probing) -> list[Figure]:
    out = []
    for kind, samples in result.measurements.items():
        valid = [m for m in samples if m.baseline_ok]
        seen = [m.latency for m in valid if m.latency is not None]
        name = f"latency.{kind}"
        detail = (
            f"{result.shape.pods} pods, {len(result.shape.nodes)} nodes; {len(samples)} repetitions, "
            f"{len(samples) - len(valid)} void (old verdict not seen before the write), "
            f"{len(valid) - len(seen)} not flipped within {probing.deadline:g} s; "
            f"probe every {probing.interval * 1000:g} ms, timeout {probing.timeout * 1000:g} ms"
        )
        if len(seen) < len(valid) or not seen:
            reason = "not every repetition saw the new verdict" if valid else "no valid repetition"
            out.append(Figure(name + ".p99", "s", None, target=TARGETS[kind], detail=detail, unavailable=reason))
            continue
        out.append(Figure(name + ".p99", "s", quantile(seen, 0.99), target=TARGETS[kind], detail=detail))
        out.append(Figure(name + ".p50", "s", median(seen), detail=detail))
        out.append(Figure(name + ".max", "s", max(seen), detail=detail))
    return out


def report(results: list[Run], probing: Probing) -> dict[str, Any]:
    sizes = {}
    for result in results:
        sizes[str(result.shape.pods)] = {
            "node_sysctls": dict(result.shape.node_sysctls),
            "reps": result.shape.reps,
            "figures": {f.name: f.to_json() for f in figures(result, probing)},
            "lab_build_seconds": round(result.build_seconds, 2),
            "agents_ready_seconds": round(result.agents_ready_seconds, 2),
            "samples_ms": {
                kind: [None if m.latency is None else round(m.latency * 1000, 2) for m in ms]
                for kind, ms in result.measurements.items()
            },
            "void": {kind: sum(not m.baseline_ok for m in ms) for kind, ms in result.measurements.items()},
            "unflipped_traces": {
                kind: [m.trace for m in ms if m.latency is None] for kind, ms in result.measurements.items()
            },
        }
    return {
        "sizes": sizes,
        "probing": {
            "interval_s": probing.interval,
            "timeout_s": probing.timeout,
            "confirm": probing.confirm,
            "deadline_s": probing.deadline,
        },
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pods", type=int, action="append", help="cluster size (repeatable); default 20")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--gap", type=float, default=1.2)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--node-sysctl",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set in every lab node's namespace, e.g. net.netfilter.nf_conntrack_tcp_loose=1 (the kernel's default)",
    )
    options = parser.parse_args(argv)
    probing = Probing()
    results = []
    for pods in options.pods or [20]:
        sysctls = tuple((key, value) for key, _, value in (item.partition("=") for item in options.node_sysctl))
        nodes = tuple(f"node-{index}" for index in range(max(2, math.ceil(pods / PODS_PER_NODE))))
        shape = Shape(pods=pods, reps=options.reps, nodes=nodes, node_sysctls=sysctls)
        results.append(run(shape, probing, gap=options.gap, log=lambda line: print(line, file=sys.stderr, flush=True)))
        document = json.dumps(report(results, probing), indent=2, sort_keys=True)
        if options.out:
            options.out.write_text(document + "\n")
    print(document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
