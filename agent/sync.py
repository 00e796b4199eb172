"""One sync of the node agent: cluster snapshot -> this node's ruleset -> the kernel.

Each sync reads the whole current snapshot (never a queue of events: a sync that sees the
latest state cannot apply a stale one), then

1. computes the node's :func:`~policyctl.agent.footprint.footprint` (incrementally, through
   :class:`~policyctl.agent.footprint.Footprints`: only the pods that changed since the last
   snapshot are matched against the cached peer selectors); when it equals the last one,
   the ruleset cannot have changed and compiling is skipped (a periodic resync, or an event
   about pods and policies this node does not enforce);
2. otherwise compiles with ``compile_node`` over :func:`relevant_cluster` (only the policies
   that select a local pod reach the selector graph);
3. hands the document to the :class:`~policyctl.enforcer.apply.Enforcer`, the same one the
   lab and ``policyctl enforce`` use: it sends only the difference, in one atomic
   transaction. Between full reads the enforcer diffs against what it committed last (a
   deleted or re-created table is still noticed, by its handle); a sync asks it to read the
   kernel back in full (``verify``) when the snapshot is the one already applied (the
   periodic resync) or ``resync_interval`` passed since the last full read, so drift inside
   the table (a hand-edited rule) is repaired by the very same step;
4. after a change, deletes the conntrack entries of local flows the new ruleset no longer
   allows (the ruleset accepts every packet of an established connection). If that fails it
   is retried on the next sync even when the ruleset is unchanged.

A sync that raises leaves the previous ruleset in force (the kernel takes transactions whole);
the runner retries it. Metrics and logs are written here, where the facts are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from policyctl.agent.footprint import Footprint, Footprints, relevant_cluster, selecting_local
from policyctl.agent.metrics import AgentMetrics
from policyctl.compiler.compile import compile_node, local_pods
from policyctl.compiler.render_json import to_document
from policyctl.compiler.ruleset import Mode
from policyctl.enforcer.apply import ApplyReport, Enforcer
from policyctl.enforcer.conntrack import ConntrackTable, IPAddress, revoke, ruleset_judge
from policyctl.policy.model import Cluster, Direction, Pod


class Snapshots(Protocol):
    """Where the cluster comes from (the API caches, or a fixed cluster in tests)."""

    def snapshot(self) -> Cluster: ...


class RulesetApplier(Protocol):
    """What a sync needs of the enforcer (:class:`Enforcer` is the implementation)."""

    table: str

    def apply(
        self, desired: Mapping[str, Any], *, dry_run: bool = False, source: str = "<ruleset>", verify: bool = False
    ) -> ApplyReport: ...


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one sync did. ``compiled`` is False when the footprint was unchanged;
    ``changed`` when a transaction was sent."""

    sync_id: int
    compiled: bool
    changed: bool
    transaction_id: str | None
    local_pods: int
    active_policies: int
    elements: int
    revoked: int
    duration_seconds: float


Isolation = frozenset[tuple[str, Direction, str]]


def isolation(cluster: Cluster, local: tuple[Pod, ...]) -> Isolation:
    """(local pod, direction, policy) for every policy that isolates a local pod in a
    direction: what the logs report when it changes."""
    return frozenset(
        (pod.key, direction, str(policy.ref))
        for policy in selecting_local(cluster, local)
        for pod in local
        if pod.namespace == policy.namespace and policy.pod_selector.matches(pod.labels)
        for direction in policy.policy_types
    )


def local_addresses(local: tuple[Pod, ...]) -> frozenset[IPAddress]:
    return frozenset(ip for pod in local for ip in pod.ips)


