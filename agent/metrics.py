"""The agent's Prometheus metrics: names, types and the one place they are updated.

Names follow the Prometheus conventions (``policyctl_`` prefix, base units, ``_total`` on
counters, ``_seconds`` on durations) and carry only low-cardinality labels: a sync ``result``,
a watched ``resource``, an object ``kind`` and a restart ``reason``, never a pod name. The one
policy label (on drops) is bounded by the policies in force, as the issue of "which policy drops
my packets" needs.

=============================================== ========= ==================================
name                                            type      meaning
=============================================== ========= ==================================
policyctl_sync_duration_seconds                 histogram one sync: snapshot, compile, apply
policyctl_sync_stage_seconds{stage}             histogram the part of a sync in each stage:
                                                          snapshot, compile, plan, kernel,
                                                          after (``SyncReport.stages``)
policyctl_syncs_total{result}                   counter   syncs by result: applied,
                                                          unchanged, failed
policyctl_compiles_total{outcome}               counter   compiled, or skipped because
                                                          nothing this node enforces changed
policyctl_last_successful_sync_timestamp_seconds gauge    Unix time of the last good sync
policyctl_local_pods                            gauge     pods this node enforces for
policyctl_active_local_policies                 gauge     policies selecting a local pod
policyctl_nft_set_elements                      gauge     elements in our sets and maps
policyctl_watch_restarts_total{resource,reason} counter   reflector relists/reconnects
policyctl_cache_synced{resource}                gauge     1 once the reflector has listed
policyctl_watch_stale_seconds{resource}         gauge     seconds the cache has been out of
                                                          sync with the API server (0: in
                                                          sync)
policyctl_objects{kind}                         gauge     objects in the cache, by kind (Pod,
                                                          ClusterNetworkPolicy, ...)
policyctl_resource_served{resource}             gauge     1 while the API server serves the
                                                          resource (0: its CRD is absent)
policyctl_thread_restarts_total{thread}         counter   threads restarted after dying
policyctl_http_rejected_connections_total{server} counter connections over the limit, closed
policyctl_build_info{version}                   gauge     always 1
policyctl_policy_programmed_seconds{kind}       histogram a policy change seen -> the sync that
                                                          put it in this node's kernel done
policyctl_dropped_packets_total{policy,         counter   logged drops (``--drop-log-group``)
direction,action}                                         by deciding policy (a cluster policy,
                                                          or the isolating NetworkPolicies
                                                          joined by ","; "none"), ingress or
                                                          egress, drop or audit
=============================================== ========= ==================================

The reflector figures are read from the reflectors at scrape time (:class:`ReflectorCollector`)
rather than pushed, so they can never disagree with the reflectors' own state.

Each agent has its own :class:`CollectorRegistry`: tests and several agents in one process
(the lab) never share counters. The client library's ``*_created`` series (a timestamp per
counter and histogram) are turned off: they double the series count and say nothing a
restart counter does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from policyctl import __version__
from policyctl.agent.httpserver import BoundedHTTPServer, Limits, Reply

#: Sync durations span a no-op resync (milliseconds) to a large first apply (seconds).
SYNC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: The stages of a sync, in the order they run (``agent.sync.SyncReport.stages``), as the
#: ``stage`` label of ``policyctl_sync_stage_seconds``.
SYNC_STAGES = ("snapshot", "compile", "plan", "kernel", "after")
#: An event's stages take tenths of a millisecond to a few milliseconds (bench/README.md).
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0)


@dataclass(frozen=True, slots=True)
class ReflectorState:
    """What the metrics need of one reflector: whether it has listed, its restarts by
    reason (``410``, ``timeout``, ``error``, ...), how long it has been out of sync, the
    ``kind`` and number of ``objects`` it holds, and whether the API server serves it."""

    resource: str
    synced: bool
    restarts: Mapping[str, int]
    stale_seconds: float = 0.0
    kind: str = ""
    objects: int = 0
    served: bool = True


class ReflectorCollector(Collector):
    """``policyctl_watch_restarts_total``, ``policyctl_cache_synced``,
    ``policyctl_watch_stale_seconds``, ``policyctl_objects`` and
    ``policyctl_resource_served``, read from the reflectors at scrape time through
    ``states``."""

    def __init__(self, states: Callable[[], Iterable[ReflectorState]]) -> None:
        self._states = states

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "policyctl_watch_restarts",
            "Times a watch was restarted (relist or reconnect), by resource and reason.",
            labels=["resource", "reason"],
        )
        synced = GaugeMetricFamily(
            "policyctl_cache_synced",
            "1 when the resource's cache has completed its initial list, else 0.",
            labels=["resource"],
        )
        stale = GaugeMetricFamily(
            "policyctl_watch_stale_seconds",
            "Seconds the resource's cache has been out of sync with the API server (0 while in sync).",
            labels=["resource"],
        )
        objects = GaugeMetricFamily(
            "policyctl_objects",
            "Objects of the kind in the agent's cache (0 for a kind the API server does not serve).",
            labels=["kind"],
        )
        served = GaugeMetricFamily(
            "policyctl_resource_served",
            "1 while the API server serves the resource, 0 while it does not (its CRD is not installed).",
            labels=["resource"],
        )
        for state in sorted(self._states(), key=lambda s: s.resource):
            if state.kind:
                objects.add_metric([state.kind], float(state.objects))
            served.add_metric([state.resource], 1.0 if state.served else 0.0)
            synced.add_metric([state.resource], 1.0 if state.synced else 0.0)
            stale.add_metric([state.resource], state.stale_seconds)
            for reason in sorted(state.restarts):
                restarts.add_metric([state.resource, reason], float(state.restarts[reason]))
        yield restarts
        yield synced
        yield stale
        yield objects
        yield served


class AgentMetrics:
    """The agent's metrics in their own registry."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        disable_created_metrics()
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sync_duration = Histogram(
            "policyctl_sync_duration_seconds",
            "Duration of one sync: snapshot, compile (unless skipped) and apply.",
            buckets=SYNC_BUCKETS,
            registry=r,
        )
        self.sync_stages = Histogram(
            "policyctl_sync_stage_seconds",
            "The part of each successful sync spent in one stage: snapshot, compile, plan (the transaction made and "
            "encoded), kernel (sent, until the kernel answers) and after (revocation, what was left for later).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.syncs = Counter(
            "policyctl_syncs", "Syncs by result: applied, unchanged or failed.", ["result"], registry=r
        )
        self.readbacks = Counter(
            "policyctl_kernel_readbacks",
            "Full read-backs of the table from the kernel between syncs, by result: clean, repaired (the table had "
            "been changed by someone else), deferred (gave way to a waiting sync) or failed.",
            ["result"],
            registry=r,
        )
        self.readback_duration = Histogram(
            "policyctl_kernel_readback_duration_seconds",
            "Duration of one read-back of the table (render, list, compare, repair), deferred ones included.",
            buckets=SYNC_BUCKETS,
            registry=r,
        )
        self.compiles = Counter(
            "policyctl_compiles",
            "Ruleset compilations, and syncs that skipped compiling because nothing this node enforces changed.",
            ["outcome"],
            registry=r,
        )
        self.last_success = Gauge(
            "policyctl_last_successful_sync_timestamp_seconds",
            "Unix time of the last sync that left the kernel equal to the desired ruleset.",
            registry=r,
        )
        self.local_pods = Gauge("policyctl_local_pods", "Pods on this node that policy is enforced for.", registry=r)
        self.active_policies = Gauge(
            "policyctl_active_local_policies", "NetworkPolicies that select at least one local pod.", registry=r
        )
        self.set_elements = Gauge(
            "policyctl_nft_set_elements", "Elements in the sets and maps of the applied ruleset.", registry=r
        )
        self.thread_restarts = Counter(
            "policyctl_thread_restarts", "Agent threads restarted after they died, by thread.", ["thread"], registry=r
        )
        self.http_rejected = Counter(
            "policyctl_http_rejected_connections",
            "Connections to the metrics or health server closed unserved because the server was at its limit.",
            ["server"],
            registry=r,
        )
        self.programmed = Histogram(
            "policyctl_policy_programmed_seconds",
            "Seconds from the agent seeing a policy change to the end of the sync that programmed it in this "
            "node's kernel, by policy kind.",
            ["kind"],
            buckets=SYNC_BUCKETS,
            registry=r,
        )
        self.dropped_packets = Counter(
            "policyctl_dropped_packets",
            "Denied packets logged to the drop log (rate-limited per logging rule), by deciding policy ((mid-stream) "
            "and (new pod) for those base-chain rules), direction and action (drop, or audit: logged and let through).",
            ["policy", "direction", "action"],
            registry=r,
        )
        self.build_info = Gauge(
            "policyctl_build_info", "Always 1; the version label says which build.", ["version"], registry=r
        )
        self.build_info.labels(version=__version__).set(1)
        for result in ("applied", "unchanged", "failed"):
            self.syncs.labels(result=result)
        for outcome in ("compiled", "skipped"):
            self.compiles.labels(outcome=outcome)
        for stage in SYNC_STAGES:
            self.sync_stages.labels(stage=stage)
        for server in ("metrics", "health"):
            self.http_rejected.labels(server=server)

    def watch(self, states: Callable[[], Iterable[ReflectorState]]) -> None:
        """Expose the reflectors' figures (call once, when the reflectors exist)."""
        self.registry.register(ReflectorCollector(states))

    def exposition(self) -> Reply:
        return Reply(200, CONTENT_TYPE_LATEST, generate_latest(self.registry))

    def serve(self, *, port: int, address: str = "127.0.0.1", limits: Limits = Limits()) -> BoundedHTTPServer:
        """Serve ``/metrics`` from a daemon thread on a bounded server
        (:mod:`agent.httpserver`); returns it (``close()`` stops it)."""
        return BoundedHTTPServer({"/metrics": self.exposition}, address=address, port=port, limits=limits,
                                 name="metrics", on_reject=self.http_rejected.labels(server="metrics").inc)  # fmt: skip
