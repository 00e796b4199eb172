"""The performance suite: ``python -m bench.run --scale tiny|small|full|huge`` prints JSON figures.

One command measures every figure of the issue on one generated cluster (:mod:`bench.gen`),
each beside a baseline measured in the same run (:mod:`bench.figures` says why):

* ``compile.*``: the selector graph, one node's ruleset (cold: graph included, as an agent
  starting up does), all nodes, and nftables elements per node against the rule count of the
  same policies as a linear list (:mod:`bench.linear`), of the ruleset ``policyctl compile``
  writes by default (:func:`default_compile`);
* ``apply.full``: the enforcer's first apply of that document into a fresh network namespace
  (the cyclic garbage collector paused, as in the agent's syncs: the bench's own heap would
  otherwise charge it collections no agent makes), against loading the same document with no
  read-back and no diff;
* ``event.*``: event -> kernel latency (the watch event's store write, the agent's sync:
  snapshot, incremental compile, one transaction into the namespace) for pod add, delete,
  relabel and policy add and a peer pod's add and delete (:mod:`bench.events`), p50 and p99,
  against the kernel's floor measured on the same table: ``event.<kind>`` in the agent's
  default peer layout (marked), ``event.jumping.<kind>`` in the peer maps that jump;
* ``dataplane.*``: throughput and connection rate between two lab pods with the node rulesets
  (default layout) loaded, against no ruleset and against the linear list (:mod:`bench.dataplane`);
* ``command.*``: the headline for analysis: whole ``policyctl`` processes as users run them
  (``matrix --all-ports -o json``, ``matrix --port``, ``diff``, ``check -o json``, ``verify
  assert``, ``verify redundant``, ``explain`` of one pair), wall time and peak RSS, against
  network-config-analyzer's whole process on the same input and against the same process
  reading the manifests only (:mod:`bench.commands`);
* ``verifier.*``: the breakdown: all-pairs connectivity and a semantic diff as functions,
  against network-config-analyzer on the same input where it is installed (it refuses more
  than 10,000 pods);
* ``agent.rss``: the agent's resident memory after its initial sync, where the agent exists;
* ``probe.lab_case``: one nine-pod upstream case on the lab engine, against the model engine.

Figures that cannot be measured here are printed with ``value: null`` and the reason. Every
network namespace the suite creates has the prefix ``pcl-`` (the lab's) or ``pcb-`` and is
deleted before the command returns, also on error.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import importlib
import importlib.util
import json
import os
import random
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from policyctl.bench.commands import COMMAND_FIGURES, section_commands
from policyctl.bench.events import EVENTS, KINDS
from policyctl.bench.figures import Figure, Target, median, quantile, timed, unavailable
from policyctl.bench.gen import SCALES, ClusterShape, generate
from policyctl.bench.linear import linear_document, rule_count
from policyctl.compiler.compile import compile_node
from policyctl.compiler.graph import PolicyGraph
from policyctl.compiler.layout import dispatch_map_name, node_set_name
from policyctl.compiler.markedpeers import DEFAULT_MASK, IdentityMark
from policyctl.compiler.newpods import NewPodWindow
from policyctl.compiler.render_json import to_document
from policyctl.compiler.ruleset import Ruleset
from policyctl.policy.diagnostics import Severity
from policyctl.policy.cluster import Cluster
from policyctl.policy.model import Direction, Family

SCHEMA_VERSION = 1
TABLE = "pcbench"
NETNS_PREFIX = "pcb-"
NCA_MAX_PODS = 10_000
NCA_ENV = "POLICYCTL_BENCH_NCA"
REPO = Path(__file__).resolve().parent.parent
PROBE_CASE = (
    Path(__file__).resolve().parent.parent
    / "tests/cases/upstream/enforce-policy-based-on-podselector-and-namespaceselector.yaml"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Effort:
    """How hard each section works at a scale: repeats and durations."""

    events_per_kind: int
    """Events of each kind the event section times. Its p99 is by nearest rank: of 100 events
    the second slowest; of 25 (the 100k scale until 2026-12-05) it was the slowest, and one slow
    event moved it by a third between runs of the same code. More events are not a steadier
    estimate of the same figure: the sequence goes on adding pods and policies, so its later
    events are heavier (300 per kind, tried 2026-12-06: 10k p50s 0.1-0.4 ms higher)."""
    dataplane_seconds: float
    dataplane_rounds: int
    compile_nodes: int
    nca_timeout: float
    command_timeout: float = 900.0
    command_memory_mb: int | None = None
    """Address-space limit of each command process (the huge scale only)."""
    all_nodes_sample: int = 0
    """Compile only this many nodes for ``compile.all_nodes`` and extrapolate (0: all)."""


EFFORT = {
    "tiny": Effort(events_per_kind=2, dataplane_seconds=0.2, dataplane_rounds=1, compile_nodes=2, nca_timeout=60,
                   command_timeout=120),
    "small": Effort(events_per_kind=50, dataplane_seconds=1.0, dataplane_rounds=5, compile_nodes=3, nca_timeout=300),
    "full": Effort(events_per_kind=100, dataplane_seconds=1.0, dataplane_rounds=7, compile_nodes=3, nca_timeout=1800),
    "huge": Effort(events_per_kind=100, dataplane_seconds=1.0, dataplane_rounds=7, compile_nodes=2, nca_timeout=0,
                   command_timeout=600, command_memory_mb=12288, all_nodes_sample=10),
}


@dataclasses.dataclass(slots=True)
class Context:
    shape: ClusterShape
    effort: Effort
    workdir: Path
    manifests: Path
    cluster: Cluster
    graph: PolicyGraph
    node: str
    documents: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    full_apply: float | None = None


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@contextmanager
def throwaway_netns() -> Iterator[str]:
    """A fresh network namespace, deleted on exit (its nft tables go with it)."""
    name = f"{NETNS_PREFIX}{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def kernel_unavailable() -> str:
    if os.geteuid() != 0:
        return "needs root (network namespaces and nftables)"
    if shutil.which("ip") is None:
        return "iproute2 is not installed"
    try:
        importlib.import_module("nftables")
    except ImportError:
        return "the libnftables binding does not import under this interpreter"
    return ""


# -- compile ------------------------------------------------------------------------------


def busiest_node(cluster: Cluster) -> str:
    counts: dict[str, int] = {}
    for pod in cluster.pods:
        if pod.node:
            counts[pod.node] = counts.get(pod.node, 0) + 1
    return max(sorted(counts), key=lambda n: counts[n])


def default_compile(cluster: Cluster, node: str, graph: PolicyGraph) -> Ruleset:
    """The node's ruleset as ``policyctl compile --node NODE`` writes it by default (the
    compile, apply and data-plane sections' document): the marked peer layout with its
    default bits and the new-pod window denying (``--identity-mark``, ``--new-pod-window``)."""
    return compile_node(cluster, node, table=TABLE, graph=graph, identity_mark=IdentityMark(DEFAULT_MASK),
                        new_pods=NewPodWindow.DENY)


def linear_baseline(cluster: Cluster, node: str, graph: PolicyGraph) -> dict[str, Any]:
    """The node's policies as a linear rule list (:mod:`bench.linear`), written from the
    layout whose peer maps jump: the same policies, each peer address and port a rule. The
    marked layout's bit sets spell a peer's identity over several lookups, which a rule list
    has no one-rule spelling of."""
    return linear_document(to_document(compile_node(cluster, node, table=TABLE, graph=graph)))


def section_compile(ctx: Context) -> list[Figure]:
    cluster = ctx.cluster
    nodes = sorted(n.name for n in cluster.nodes)
    graph_seconds, _ = timed(lambda: PolicyGraph(cluster))
    warm = []
    for node in [ctx.node, *[n for n in nodes if n != ctx.node]][: ctx.effort.compile_nodes]:
        seconds, ruleset = timed(functools.partial(default_compile, cluster, node, ctx.graph))
        warm.append(seconds)
        if node == ctx.node:
            ctx.documents[node] = to_document(ruleset)
    node_seconds = graph_seconds + median(warm)
    elements: list[int] = []
    render: list[float] = []

    sample = nodes[: ctx.effort.all_nodes_sample] if ctx.effort.all_nodes_sample else nodes
    graph_again: list[float] = []

    def all_nodes() -> None:
        seconds, graph = timed(lambda: PolicyGraph(cluster))
        graph_again.append(seconds)
        for node in sample:
            ruleset = default_compile(cluster, node, graph)
            elements.append(ruleset.element_count)
            seconds, document = timed(lambda: to_document(ruleset))
            render.append(seconds)
            if node not in ctx.documents and len(ctx.documents) < 4:
                ctx.documents[node] = document

    all_seconds, _ = timed(all_nodes)
    all_seconds -= sum(render)
    all_detail = f"{len(nodes)} nodes, one graph"
    if len(sample) < len(nodes):
        all_seconds = graph_again[0] + (all_seconds - graph_again[0]) * len(nodes) / len(sample)
        all_detail += f"; extrapolated from {len(sample)} nodes"
    linear_rules = [rule_count(linear_baseline(cluster, n, ctx.graph)) for n in ctx.documents]
    compiled_rules = rule_count(ctx.documents[ctx.node])
    return [
        Figure(
            "compile.graph", "s", graph_seconds, detail="label-selector graph of the whole cluster, shared by all nodes"
        ),
        Figure(
            "compile.node",
            "s",
            node_seconds,
            baseline=all_seconds,
            baseline_name="compile of all nodes",
            target=Target(1.0),
            detail=f"graph + one node (the busiest, {ctx.node}); node alone {median(warm):.3f}s",
        ),
        Figure(
            "compile.all_nodes",
            "s",
            all_seconds,
            baseline=node_seconds * len(nodes),
            baseline_name="one node from scratch, times the nodes",
            detail=all_detail,
        ),
        Figure(
            "compile.render_json",
            "s",
            median(render),
            baseline=median(warm),
            baseline_name="compile of the node",
            detail="to_document of one node's ruleset (median over nodes)",
        ),
        Figure(
            "compile.elements_per_node",
            "elements",
            median(elements),
            baseline=median(linear_rules),
            baseline_name="rules of the same policies as a linear list (median of up to 4 nodes)",
            detail=f"max {max(elements)}; this node's compiled table has {compiled_rules} rules",
        ),
    ]


# -- apply and events ---------------------------------------------------------------------


#: The peer layouts whose events are measured, by figure-name prefix: the marked one
#: (``compiler.markedpeers``, the agent's default) with its default sixteen bits, enough for any
#: identity count of the presets, unprefixed as the headline (``event.pod-add.p99``); maps that
#: jump (``--identity-mark none``) as ``event.jumping.*``. Results up to 2026-12-07 name them
#: ``event.marked.*`` and ``event.*`` (bench/README.md, "Figure names").
LAYOUTS: dict[str, int | None] = {"": DEFAULT_MASK, "jumping.": None}
EVENT_FIGURES = tuple(
    f"event.{layout}{k}.{q}" for layout in LAYOUTS
    for k in (*KINDS, "floor", "floor-jump", "floor-batch", "floor-batch-jump") for q in ("p50", "p99")
) + tuple(f"event.{layout}{name}" for layout in LAYOUTS for name in ("resync", "resync.wait"))


def section_apply_and_events(ctx: Context) -> list[Figure]:
    from policyctl.agent.collector import paused
    from policyctl.enforcer.apply import Enforcer
    from policyctl.enforcer.backend import LibnftablesBackend

    reason = kernel_unavailable()
    if reason:
        return [unavailable(n, "s", reason) for n in ("apply.full", *EVENT_FIGURES)]
    document = ctx.documents[ctx.node]
    figures: list[Figure] = []
    with throwaway_netns() as raw_ns:
        backend = LibnftablesBackend(netns=raw_ns)
        raw_seconds, _ = timed(lambda: backend.run(document))
        backend.close()
    with throwaway_netns() as ns:
        backend = LibnftablesBackend(netns=ns)
        enforcer = Enforcer(backend, table=TABLE)
        with paused():
            full, report = timed(lambda: enforcer.apply(document))
        ctx.full_apply = full
        figures.append(
            Figure(
                "apply.full",
                "s",
                full,
                baseline=raw_seconds,
                baseline_name="the same document sent as is (no read-back, no diff)",
                target=Target(0.5),
                detail=f"{report.transaction.elements_added} elements, {len(report.transaction.commands)} commands "
                "(the compile section's document, default peer layout; the cyclic garbage collector paused, as the "
                "agent's syncs run)",
            )
        )
        with throwaway_netns() as jumping_ns:
            jumping = LibnftablesBackend(netns=jumping_ns)
            figures += _events(ctx, Enforcer(jumping, table=TABLE), jumping, jumping_ns, "jumping.", full)
            jumping.close()
        figures += _events(ctx, enforcer, backend, ns, "", full)
        backend.close()
    return figures


FULL_APPLY = "the default layout's document applied whole (apply.full)"


def _events(ctx: Context, enforcer: Any, backend: Any, netns: str, layout: str, full: float) -> list[Figure]:
    """The events of every kind, the same ones for each layout (one seed), through the agent's
    path into a table of that layout (the first sync applies it whole), then the floor of that
    table."""
    from policyctl.enforcer.givingway import GIVE_WAY_POLL_SECONDS

    mask = LAYOUTS[layout]
    rng = random.Random(ctx.shape.seed)
    step, readback, path = _event_path(ctx, enforcer, netns, mask)
    cluster = ctx.cluster
    step(cluster)
    samples: dict[str, list[float]] = {k: [] for k in KINDS}
    slowest: dict[str, tuple[float, dict[str, float]]] = {}
    stages: dict[str, list[float]] = {}
    compiles = 0
    for _ in range(ctx.effort.events_per_kind):
        for kind in KINDS:
            cluster = EVENTS[kind](cluster, ctx.node, rng)
            split, compiled = step(cluster)
            samples[kind].append(split["store"] + split["to kernel"])
            if samples[kind][-1] >= slowest.get(kind, (0.0, {}))[0]:
                slowest[kind] = (samples[kind][-1], split)
            compiles += compiled
            for stage, seconds in split.items():
                stages.setdefault(stage, []).append(seconds)
    floor = one_element_transactions(backend, ctx.effort.events_per_kind * len(KINDS))
    floor_jump = one_jump_transactions(backend, ctx.effort.events_per_kind * len(KINDS))
    floor_batch = one_element_batches(backend, enforcer, ctx.effort.events_per_kind * len(KINDS))
    floor_batch_jump = one_jump_batches(backend, enforcer, ctx.effort.events_per_kind * len(KINDS))
    resync, _ = timed(readback)
    wait = longest_wait(readback)
    split_text = ", ".join(f"{k} {median(v) * 1000:.1f} ms" for k, v in sorted(stages.items()))
    events = ctx.effort.events_per_kind * len(KINDS)
    split_text = f"{compiles} of {events} events recompiled" + (f"; median split: {split_text}" if split_text else "")
    if mask is not None:
        path = f"identity mark {mask:#010x}; {path}"
    floor_name = "one-element libnftables transaction on the same table, same run, same quantile"
    figures = []
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        figures.append(Figure(
            f"event.{layout}floor.{name}", "s", quantile(floor, q), baseline=full, baseline_name=FULL_APPLY,
            detail=f"{len(floor)} transactions, each adding one address to {FLOOR_SET} (then removed)"))
        figures.append(Figure(
            f"event.{layout}floor-jump.{name}", "s", quantile(floor_jump, q), baseline=quantile(floor, q),
            baseline_name=floor_name,
            detail=f"a breakdown of the events: {len(floor_jump)} transactions, each adding one element that "
                   f"jumps to an empty chain of the bench's own to {FLOOR_JUMP_MAP} (then removed), as a pod's "
                   "dispatch entry does; what any transaction adding a jump or a verdict pays over the floor (the "
                   "kernel validates the table's chain graph on such a commit)"))
        figures.append(Figure(
            f"event.{layout}floor-batch.{name}", "s", quantile(floor_batch, q), baseline=quantile(floor, q),
            baseline_name=floor_name,
            detail=f"a breakdown of the events: {len(floor_batch)} transactions, the floor's one element sent as "
                   "the enforcer sends a transaction it encodes (an nfnetlink batch of its own, "
                   "enforcer.batches): what the kernel alone charges for it, without libnftables' cache "
                   "fetch and evaluation"))
        figures.append(Figure(
            f"event.{layout}floor-batch-jump.{name}", "s", quantile(floor_batch_jump, q),
            baseline=quantile(floor_batch, q),
            baseline_name="the floor's one element as a batch of our own (floor-batch), same quantile",
            detail=f"a breakdown of the events: {len(floor_batch_jump)} transactions, floor-jump's one element sent as "
                   "a batch of our own: what the kernel alone charges for a jump, nearly all of it the validation of "
                   "the table's chain graph that any added jump, verdict or rule sets off (from every base chain "
                   "through every verdict-map element); every pod add and most policy adds pay it"))
    figures.append(Figure(
        f"event.{layout}resync", "s", resync, baseline=full, baseline_name=FULL_APPLY,
        detail="the periodic read-back (NodeSync.verify, every max_interval, 60 s by default): the table listed "
               "from the kernel and compared with the state the enforcer committed last (the whole ruleset is "
               "rendered only when no trusted commit exists); run between syncs, it gives way to a waiting event, "
               "so events never carry it"))
    figures.append(Figure(
        f"event.{layout}resync.wait", "s", wait, baseline=resync, baseline_name="the whole read-back",
        detail="the longest stretch of a second read-back between two points where it gives way to a waiting "
               "event (it asks before and after each step, and every "
               f"{GIVE_WAY_POLL_SECONDS * 1000:g} ms while the kernel is listed): the longest an event "
               "arriving during a read-back waits for it"))
    for kind in KINDS:
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            tail = ""
            if name == "p99" and kind in slowest:
                seconds, split = slowest[kind]
                tail = f"; the slowest ({seconds * 1000:.2f} ms): " + ", ".join(
                    f"{k} {v * 1000:.2f} ms" for k, v in split.items() if k not in ("to kernel", "after kernel"))
            figures.append(Figure(
                f"event.{layout}{kind}.{name}", "s", quantile(samples[kind], q), baseline=quantile(floor, q),
                baseline_name=floor_name, target=Target(3, on_ratio=True) if name == "p99" else None,
                detail=f"{path}; {len(samples[kind])} events of this kind; {split_text}{tail}"))
    return figures


def longest_wait(readback: Callable[..., object]) -> float:
    """Run ``readback`` once, never told to give way, and return the longest time between two
    of its questions whether it must (its start and end count as such points)."""
    marks = [time.perf_counter()]

    def asked() -> bool:
        marks.append(time.perf_counter())
        return False

    readback(asked)
    marks.append(time.perf_counter())
    return max(later - earlier for earlier, later in zip(marks, marks[1:]))


#: A set every ruleset holds (the base chains read it), so the floor needs no extra object.
FLOOR_SET = node_set_name(Family.IPV4)
FLOOR_ADDRESS = "192.0.2.1"


def floor_element(verb: str) -> dict[str, Any]:
    return {verb: {"element": {"family": "inet", "table": TABLE, "name": FLOOR_SET, "elem": [FLOOR_ADDRESS]}}}


def one_element_transactions(backend: Any, count: int) -> list[float]:
    """The kernel's floor for an event: the wall time of ``count`` libnftables transactions
    that each add one address (TEST-NET-1, never a pod's) to a set of the table under test,
    with the table as the events left it. Each is undone outside the timing."""
    return timed_undone(count, lambda: backend.run({"nftables": [floor_element("add")]}),
                        lambda: backend.run({"nftables": [floor_element("delete")]}))


def one_element_batches(backend: Any, enforcer: Any, count: int) -> list[float]:
    """The floor's transaction sent as the enforcer sends one it encodes: an nfnetlink batch
    of its own (``enforcer.batches``), without libnftables. What the kernel alone charges for
    one element; the floor is libnftables' price for the same."""
    from policyctl.enforcer.batches import transaction_batch

    state = enforcer.committed or enforcer.current()
    batches = {verb: transaction_batch([floor_element(verb)], state.sets, family="inet", table=TABLE)
               for verb in ("add", "delete")}
    return timed_undone(count, lambda: backend.commit_batch(batches["add"]),
                        lambda: backend.commit_batch(batches["delete"]))


#: The ingress dispatch map of IPv4, in every layout.
FLOOR_JUMP_MAP = dispatch_map_name(Direction.INGRESS, Family.IPV4)
FLOOR_JUMP_CHAIN = "bench-floor-jump"


def one_jump_transactions(backend: Any, count: int) -> list[float]:
    """The floor of a transaction that adds a jump: the wall time of ``count`` libnftables
    transactions that each add one element (TEST-NET-1 -> jump to an empty chain of the bench's
    own, reached by nothing else) to the table's IPv4 ingress dispatch map, as a pod add's
    dispatch entry does. Measured beside :func:`one_element_transactions` to show what the
    kernel charges for a jump (or a verdict, or a set lookup in a new rule): on such a commit
    it validates the whole chain graph, every verdict-map element included, so the price grows
    with the rules and jump elements the table holds (the jumping peer maps' above all). The
    chain is created before and removed after, outside the timing."""
    base = {"family": "inet", "table": TABLE}

    def element(key: Any, verb: str) -> Callable[[], object]:
        return lambda: backend.run({"nftables": [{verb: {"element": {
            **base, "name": FLOOR_JUMP_MAP, "elem": [key]}}}]})

    with floor_jump_chain(backend):
        return timed_undone(count, element([FLOOR_ADDRESS, {"jump": {"target": FLOOR_JUMP_CHAIN}}], "add"),
                            element(FLOOR_ADDRESS, "delete"))


def one_jump_batches(backend: Any, enforcer: Any, count: int) -> list[float]:
    """:func:`one_jump_transactions`' transaction sent as the enforcer sends one it encodes (an
    nfnetlink batch of its own): beside :func:`one_element_batches`, the kernel's price of the
    chain-graph validation a jump sets off, without libnftables' share."""
    from policyctl.enforcer.batches import transaction_batch

    base = {"family": "inet", "table": TABLE}
    state = enforcer.committed or enforcer.current()
    elements = {"add": [FLOOR_ADDRESS, {"jump": {"target": FLOOR_JUMP_CHAIN}}], "delete": FLOOR_ADDRESS}
    batches = {verb: transaction_batch([{verb: {"element": {**base, "name": FLOOR_JUMP_MAP, "elem": [element]}}}],
                                       state.sets, family="inet", table=TABLE)
               for verb, element in elements.items()}
    if None in batches.values():
        raise RuntimeError(f"the jump element of {FLOOR_JUMP_MAP} did not encode as a batch")
    with floor_jump_chain(backend):
        return timed_undone(count, lambda: backend.commit_batch(batches["add"]),
                            lambda: backend.commit_batch(batches["delete"]))


@contextmanager
def floor_jump_chain(backend: Any) -> Iterator[None]:
    """The empty chain the floor's jump element targets, there for the timing and removed
    after it, so the table is left as the events left it."""
    chain = {"family": "inet", "table": TABLE, "name": FLOOR_JUMP_CHAIN}
    backend.run({"nftables": [{"add": {"chain": chain}}]})
    try:
        yield
    finally:
        backend.run({"nftables": [{"delete": {"chain": chain}}]})


def timed_undone(count: int, change: Callable[[], object], undo: Callable[[], object]) -> list[float]:
    """The wall times of ``count`` (at least 20) calls of ``change``, each undone by ``undo``
    outside the timing, so every call meets the table as the events left it."""
    samples = []
    for _ in range(max(count, 20)):
        seconds, _ = timed(change)
        samples.append(seconds)
        undo()
    return samples


Step = Callable[[Cluster], tuple[dict[str, float], bool]]


class _CommitClock:
    """The enforcer's backend, noting when the first transaction since ``committed`` was
    cleared returned: the moment the kernel has an event's change. A sync may send a second
    one after it (rule comments that only rename their sources, ``Enforcer.settle``), which
    decides no packet and is timed with what follows the kernel."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.committed: float | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, payload: Any) -> Any:
        result = self.inner.run(payload)
        if self.committed is None and any("list" not in command for command in payload.get("nftables", ())):
            self.committed = time.perf_counter()
        return result

    def commit_batch(self, batch: Any) -> None:
        self.inner.commit_batch(batch)
        if self.committed is None:
            self.committed = time.perf_counter()


def _tracked_flow(ctx: Context, netns: str) -> Any:
    """The node's conntrack table in ``netns`` with one established flow from the node to a
    local pod (one the ruleset allows, so it stays), so that revocation after each change
    judges a flow as on any node that carries traffic; None without conntrack-tools."""
    from policyctl.enforcer.conntrack import ConntrackTool

    node_address = next((a for a in ctx.cluster.node_by_name[ctx.node].addresses if a.version == 4), None)
    pod_address = next((ip for p in ctx.cluster.pods if p.node == ctx.node for ip in p.ips if ip.version == 4), None)
    if shutil.which("conntrack") is None or node_address is None or pod_address is None:
        return None
    subprocess.run(["ip", "netns", "exec", netns, "conntrack", "-I", "-p", "tcp", "-s", str(node_address),
                    "-d", str(pod_address), "--sport", "40000", "--dport", "80", "--state", "ESTABLISHED",
                    "-t", "86400", "-u", "ASSURED"], check=True, capture_output=True)
    return ConntrackTool(netns=netns)


def _event_path(
    ctx: Context, enforcer: Any, netns: str, identity_mark: int | None
) -> tuple[Step, Callable[..., object], str]:
    """What happens between an event and the kernel, as the agent runs it: the watch event's
    write into the agent's store, the store's snapshot, and one ``NodeSync`` (incremental
    compile of the node's ruleset delta, enforcer transaction against its last commit) built
    as the agent builds it (``NodeSync.for_agent`` of an ``AgentConfig`` with the defaults,
    the agent pod's name and namespace, and the caller's peer layout), timed to the end of
    that transaction; what the sync does after it (revocation of one tracked flow, as on a
    node with traffic, and freeing what the change replaced) is reported as its own stage.
    The kernel is read back in full only by the periodic read-back (``max_interval``, 60 s
    by default), not on every event. Returns the step, the read-back and the description."""
    from policyctl.agent.config import AgentConfig
    from policyctl.agent.sync import NodeSync
    from policyctl.bench.events import add_agent_pod, fill, store_writes
    from policyctl.kubeapi.store import ClusterStore

    store = ClusterStore()
    fill(store, ctx.cluster)
    own = add_agent_pod(store, ctx.cluster, ctx.node)
    clock = enforcer.backend = _CommitClock(enforcer.backend)
    conntrack = _tracked_flow(ctx, netns)
    config = AgentConfig(node=ctx.node, table=enforcer.table, pod_name=own.name, pod_namespace=own.namespace,
                         identity_mark=identity_mark)
    sync = NodeSync.for_agent(store, config, enforcer, conntrack=conntrack)
    last: list[Cluster] = [ctx.cluster]

    def agent_step(cluster: Cluster) -> tuple[dict[str, float], bool]:
        writes = store_writes(last[0], cluster)
        last[0] = cluster
        started = time.perf_counter()
        for write in writes:
            write(store)
        stored = time.perf_counter()
        clock.committed = None
        report = sync()
        done = time.perf_counter()
        kernel = clock.committed if clock.committed is not None else done
        split = {"store": stored - started, "to kernel": kernel - stored, "after kernel": done - kernel}
        split.update((f"sync {stage}", seconds) for stage, seconds in report.stages)
        return split, report.compiled

    revocation = ("revocation judging one tracked flow" if conntrack is not None
                  else "no revocation (no conntrack-tools or no IPv4 flow to track)")
    return agent_step, sync.verify, (
        "watch event written to the agent's store (which holds the agent's own hostNetwork pod, required in every "
        f"snapshot as deployed), then its NodeSync (the agent's defaults: {config.mode} mode, new-pod window "
        f"{config.new_pod_window}) to the end of its transaction: store snapshot, "
        "incremental compile of the node's ruleset delta, one enforcer transaction against its last commit (an "
        "nfnetlink batch of its own when the encoders of enforcer.batches encode every command, else "
        "libnftables JSON); after "
        f"the kernel: {revocation}, a second transaction when rule comments alone changed (they rename a "
        "rule's sources and decide no packet), freeing what the change replaced")


# -- data plane ---------------------------------------------------------------------------


def section_dataplane(ctx: Context) -> list[Figure]:
    names = ("dataplane.throughput", "dataplane.connection_rate",
             "dataplane.throughput_vs_linear", "dataplane.connection_rate_vs_linear")
    reason = kernel_unavailable()
    if reason:
        return [unavailable(n, "ratio", reason) for n in names]
    from policyctl.bench.dataplane import PairLab, pick_pair

    client, server = pick_pair(ctx.cluster)
    graph = ctx.graph
    pair_nodes = sorted({n for n in (client.node, server.node) if n})
    compiled = {n: to_document(default_compile(ctx.cluster, n, graph)) for n in pair_nodes}
    linear = {n: linear_baseline(ctx.cluster, n, graph) for n in pair_nodes}
    configs: dict[str, dict[str, Any]] = {"none": {}, "compiled": compiled, "linear": linear}
    rates: dict[str, list[float]] = {k: [] for k in configs}
    bulk: dict[str, list[float]] = {k: [] for k in configs}
    seconds = ctx.effort.dataplane_seconds
    with PairLab(ctx.cluster, client, server) as lab:
        for _ in range(ctx.effort.dataplane_rounds):
            for name, documents in configs.items():
                lab.load(documents)
                bulk[name].append(lab.throughput(seconds=seconds))
                rates[name].append(lab.connection_rate(seconds=seconds))
    tp = {k: median(v) for k, v in bulk.items()}
    cr = {k: median(v) for k, v in rates.items()}
    where = (f"{client.key} ({client.node}) -> {server.key} ({server.node}) TCP 5432; "
             f"{ctx.effort.dataplane_rounds} rounds of {seconds}s, median; linear list: "
             f"{sum(rule_count(d) for d in linear.values())} rules on the two nodes")
    gbit = 8 / 1e9
    return [
        Figure("dataplane.throughput", "Gbit/s", tp["compiled"] * gbit, baseline=tp["none"] * gbit,
               baseline_name="same path, no ruleset", target=Target(0.95, below=False, on_ratio=True), detail=where),
        Figure("dataplane.connection_rate", "conn/s", cr["compiled"], baseline=cr["none"],
               baseline_name="same path, no ruleset", target=Target(0.90, below=False, on_ratio=True), detail=where),
        Figure("dataplane.throughput_vs_linear", "Gbit/s", tp["compiled"] * gbit, baseline=tp["linear"] * gbit,
               baseline_name="same path, same policies as a linear rule list", detail=where),
        Figure("dataplane.connection_rate_vs_linear", "conn/s", cr["compiled"], baseline=cr["linear"],
               baseline_name="same path, same policies as a linear rule list", detail=where),
    ]


# -- verifier and NCA ---------------------------------------------------------------------


def _verifier() -> tuple[Callable[[Cluster], Any] | None, str]:
    if importlib.util.find_spec("policyctl.verifier.relation") is None:
        return None, "policyctl.verifier.relation does not exist yet"
    module = importlib.import_module("policyctl.verifier.relation")
    fn = getattr(module, "connectivity", None)
    if fn is None:
        return None, "policyctl.verifier.relation has no connectivity()"
    return fn, ""


def _all_pairs(connectivity: Callable[[Cluster], Any], cluster: Cluster) -> Any:
    """The whole relation, forced: a lazy relation is materialised, as NCA's output is."""
    relation = connectivity(cluster)
    materialise = getattr(relation, "materialise", None)
    return materialise() if callable(materialise) else relation


def _semantic_diff() -> tuple[Callable[[Cluster, Cluster], Any] | None, str]:
    for name in ("policyctl.verifier.semdiff", "policyctl.verifier.diff", "policyctl.verifier.relation"):
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        for attr in ("semantic_diff", "diff", "compare"):
            fn = getattr(module, attr, None)
            if callable(fn):
                return fn, ""
    return None, "the verifier has no semantic diff yet (looked for semantic_diff/diff/compare)"


def nca_command() -> str | None:
    """NCA's command: ``$POLICYCTL_BENCH_NCA``, else ``nca`` beside this interpreter or on
    the PATH. NCA pins its own networkx and PyYAML, so it is best kept in a venv of its own
    and named here."""
    explicit = os.environ.get(NCA_ENV)
    if explicit:
        return explicit if Path(explicit).exists() else None
    for beside in (Path(sys.executable).with_name("nca"), REPO / ".venv" / "nca" / "bin" / "nca"):
        if beside.exists():
            return str(beside)
    return shutil.which("nca")


def nca_input(cluster: Cluster, manifests: Sequence[dict[str, Any]], directory: Path) -> list[str]:
    """Write NCA's input (pods as a PodList, namespaces as a NamespaceList, policies in a
    directory) and return its command line."""
    directory.mkdir(parents=True, exist_ok=True)
    policies = directory / "policies"
    policies.mkdir(exist_ok=True)
    pods = [m for m in manifests if m["kind"] == "Pod"]
    namespaces = [m for m in manifests if m["kind"] == "Namespace"]
    (directory / "pods.json").write_text(json.dumps({"apiVersion": "v1", "kind": "PodList", "items": pods}))
    (directory / "namespaces.json").write_text(
        json.dumps({"apiVersion": "v1", "kind": "NamespaceList", "items": namespaces})
    )
    (policies / "policies.json").write_text(json.dumps({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicyList",
        "items": [m for m in manifests if m["kind"] == "NetworkPolicy"]}))
    return [nca_command() or "nca", "--connectivity", str(policies), "-p", str(directory / "pods.json"),
            "-n", str(directory / "namespaces.json"), "-o", "txt_no_fw_rules"]


def _nca_for(ctx: Context, manifests: Sequence[dict[str, Any]], directory: Path) -> tuple[list[str] | None, str]:
    """NCA's command line on the suite's input, or why it is not run."""
    if nca_command() is None:
        return None, f"network-config-analyzer (nca) is not installed (or set ${NCA_ENV})"
    if len(ctx.cluster.pods) >= NCA_MAX_PODS:
        return None, (f"nca is compared below {NCA_MAX_PODS} pods: it refuses more, and at exactly "
                      f"{NCA_MAX_PODS} it exits 7 with an empty error (bench/README.md)")
    if ctx.effort.nca_timeout <= 0:
        return None, "nca not run at this scale"
    return nca_input(ctx.cluster, manifests, directory), ""


def _removed_policy(manifests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The manifests without one NetworkPolicy (the first ``allow-*``): the NEW side of a diff."""
    policies = [m for m in manifests if m["kind"] == "NetworkPolicy"]
    chosen = next(
        (m for m in policies if m["metadata"]["name"].startswith("allow-")), policies[0] if policies else None
    )
    return [m for m in manifests if m is not chosen]


def section_whole_commands(ctx: Context, manifests: Sequence[dict[str, Any]]) -> list[Figure]:
    from policyctl.verifier.lint import RULES

    changed = write_manifests(_removed_policy(manifests), ctx.workdir / "manifests-changed")
    nca_argv, nca_note = _nca_for(ctx, manifests, ctx.workdir / "nca-commands")
    return section_commands(
        manifests=manifests, directory=ctx.manifests, changed=changed, workdir=ctx.workdir,
        pods=len(ctx.cluster.pods), nca_argv=nca_argv, nca_note=nca_note,
        timeout=ctx.effort.command_timeout,
        skip_codes=sorted(RULES), memory_limit_mb=ctx.effort.command_memory_mb,
    )


def section_verifier(ctx: Context, manifests: Sequence[dict[str, Any]]) -> list[Figure]:
    figures: list[Figure] = []
    connectivity, reason = _verifier()
    ours: float | None = None
    if connectivity is None:
        figures.append(unavailable("verifier.all_pairs", "s", reason, target=Target(5.0)))
    else:
        ours, _ = timed(lambda: _all_pairs(connectivity, ctx.cluster))
    nca_seconds: float | None = None
    nca_note = ""
    if nca_command() is None:
        nca_note = f"network-config-analyzer (nca) is not installed (or set ${NCA_ENV})"
    elif len(ctx.cluster.pods) > NCA_MAX_PODS:
        nca_note = f"nca refuses more than {NCA_MAX_PODS} pods; run the suite at --scale full for the comparison"
    elif ctx.effort.nca_timeout <= 0:
        nca_note = "nca not run at this scale"
    else:
        argv = nca_input(ctx.cluster, manifests, ctx.workdir / "nca")
        try:
            nca_seconds, done = timed(
                lambda: subprocess.run(argv, capture_output=True, text=True, timeout=ctx.effort.nca_timeout)
            )
            if done.returncode not in (0,):
                nca_note = f"nca exited {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}"
                nca_seconds = None
        except subprocess.TimeoutExpired:
            limit = f"{ctx.effort.nca_timeout:.0f}"
            nca_note = f"nca did not finish within {limit}s (the ratio is at most ours/{limit})"
    if ours is not None:
        figures.append(
            Figure(
                "verifier.all_pairs",
                "s",
                ours,
                baseline=nca_seconds,
                baseline_name="network-config-analyzer --connectivity on the same input" if nca_seconds else "",
                target=Target(5.0),
                detail=nca_note or f"{len(ctx.cluster.pods)} pods, all ports",
            )
        )
        if nca_seconds is not None:
            figures.append(Figure("verifier.speedup_vs_nca", "x", nca_seconds / ours if ours else None,
                                  target=Target(10.0, below=False), detail="nca seconds / verifier seconds"))
        else:
            figures.append(unavailable("verifier.speedup_vs_nca", "x", nca_note, target=Target(10.0, below=False)))
    else:
        figures.append(unavailable("verifier.speedup_vs_nca", "x", reason, target=Target(10.0, below=False)))
    diff, reason = _semantic_diff()
    if diff is None:
        figures.append(unavailable("verifier.semantic_diff", "s", reason))
    else:
        from policyctl.bench.events import policy_add

        changed = policy_add(ctx.cluster, ctx.node, random.Random(ctx.shape.seed))
        seconds, _ = timed(lambda: diff(ctx.cluster, changed))
        figures.append(Figure("verifier.semantic_diff", "s", seconds, baseline=ours,
                              baseline_name="all-pairs connectivity", detail="one policy added"))
    return figures


# -- agent --------------------------------------------------------------------------------

_AGENT_CHILD = """
import gc, json, sys
from pathlib import Path
import policyctl.agent.main
from policyctl.kubeapi.projections import project
from policyctl.kubeapi.resources import RESOURCES, Resource
from policyctl.kubeapi.store import ClusterStore
def rss():
    gc.collect()
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def fill(store, source):
    files = sorted(source.glob("*.json")) if source.is_dir() else [source]
    listings = {r: [] for r in Resource}
    kinds = {info.kind: r for r, info in RESOURCES.items()}
    for path in files:
        for item in json.loads(path.read_text())["items"]:
            if item.get("kind") in kinds:
                listings[kinds[item["kind"]]].append(item)
    for resource in Resource:
        raws = listings.pop(resource)
        store.replace(resource, [p for p, _ in (project(resource, raw) for raw in raws) if p is not None])
        del raws
mode = sys.argv[3]
if mode != "imports":
    store = ClusterStore()
    fill(store, Path(sys.argv[1]))
    store.snapshot()
if mode == "agent":
    from policyctl.agent.config import AgentConfig
    from policyctl.agent.sync import NodeSync
    from policyctl.enforcer.apply import Enforcer
    from policyctl.enforcer.backend import LibnftablesBackend
    config = AgentConfig(node=sys.argv[2], table="pcbench")
    enforcer = Enforcer(LibnftablesBackend(netns=sys.argv[4]), table=config.table)
    sync = NodeSync.for_agent(store, config, enforcer)
    sync()
    print(f"identity mark {'none' if config.mark is None else hex(config.mark.mask)}")
print(rss())
"""


def section_agent(ctx: Context) -> list[Figure]:
    """The agent's resident memory after its initial sync, measured as the agent runs: a child
    process imports what ``policyctl.agent.main`` imports (the official client included),
    projects the generated objects (plain JSON, as a list response decodes; not the manifest
    loader, which the agent never uses) into a ``ClusterStore``, drops the raw objects, and
    runs one ``NodeSync`` with the agent's defaults (``AgentConfig``: its ruleset mode, new-pod
    window and peer layout) over ``store.snapshot()`` into a throwaway namespace. The baseline
    is the same child with the store filled and no sync (what any reader of the cluster must
    hold); the detail adds a bare interpreter with the agent's imports only."""
    if importlib.util.find_spec("policyctl.agent.sync") is None or not hasattr(
        importlib.import_module("policyctl.agent.sync"), "NodeSync"
    ):
        return [
            unavailable("agent.rss", "MB", "policyctl.agent.sync.NodeSync does not exist yet", target=Target(200.0))
        ]
    reason = kernel_unavailable()
    if reason:
        return [unavailable("agent.rss", "MB", reason, target=Target(200.0))]

    def child(mode: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", _AGENT_CHILD, str(ctx.manifests), ctx.node, mode, *extra],
                              capture_output=True, text=True)

    with throwaway_netns() as ns:
        agent = child("agent", ns)
    store, imports = child("store"), child("imports")
    failed = next((p for p in (agent, store, imports) if p.returncode != 0), None)
    if failed is not None:
        detail = failed.stderr.strip()[-400:]
        return [unavailable("agent.rss", "MB", f"the agent's initial sync failed: {detail}", target=Target(200.0))]
    agent_mb, store_mb, imports_mb = (int(p.stdout.split()[-1]) / 1024 for p in (agent, store, imports))
    layout = next(line for line in agent.stdout.splitlines() if line.startswith("identity mark"))
    return [Figure("agent.rss", "MB", agent_mb, baseline=store_mb,
                   baseline_name="the same process with the store filled, without the first sync", target=Target(200.0),
                   detail=f"VmRSS after NodeSync's first sync of {ctx.node} with the agent's defaults ({layout}), "
                          f"the store filled through the reflectors' projections; the agent's imports alone: "
                          f"{imports_mb:.1f} MB")]


# -- probe case ---------------------------------------------------------------------------


def section_probe(ctx: Context) -> list[Figure]:
    from policyctl.probecases.cases import load_probe_case
    from policyctl.probecases.runner import ModelEngine, run_case

    reason = kernel_unavailable()
    if reason:
        return [unavailable("probe.lab_case", "s", reason)]
    from policyctl.lab.engine import LabEngine

    case = load_probe_case(str(PROBE_CASE))
    steps = tuple(
        dataclasses.replace(s, probes=tuple(p for p in s.probes if not p.probe.via_service)) for s in case.steps
    )
    case = dataclasses.replace(case, steps=steps)
    model_seconds, _ = timed(lambda: run_case(case, ModelEngine()))
    lab_seconds, result = timed(lambda: run_case(case, LabEngine()))
    mismatches = sum(len(o.mismatches) for step in result.steps for o in step)
    return [
        Figure(
            "probe.lab_case",
            "s",
            lab_seconds,
            baseline=model_seconds,
            baseline_name="the same case on the model engine",
            detail=f"{PROBE_CASE.name}, via: pod probes, 9 pods; {mismatches} mismatches",
        )
    ]


# -- driver -------------------------------------------------------------------------------

SECTIONS = ("commands", "compile", "apply", "dataplane", "verifier", "agent", "probe")
#: Every figure each section reports, so a section that fails still lists what it lost.
SECTION_FIGURES: dict[str, tuple[str, ...]] = {
    "commands": COMMAND_FIGURES,
    "compile": (
        "compile.graph",
        "compile.node",
        "compile.all_nodes",
        "compile.render_json",
        "compile.elements_per_node",
    ),
    "apply": ("apply.full", *EVENT_FIGURES),
    "dataplane": (
        "dataplane.throughput",
        "dataplane.connection_rate",
        "dataplane.throughput_vs_linear",
        "dataplane.connection_rate_vs_linear",
    ),
    "verifier": ("verifier.all_pairs", "verifier.speedup_vs_nca", "verifier.semantic_diff"),
    "agent": ("agent.rss",),
    "probe": ("probe.lab_case",),
}


def write_manifests(manifests: Sequence[dict[str, Any]], directory: Path, *, per_file: int = 2000) -> Path:
    """The manifests as a directory of JSON ``List`` files of ``per_file`` objects, as a
    repository of manifests would hold them (one file per object would be slower to read; one
    file for 100k pods exceeds the reader's limit on nodes per file)."""
    directory.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(manifests), per_file):
        chunk = list(manifests[start:start + per_file])
        (directory / f"part-{start // per_file:04d}.json").write_text(
            json.dumps({"apiVersion": "v1", "kind": "List", "items": chunk}, indent=1))
    return directory


def run(
    scale: str,
    *,
    sections: Sequence[str] = SECTIONS,
    seed: int | None = None,
    shape: ClusterShape | None = None,
    nca_timeout: float | None = None,
) -> dict[str, Any]:
    shape = shape or SCALES[scale]
    if seed is not None:
        shape = dataclasses.replace(shape, seed=seed)
    effort = EFFORT.get(scale, EFFORT["small"])
    if nca_timeout is not None:
        effort = dataclasses.replace(effort, nca_timeout=nca_timeout)
    from policyctl.manifests.loader import load

    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="policyctl-bench-") as tmp:
        workdir = Path(tmp)
        gen_seconds, manifests = timed(lambda: generate(shape))
        path = write_manifests(manifests, workdir / "manifests")
        load_seconds, loaded = timed(lambda: load([str(path)]))
        errors = [str(d) for d in loaded.diagnostics if d.severity is Severity.ERROR]
        if errors:
            raise RuntimeError(f"the generated manifests do not load: {errors[:3]}")
        figures.append(Figure("input.generate", "s", gen_seconds, detail=f"{len(manifests)} objects"))
        figures.append(
            Figure("input.load", "s", load_seconds, detail="policyctl's loader on the generated manifests (JSON)")
        )
        cluster = loaded.cluster
        graph = PolicyGraph(cluster)
        ctx = Context(shape, effort, workdir, path, cluster, graph, busiest_node(cluster))
        gc.collect()
        steps: list[tuple[str, Callable[[], list[Figure]]]] = [
            ("commands", lambda: section_whole_commands(ctx, manifests)),
            ("compile", lambda: section_compile(ctx)),
            ("apply", lambda: section_apply_and_events(ctx)),
            ("dataplane", lambda: section_dataplane(ctx)),
            ("verifier", lambda: section_verifier(ctx, manifests)),
            ("agent", lambda: section_agent(ctx)),
            ("probe", lambda: section_probe(ctx)),
        ]
        for name, step in steps:
            if name not in sections:
                continue
            if name == "apply" and not ctx.documents:
                figures.extend(section_compile(ctx))
            _log(f"{name} ...")
            started = time.perf_counter()
            try:
                figures.extend(step())
            except Exception as error:  # a broken section must not hide the others' figures
                reason = f"{name} failed: {type(error).__name__}: {str(error).strip()[:400]}"
                _log(reason)
                figures.extend(unavailable(n, "", reason) for n in SECTION_FIGURES[name])
            _log(f"{name} done in {time.perf_counter() - started:.1f}s")
    return {
        "schema_version": SCHEMA_VERSION,
        "scale": scale,
        "shape": dataclasses.asdict(shape),
        "cluster": {
            "pods": len(cluster.pods),
            "namespaces": len(cluster.namespaces),
            "nodes": len(cluster.nodes),
            "policies": len(cluster.policies),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "kernel": os.uname().release,
            "load_average_1m": round(os.getloadavg()[0], 2),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        },
        "figures": {f.name: f.to_json() for f in sorted(figures, key=lambda f: f.name)},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="tiny")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only these sections (repeatable)")
    parser.add_argument(
        "--nca-timeout", type=float, help="seconds NCA may take before its figure is reported as a lower bound"
    )
    parser.add_argument(
        "--pods", type=int, help="override the scale's pod count (namespaces, nodes and policies scale with it)"
    )
    args = parser.parse_args(argv)
    shape = None
    if args.pods:
        base = SCALES[args.scale]
        factor = args.pods / base.pods
        shape = dataclasses.replace(base, pods=args.pods, namespaces=max(3, round(base.namespaces * factor)),
                                    nodes=max(1, round(base.nodes * factor)), policies=round(base.policies * factor))
    report = run(args.scale, sections=args.only or SECTIONS, seed=args.seed, shape=shape, nca_timeout=args.nca_timeout)
    json.dump(report, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