class NodeSync:
    """Keeps ``node``'s table equal to the ruleset of the latest snapshot; call it to sync.

    ``resync_interval`` bounds how long drift inside the table can go unseen while events
    keep coming (the agent passes its ``max_interval``); 0 reads the kernel back on every
    sync."""

    def __init__(
        self,
        snapshots: Snapshots,
        *,
        node: str,
        enforcer: RulesetApplier,
        mode: Mode = Mode.ENFORCE,
        conntrack: ConntrackTable | None = None,
        metrics: AgentMetrics | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        resync_interval: float = 0.0,
    ) -> None:
        self.snapshots = snapshots
        self.node = node
        self.enforcer = enforcer
        self.mode = mode
        self.conntrack = conntrack
        self.metrics = metrics
        self.log = logger or logging.getLogger("policyctl.agent.sync")
        self._clock = clock
        self._wall_clock = wall_clock
        self.syncs = 0
        self.compiles = 0
        self.last_report: SyncReport | None = None
        self.last_success_at: float | None = None
        self.first_success_at: float | None = None
        self.document: dict[str, Any] | None = None
        self.resync_interval = resync_interval
        self._footprints = Footprints(node)
        self._footprint: Footprint | None = None
        self._verified_at: float | None = None
        self._cluster: Cluster | None = None
        self._elements = 0
        self._isolation: Isolation = frozenset()
        self._revoke_pending = False

    def __call__(self) -> SyncReport:
        self.syncs += 1
        sync_id = self.syncs
        started = self._clock()
        try:
            report = self._sync(sync_id, started)
        except Exception as error:
            duration = self._clock() - started
            if self.metrics is not None:
                self.metrics.syncs.labels(result="failed").inc()
                self.metrics.sync_duration.observe(duration)
            self.log.error(
                "sync failed; the previous ruleset stays in force",
                extra={"fields": {"sync_id": sync_id, "duration_seconds": round(duration, 6), "error": str(error)}},
            )
            raise
        self.last_report = report
        now = self._clock()
        self.last_success_at = now
        if self.first_success_at is None:
            self.first_success_at = now
        if self.metrics is not None:
            self.metrics.syncs.labels(result="applied" if report.changed else "unchanged").inc()
            self.metrics.sync_duration.observe(report.duration_seconds)
            self.metrics.last_success.set(self._wall_clock())
            self.metrics.local_pods.set(report.local_pods)
            self.metrics.active_policies.set(report.active_policies)
            self.metrics.set_elements.set(report.elements)
        return report

    def _sync(self, sync_id: int, started: float) -> SyncReport:
        cluster = self.snapshots.snapshot()
        local = local_pods(cluster, self.node)
        # The store hands out the same snapshot object while nothing changed (a resync).
        resync = cluster is self._cluster
        current = self._footprint if resync else self._footprints(cluster)
        compiled = self.document is None or current != self._footprint
        if compiled:
            ruleset = compile_node(relevant_cluster(cluster, self.node), self.node, table=self.enforcer.table, mode=self.mode)
            document = to_document(ruleset)
            self.compiles += 1
            self._elements = ruleset.element_count
        else:
            document = self.document
            assert document is not None
        if self.metrics is not None:
            self.metrics.compiles.labels(outcome="compiled" if compiled else "skipped").inc()
        verify = (
            resync
            or self._verified_at is None
            or started - self._verified_at >= self.resync_interval
        )
        applied = self.enforcer.apply(document, source=f"<compiled for {self.node}>", verify=verify)
        if verify:
            self._verified_at = started
        self.document = document
        self._footprint = current
        self._cluster = cluster
        if compiled:
            self._log_isolation(cluster, local, sync_id)
        revoked = 0
        if (applied.changed and not applied.dry_run) or self._revoke_pending:
            revoked = self._revoke(document, local, sync_id)
        report = SyncReport(
            sync_id=sync_id,
            compiled=compiled,
            changed=applied.changed,
            transaction_id=applied.transaction_id if applied.changed else None,
            local_pods=len(local),
            active_policies=len(selecting_local(cluster, local)),
            elements=self._elements,
            revoked=revoked,
            duration_seconds=self._clock() - started,
        )
        level = logging.INFO if report.changed or report.revoked else logging.DEBUG
        self.log.log(
            level,
            "ruleset applied" if report.changed else "ruleset up to date",
            extra={"fields": {
                "sync_id": sync_id,
                "compiled": compiled,
                "transaction_id": report.transaction_id,
                "elements": report.elements,
                "local_pods": report.local_pods,
                "active_policies": report.active_policies,
                "revoked_connections": revoked,
                "duration_seconds": round(report.duration_seconds, 6),
            }},
        )
        return report

    def _revoke(self, document: dict[str, Any], local: tuple[Pod, ...], sync_id: int) -> int:
        if self.conntrack is None:
            return 0
        try:
            result = revoke(self.conntrack, ruleset_judge(document), local=local_addresses(local))
        except Exception as error:
            self._revoke_pending = True
            self.log.warning(
                "established connections were not re-checked; retrying on the next sync",
                extra={"fields": {"sync_id": sync_id, "error": str(error)}},
            )
            return 0
        self._revoke_pending = False
        for flow in result.revoked:
            self.log.info("connection cut: the ruleset no longer allows it",
                          extra={"fields": {"sync_id": sync_id, "flow": str(flow)}})
        return len(result.revoked)

    def _log_isolation(self, cluster: Cluster, local: tuple[Pod, ...], sync_id: int) -> None:
        now = isolation(cluster, local)
        changes = [("policy now isolates pod", t) for t in now - self._isolation]
        changes += [("policy no longer isolates pod", t) for t in self._isolation - now]
        for message, (pod, direction, policy) in sorted(changes, key=lambda c: (c[1][0], c[1][1].value, c[1][2], c[0])):
            self.log.info(message, extra={"fields": {
                "sync_id": sync_id, "pod": pod, "direction": direction.value.lower(), "policy": policy,
            }})
        self._isolation = now


if TYPE_CHECKING:
    _conforms_enforcer: type[RulesetApplier] = Enforcer
