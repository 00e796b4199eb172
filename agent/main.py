"""The node agent, wired: reflectors -> store -> bounded-frequency runner -> sync -> kernel.

With ``--drop-log-group`` one more thread reads the drop log (:mod:`~policyctl.agent.drops`)
and a third small server answers ``/drops``.

Threads: one per watched resource (its :class:`~policyctl.kubeapi.reflector.Reflector`), one
for the sync loop, both under a :class:`~policyctl.agent.supervisor.Supervisor` that restarts
them if they die (and makes liveness fail if they keep dying), and the two small bounded HTTP
servers (metrics, health). Reflectors only write the store and call
:meth:`BoundedFrequencyRunner.request`; the single sync thread is the only one that touches
nftables, so syncs never overlap.

What the kernel holds only ever comes from whole lists: a reflector replaces its resource in
the store only with a complete list it could read, so a failed, truncated or unreadable list
leaves the last good state (and the ruleset built from it) in place, and a sync refuses a
cluster view that lacks this node, or this agent's own pod or its namespace
(:class:`~policyctl.agent.sync.IncompleteView`): the shape an empty view takes.

The cluster-scoped policy kinds (ClusterNetworkPolicy, AdminNetworkPolicy,
BaselineAdminNetworkPolicy) are read while the API server serves them
(:class:`~policyctl.kubeapi.served.ServedReflector`, one shared
:class:`~policyctl.kubeapi.served.Discovery`): a CRD that is absent is no error (its kind holds
no objects, logged once), and one installed, upgraded or removed later is followed within the
discovery's ``max_age``.

Start-up order matters for correctness: the first sync waits until every reflector has listed
once. A ruleset compiled from a half-filled cache would drop allowed traffic (a peer pod not
yet listed is a peer that matches nothing). Until then the table keeps whatever it holds
(the previous agent's rules during a rolling update).

Shutdown (SIGTERM, SIGINT, :meth:`Agent.stop`) stops the threads and leaves the table alone:
the rules work without the agent, and a rolling update must not open a gap. Removing them is
explicit: :func:`cleanup` (``policyctl agent --cleanup``, run by deploy/uninstall).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

from policyctl.agent.config import AgentConfig
from policyctl.agent.drops import DropLog, DropMonitor, PacketSource
from policyctl.agent.programmed import PolicyKey, ProgrammedTracker, event_for
from policyctl.agent.health import HealthServer, HealthState, Verdict, liveness, readiness
from policyctl.agent.httpserver import BoundedHTTPServer
from policyctl.agent.logs import configure
from policyctl.agent.metrics import AgentMetrics, ReflectorState
from policyctl.agent.runner import BoundedFrequencyRunner, IdleWork
from policyctl.agent.supervisor import RestartBudget, Supervisor
from policyctl.agent.sync import NodeSync, RulesetApplier, SyncReport
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import NftBackend, default_backend
from policyctl.enforcer.conntrack import ConntrackTable, ConntrackTool
from policyctl.enforcer.errors import ConntrackError
from policyctl.enforcer.nflog import NflogReader
from policyctl.kubeapi.events import EventPublisher, create_or_patch
from policyctl.kubeapi.resources import RESOURCES, Resource
from policyctl.kubeapi.served import AnyReflector, Discovery, reflector_for
from policyctl.kubeapi.store import ChangeKind, ClusterStore
from policyctl.policy.cluster import Cluster

#: How often the loops wake while idle, so heartbeats stay fresh.
TICK = 1.0
#: The resources whose objects are policies: their changes are followed to the kernel.
POLICY_RESOURCES = frozenset({Resource.NETWORK_POLICIES, Resource.CLUSTER_NETWORK_POLICIES,
                              Resource.ADMIN_NETWORK_POLICIES, Resource.BASELINE_ADMIN_NETWORK_POLICIES})


class Agent:
    """One node's agent. ``api`` is an ``ApiClient`` of the official client; ``enforcer``
    applies rulesets (an :class:`Enforcer` on ``backend``, by default the host's nftables;
    :meth:`stop` closes the backend); ``reflector_options`` are passed to every reflector
    (tests shorten timeouts); ``discovery`` says which custom resources the server serves
    (default: asked every 30 seconds)."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        api: Any,
        enforcer: RulesetApplier | None = None,
        backend: NftBackend | None = None,
        conntrack: ConntrackTable | None = None,
        metrics: AgentMetrics | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        resources: Sequence[Resource] = tuple(Resource),
        reflector_options: Mapping[str, Any] | None = None,
        restart_budget: RestartBudget = RestartBudget(),
        discovery: Discovery | None = None,
        drop_source: Callable[..., PacketSource] | None = None,
    ) -> None:
        problems = config.validate()
        if problems:
            raise ValueError("; ".join(problems))
        self.config = config
        self.log = logger or logging.getLogger("policyctl.agent")
        self.metrics = metrics or AgentMetrics()
        self._clock = clock
        self.store = ClusterStore()
        if enforcer is None:
            backend = backend if backend is not None else default_backend()
            enforcer = Enforcer(backend, table=config.table)
        self._backend = backend
        self.sync = NodeSync.for_agent(self.store, config, enforcer, conntrack=conntrack, metrics=self.metrics,
                                       logger=self.log, clock=clock)
        self.programmed = ProgrammedTracker(config.node)
        self.events: EventPublisher | None = None
        if config.publish_events:
            self.events = EventPublisher(lambda event, count: create_or_patch(api, event, count=count),
                                         logger=self.log.getChild("events"))
        self.runner = BoundedFrequencyRunner(self._sync_and_record, config.intervals, clock=clock,
                                             idle_work=IdleWork(due=self.sync.verification_due, run=self.sync.verify))
        discovery = discovery if discovery is not None else Discovery(
            api, request_timeout=(10.0, config.read_timeout))
        self.reflectors: tuple[AnyReflector, ...] = tuple(
            reflector_for(
                resource,
                discovery=discovery,
                api=api,
                store=self.store,
                read_timeout=config.read_timeout,
                page_size=config.page_size,
                clock=clock,
                on_change=self._changed,
                **dict(reflector_options or {}),
            )
            for resource in resources
        )
        self.metrics.watch(self._reflector_states)
        self._stop = threading.Event()
        self.supervisor = Supervisor(self._stop, budget=restart_budget, logger=self.log,
                                     on_restart=lambda name: self.metrics.thread_restarts.labels(thread=name).inc())
        self._waiting_heartbeat: float | None = None
        self._loop_started = False
        self.health_server: HealthServer | None = None
        self.metrics_server: BoundedHTTPServer | None = None
        self.drops_server: BoundedHTTPServer | None = None
        self.drop_log = DropLog(config.drops_buffer)
        self.drop_monitor: DropMonitor | None = None
        if config.log_group is not None:
            group, netns, opener = config.log_group, config.netns, drop_source or NflogReader
            self.drop_monitor = DropMonitor(lambda: opener(group, netns=netns), self._enforced_cluster,
                                            log=self.drop_log, metrics=self.metrics, logger=self.log.getChild("drops"))

    def _enforced_cluster(self) -> Cluster:
        """What drops are explained on: the snapshot the kernel's ruleset was compiled from,
        else (before the first sync) the cache as it is."""
        applied = self.sync.applied_cluster
        return applied if applied is not None else self.store.snapshot()

    def _changed(self, resource: Resource, key: str, kind: ChangeKind) -> None:
        self.log.debug(
            "cache changed", extra={"fields": {"resource": resource.value, "object": key, "change": kind.value}}
        )
        if resource in POLICY_RESOURCES:
            policy = PolicyKey.of(RESOURCES[resource].kind, key)
            if kind is ChangeKind.DELETED:
                self.programmed.deleted(policy)
            else:
                self.programmed.changed(policy, self._clock())
        self.runner.request()

    def _sync_and_record(self) -> SyncReport:
        """One sync; when it succeeds, every policy change seen before it started is programmed
        on this node (``agent.programmed``): observed, logged, and published as an Event."""
        started = self._clock()
        report = self.sync()
        for done in self.programmed.synced(started, self._clock(), wall_clock=time.time()):
            self.metrics.programmed.labels(kind=done.policy.kind).observe(done.latency)
            self.log.debug("policy programmed", extra={"fields": {
                "policy": str(done.policy), "latency_seconds": round(done.latency, 6), "sync_id": report.sync_id}})
            if self.events is not None:
                self.events.publish(event_for(done))
        return report

    def _reflector_states(self) -> list[ReflectorState]:
        now = self._clock()
        return [ReflectorState(r.resource.value, r.synced, r.restarts, r.stale_seconds(now), RESOURCES[r.resource].kind,
                               self.store.count(r.resource), getattr(r, "served", True))
                for r in self.reflectors]

    def health_state(self) -> HealthState:
        now = self._clock()
        heartbeat = self.runner.heartbeat if self._loop_started else self._waiting_heartbeat
        failing_since = self.sync.failing_since
        return HealthState(
            synced={r.resource.value: r.synced for r in self.reflectors},
            first_sync_at=self.sync.first_success_at,
            heartbeat=heartbeat,
            last_attempt=self.runner.schedule.last_run,
            stale={r.resource.value: r.stale_seconds(now) for r in self.reflectors},
            errors={r.resource.value: r.last_error for r in self.reflectors if r.last_error},
            failing_for=0.0 if failing_since is None else max(0.0, now - failing_since),
            sync_error=self.sync.last_error,
            dead_threads=self.supervisor.dead(),
        )

    def readiness(self) -> Verdict:
        return readiness(self.health_state(), stale_after=self.config.stale_after)

    def liveness(self) -> Verdict:
        return liveness(
            self.health_state(),
            self._clock(),
            heartbeat_timeout=self.config.heartbeat_timeout,
            attempt_timeout=self.config.max_interval + self.config.attempt_grace,
        )

    def start(self) -> Agent:
        """Start serving health and metrics, the reflectors and the sync loop; returns at once."""
        c = self.config
        if c.health_port >= 0:
            self.health_server = HealthServer(live=self.liveness, ready=self.readiness, port=c.health_port,
                                              address=c.health_address, limits=c.http_limits,
                                              on_reject=self.metrics.http_rejected.labels(server="health").inc)
        if c.metrics_port >= 0:
            self.metrics_server = self.metrics.serve(port=c.metrics_port, address=c.metrics_address,
                                                     limits=c.http_limits)
        if self.events is not None:
            events = self.events
            self.supervisor.start("events", lambda: events.run(self._stop))
        if self.drop_monitor is not None:
            if c.drops_port >= 0:
                self.drops_server = BoundedHTTPServer({}, query_routes={"/drops": self.drop_log.route},
                                                      address=c.drops_address, port=c.drops_port,
                                                      limits=c.http_limits, name="drops",
                                                      on_reject=self.metrics.http_rejected.labels(server="drops").inc)
            monitor = self.drop_monitor
            self.supervisor.start("drops", lambda: monitor.run(self._stop))
        for reflector in self.reflectors:
            self.supervisor.start(f"reflector-{reflector.resource.value}", self._reflector_body(reflector),
                                  before_restart=self._reflector_reset(reflector))
        self.supervisor.start("sync", self._sync_loop, before_restart=self.sync.start_over)
        self.supervisor.start_own(tick=TICK)
        self.log.info("agent started", extra={"fields": {
            "table": c.table, "mode": c.mode, "min_interval": c.min_interval, "max_interval": c.max_interval,
            "new_pod_window": c.new_pod_window,
            "identity_mark": "none" if c.identity_mark is None else f"{c.identity_mark:#010x}",
            "health_port": self.health_server.port if self.health_server is not None else None,
            "metrics_port": self.metrics_server.port if self.metrics_server is not None else None,
            "drop_log_group": c.log_group,
            "drops_port": self.drops_server.port if self.drops_server is not None else None,
        }})
        return self

    def _reflector_body(self, reflector: AnyReflector) -> Callable[[], None]:
        """The thread body; ``reflector.run`` is looked up at each start."""
        return lambda: reflector.run(self._stop)

    def _reflector_reset(self, reflector: AnyReflector) -> Callable[[], None]:
        """Before a dead reflector's thread is started again: relist, and sync after it (the
        thread may have died between a store write and its sync request)."""

        def reset() -> None:
            reflector.forget_version()
            self.runner.request()

        return reset

    def _sync_loop(self) -> None:
        while not self._stop.is_set() and not all(r.synced for r in self.reflectors):
            self._waiting_heartbeat = self._clock()
            self._stop.wait(0.05)
        if self._stop.is_set():
            return
        self.log.info(
            "caches synced; first sync",
            extra={"fields": {"resources": sorted(r.resource.value for r in self.reflectors)}},
        )
        self._loop_started = True
        self.runner.loop(self._stop, tick=TICK)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.readiness().ok:
                return True
            time.sleep(0.02)
        return self.readiness().ok

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop every thread and server. The ruleset stays in the kernel."""
        self._stop.set()
        self.runner.wake()
        self.supervisor.join(timeout)
        if self.health_server is not None:
            self.health_server.close()
            self.health_server = None
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None
        if self.drops_server is not None:
            self.drops_server.close()
            self.drops_server = None
        close = getattr(self._backend, "close", None)
        if close is not None:
            close()
        self.log.info("agent stopped; the ruleset stays in force", extra={"fields": {"table": self.config.table}})


def cleanup(*, table: str = "policyctl", backend: NftBackend | None = None) -> bool:
    """Delete our table (every rule, set and chain policyctl owns) on this node; True if it
    was there. Only the uninstall path calls this, never shutdown."""
    return Enforcer(backend if backend is not None else default_backend(), table=table).cleanup()


def run(config: AgentConfig, *, kubeconfig: str | None = None, context: str | None = None) -> int:
    """``policyctl agent``: run until SIGTERM or SIGINT; exit status 0. Raises
    :class:`~policyctl.policy.diagnostics.PolicyctlError` for a configuration it cannot use."""
    from policyctl.kubeapi.config import connect

    logger = configure(node=config.node, level=config.log_level)
    client = connect(kubeconfig=kubeconfig, context=context)
    conntrack: ConntrackTable | None = None
    if not config.keep_established:
        try:
            conntrack = ConntrackTool(netns=config.netns)
        except ConntrackError as error:
            logger.warning("established connections will not be re-checked", extra={"fields": {"error": str(error)}})
    backend = default_backend(netns=config.netns)
    agent = Agent(config, api=client.api, backend=backend, conntrack=conntrack, logger=logger.getChild("agent"))
    stop = threading.Event()

    def on_signal(number: int, _frame: FrameType | None) -> None:
        logger.info("signal received; stopping", extra={"fields": {"signal": signal.Signals(number).name}})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.start()
    while not stop.wait(TICK):
        pass
    agent.stop()
    return 0
