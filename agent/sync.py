"""One sync of the node agent: cluster snapshot -> this node's ruleset -> the kernel.

Each sync reads the whole current snapshot (never a queue of events: a sync that sees the
latest state cannot apply a stale one), then

1. advances the node's :class:`~policyctl.compiler.incremental.NodeCompiler` to it. The
   compiler compares the snapshot with the previous one and returns the
   :class:`~policyctl.compiler.delta.RulesetDelta` of the node's ruleset, at a cost that
   follows the change, not the cluster: an event about pods and policies this node does not
   enforce gives an empty delta, and nothing is sent;
2. hands the delta to the :class:`~policyctl.enforcer.apply.Enforcer`, the same one the lab
   and ``policyctl enforce`` use: it turns the delta into one atomic transaction against what
   it committed last. When it cannot trust that (its first apply, a failed transaction, or
   the table's kernel handle changed because someone deleted or re-created it) it applies
   the whole ruleset instead;
3. after a change, deletes the conntrack entries of local flows the new ruleset no longer
   allows (the ruleset accepts every packet of an established connection). If that fails it
   is retried on the next sync even when the ruleset is unchanged;
4. settles the enforcer: what the delta's transaction could leave out because it decides no
   packet (rule comments, and what no packet meets once the step is in force: element
   removals, removed identity chains, the tree rules of freed or retired numbers:
   ``NodeCompiler.split_unreachable``) goes in a second transaction.

Drift inside the table (a hand-edited rule) is found by a full read-back of the kernel,
:meth:`NodeSync.verify`, due ``resync_interval`` after the last one and run by the agent's
runner as idle work between syncs (:class:`~policyctl.agent.runner.IdleWork`): it renders the
whole ruleset, lists the table, compares and repairs, and gives way between those steps to
an event that is waiting. The event's delta never waits for a read-back, and never carries
one: a read-back costs what the table holds (0.1 s at 1k pods, 0.25 s at 10k, 2.5 s at 100k),
an event what it changes. A read-back overdue by a whole further interval no longer gives
way, so a steady stream of events cannot postpone it for ever. A ``resync_interval`` of 0
reads the kernel back inside every sync, as tests and ``policyctl enforce`` want.

A snapshot that lacks what the agent knows exists is refused (:class:`IncompleteView`) before
anything is compiled: this node's Node object (an agent always runs on a node the API server
knows) and, when the agent knows its own pod (``required_pod``, from the downward API), that
pod and its Namespace. Such a view is a cache that is empty or not yet filled, and the
ruleset compiled from it would take rules away. The previous ruleset stays, and the sync is
retried.

A sync that raises leaves the previous ruleset in force (the kernel takes transactions whole);
the runner retries it, and that next sync compiles from scratch and applies the whole ruleset
after a full read of the kernel, so a step that failed halfway never leaks into later deltas.
Metrics and logs are written here, where the facts are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from policyctl.agent.collector import freeze_survivors, paused
from policyctl.agent.config import AgentConfig
from policyctl.agent.isolation import Isolation, Selecting
from policyctl.agent.metrics import SYNC_STAGES, AgentMetrics
from policyctl.compiler.delta import RulesetDelta
from policyctl.compiler.droplog import delta_to_group, log_to_group
from policyctl.compiler.incremental import NodeCompiler
from policyctl.compiler.markedpeers import IdentityMark
from policyctl.compiler.newpods import NewPodWindow
from policyctl.compiler.render_json import to_document
from policyctl.compiler.ruleset import Mode
from policyctl.enforcer.apply import ApplyReport, Enforcer
from policyctl.enforcer.conntrack import ConntrackTable, FlowJudge, IPAddress, evaluator_judge, revoke, ruleset_judge
from policyctl.enforcer.stateevaluator import StateEvaluators
from policyctl.enforcer.tables import TableState
from policyctl.policy.model import Namespace, Node, Pod
from policyctl.policy.cluster import Cluster
from policyctl.policy.snapshots import Presence


def _never() -> bool:
    return False


class IncompleteView(Exception):
    """The cluster view lacks this node, or this agent's own pod or its namespace: nothing is
    applied."""


class Snapshots(Protocol):
    """Where the cluster comes from (the API caches, or a fixed cluster in tests)."""

    def snapshot(self) -> Cluster: ...


class RulesetApplier(Protocol):
    """What a sync needs of the enforcer (:class:`Enforcer` is the implementation)."""

    table: str

    def apply(
        self, desired: Mapping[str, Any], *, dry_run: bool = False, source: str = "<ruleset>", verify: bool = False
    ) -> ApplyReport: ...

    def apply_delta(
        self, delta: RulesetDelta, *, desired: Callable[[], Mapping[str, Any]], source: str = "<ruleset>",
        renames_later: bool = False, later: RulesetDelta | None = None,
    ) -> ApplyReport: ...

    def verify(
        self, desired: Callable[[], Mapping[str, Any]], *, source: str = "<ruleset>",
        interrupted: Callable[[], bool] = ...,
    ) -> ApplyReport | None: ...

    def settle(self) -> None:
        """Send what the last delta left for later (its comment-only chain changes and the
        removals left with ``later``) and tidy what the last commits left behind (called once
        the kernel has the change)."""
        ...

    @property
    def committed(self) -> TableState | None: ...


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one sync did. ``compiled`` is True when the node's ruleset changed (always on the
    first sync), False when the snapshot brought nothing this node enforces; ``changed`` when
    a transaction was sent. ``stages`` splits ``duration_seconds`` in the order they ran
    (:data:`SYNC_STAGES`): ``snapshot`` (the store's snapshot and the completeness check),
    ``compile`` (the compiler's step), ``plan`` (what makes the transaction of the step: the
    split of what can wait, the table-handle check, the plan and its encoding; on a whole
    apply the render, the read and the diff), ``kernel`` (the backend sending it, until the
    kernel answers) and ``after`` (isolation logs, revocation of flows, and the transaction
    of what was left for later). The ruleset is in force at the end of ``kernel``."""

    sync_id: int
    compiled: bool
    changed: bool
    transaction_id: str | None
    local_pods: int
    active_policies: int
    elements: int
    revoked: int
    duration_seconds: float
    stages: tuple[tuple[str, float], ...] = ()


def _name(named: Node | Namespace) -> str:
    return named.name


def _pod_key(pod: Pod) -> str:
    return pod.key


def local_addresses(local: tuple[Pod, ...]) -> frozenset[IPAddress]:
    return frozenset(ip for pod in local for ip in pod.ips)


class NodeSync:
    """Keeps ``node``'s table equal to the ruleset of the latest snapshot; call it to sync.

    ``resync_interval`` is how often the kernel is read back (:meth:`verify`; the agent
    passes its ``max_interval``); 0 reads it back inside every sync.

    Python's cyclic collector is held off while a sync runs (:mod:`~policyctl.agent.collector`:
    a collection would otherwise land between an event and the kernel); with
    ``freeze_after_first_sync`` (the agent sets it) what the first sync leaves alive is
    exempted from later collections."""

    def __init__(
        self,
        snapshots: Snapshots,
        *,
        node: str,
        enforcer: RulesetApplier,
        mode: Mode = Mode.ENFORCE,
        new_pods: NewPodWindow = NewPodWindow.ALLOW,
        identity_mark: IdentityMark | None = None,
        conntrack: ConntrackTable | None = None,
        metrics: AgentMetrics | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        resync_interval: float = 0.0,
        freeze_after_first_sync: bool = False,
        required_pod: str | None = None,
        log_group: int | None = None,
    ) -> None:
        self.snapshots = snapshots
        self.log_group = log_group
        """NFLOG group the ruleset's drop log goes to (``compiler.droplog``); None: the kernel log."""
        self.node = node
        self.enforcer = enforcer
        self.mode = mode
        self.new_pods = new_pods
        """What unknown addresses of the node's pod range meet (``compiler.newpods``)."""
        self.identity_mark = identity_mark
        """The mark bits of the marked peer layout (``compiler.markedpeers``), or None."""
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
        self.resync_interval = resync_interval
        self.freeze_after_first_sync = freeze_after_first_sync
        self.required_pod = required_pod
        self._node_present: Presence[Node] = Presence(node, _name)
        self._pod_present: Presence[Pod] | None = None
        self._namespace_present: Presence[Namespace] | None = None
        if required_pod is not None:
            self._pod_present = Presence(required_pod, _pod_key)
            self._namespace_present = Presence(required_pod.partition("/")[0], _name)
        self.compiler = NodeCompiler(node, table=enforcer.table, mode=mode, new_pods=new_pods,
                                     identity_mark=identity_mark)
        self._document: dict[str, Any] | None = None
        self._verified_at: float | None = None
        self._cluster: Cluster | None = None
        self._sizes: dict[str, int] = {}
        self.isolation = Isolation()
        self._revoke_pending = False
        self._evaluators = StateEvaluators()
        self.failing_since: float | None = None
        """When the syncs started failing (None after a success)."""
        self.last_error: str | None = None
        """The last failure's text, until a sync succeeds."""

    @classmethod
    def for_agent(
        cls,
        snapshots: Snapshots,
        config: AgentConfig,
        enforcer: RulesetApplier,
        *,
        conntrack: ConntrackTable | None = None,
        metrics: AgentMetrics | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> NodeSync:
        """The sync ``policyctl agent`` runs for ``config``: its node, ruleset mode, new-pod
        window, peer layout, read-back interval (``max_interval``), own pod, drop log group and
        ``keep_established`` (which drops ``conntrack``), with the collector frozen after the
        first sync. Everything that measures the agent (the bench's event path and memory, the
        update storm) builds its sync here, so it runs the agent's settings by construction and
        varies one only by saying so in the config."""
        return cls(
            snapshots,
            node=config.node,
            enforcer=enforcer,
            mode=config.ruleset_mode,
            new_pods=config.new_pods,
            identity_mark=config.mark,
            conntrack=None if config.keep_established else conntrack,
            metrics=metrics,
            logger=logger,
            clock=clock,
            resync_interval=config.max_interval,
            freeze_after_first_sync=True,
            required_pod=config.own_pod,
            log_group=config.log_group,
        )

    def __call__(self) -> SyncReport:
        self.syncs += 1
        sync_id = self.syncs
        started = self._clock()
        try:
            with paused():
                report = self._sync(sync_id, started)
        except Exception as error:
            self._failed(error, started, action="sync", sync_id=sync_id)
            raise
        self.last_report = report
        now = self._clock()
        self.last_success_at = now
        self.failing_since = None
        self.last_error = None
        if self.first_success_at is None:
            self.first_success_at = now
            if self.freeze_after_first_sync:
                freeze_survivors()
        if self.metrics is not None:
            self.metrics.syncs.labels(result="applied" if report.changed else "unchanged").inc()
            self.metrics.sync_duration.observe(report.duration_seconds)
            for stage, seconds in report.stages:
                self.metrics.sync_stages.labels(stage=stage).observe(seconds)
            self.metrics.last_success.set(self._wall_clock())
            self.metrics.local_pods.set(report.local_pods)
            self.metrics.active_policies.set(report.active_policies)
            self.metrics.set_elements.set(report.elements)
        return report

    @property
    def _source(self) -> str:
        return f"<compiled for {self.node}>"

    def verification_due(self) -> float:
        """When the next read-back of the kernel is due (on this sync's clock): never before
        a sync succeeded (that sync reads the kernel itself) nor with a ``resync_interval``
        of 0 (every sync does), else ``resync_interval`` after the last full read."""
        if self._cluster is None or self._verified_at is None or self.resync_interval <= 0:
            return float("inf")
        return self._verified_at + self.resync_interval

    def verify(self, interrupted: Callable[[], bool] = lambda: False) -> bool:
        """Read our table back from the kernel and repair it to the ruleset of the last
        applied snapshot; returns False when it gave way to ``interrupted()`` (then it is
        still due, and nothing was sent). Overdue by a whole ``resync_interval``, it no
        longer gives way.

        What it repairs to is the last applied ruleset, not the newest snapshot's: a waiting
        event is the next sync's, applied as its delta on top of the repaired table.
        A failure is a failed sync: the previous ruleset stays, the next sync starts over
        (a full apply after a full read), and the error is raised for the runner."""
        if self._cluster is None:
            return True
        started = self._clock()
        if self._verified_at is not None and started - self._verified_at >= 2 * self.resync_interval:
            interrupted = _never
        revoked = 0
        try:
            with paused():
                applied = self.enforcer.verify(lambda: self.document, source=self._source, interrupted=interrupted)
                if applied is not None and applied.changed:
                    revoked = self._revoke(self.compiler.local_pods, self.syncs)
        except Exception as error:
            self._failed(error, started, action="read-back")
            raise
        duration = self._clock() - started
        if applied is None:
            self._readback("deferred", duration)
            self.log.debug("kernel read-back deferred: a sync is waiting or the agent is stopping",
                           extra={"fields": {"duration_seconds": round(duration, 6)}})
            return False
        self._verified_at = self._clock()
        self._readback("repaired" if applied.changed else "clean", duration)
        if applied.changed:
            self.log.warning("kernel read-back found the table changed by someone else; repaired", extra={"fields": {
                "transaction_id": applied.transaction_id, "revoked_connections": revoked,
                "duration_seconds": round(duration, 6)}})
        else:
            self.log.debug("kernel read-back: the table is as applied",
                           extra={"fields": {"duration_seconds": round(duration, 6)}})
        return True

    def _readback(self, result: str, duration: float) -> None:
        if self.metrics is not None:
            self.metrics.readbacks.labels(result=result).inc()
            self.metrics.readback_duration.observe(duration)

    def _failed(self, error: Exception, started: float, *, action: str, sync_id: int | None = None) -> None:
        self.start_over()
        if self.failing_since is None:
            self.failing_since = started
        self.last_error = str(error)
        duration = self._clock() - started
        if self.metrics is not None:
            if action == "sync":
                self.metrics.syncs.labels(result="failed").inc()
                self.metrics.sync_duration.observe(duration)
            else:
                self._readback("failed", duration)
        fields: dict[str, object] = {"duration_seconds": round(duration, 6), "error": str(error)}
        if sync_id is not None:
            fields["sync_id"] = sync_id
        self.log.error(f"{action} failed; the previous ruleset stays in force", extra={"fields": fields})

    def start_over(self) -> None:
        """After a failed sync, compile the next one from scratch and apply it whole with a
        full read of the kernel: a step that failed halfway may have left the compiler ahead
        of the kernel, or its state half-updated, and neither may leak into later deltas."""
        self.compiler = NodeCompiler(self.node, table=self.enforcer.table, mode=self.mode, new_pods=self.new_pods,
                                     identity_mark=self.identity_mark)
        self._document = None
        self._cluster = None
        self._verified_at = None
        self._sizes = {}

    @property
    def applied_cluster(self) -> Cluster | None:
        """The snapshot the kernel's ruleset was last compiled from (None before a sync
        succeeded, or after a failure until the next one)."""
        return self._cluster

    @property
    def document(self) -> dict[str, Any]:
        """The node's whole ruleset as libnftables JSON, rendered only when something needs
        it whole (a full apply, a read-back, connection revocation)."""
        if self._document is None:
            self._document = to_document(log_to_group(self.compiler.ruleset, self.log_group))
        return self._document

    def _sync(self, sync_id: int, started: float) -> SyncReport:
        cluster = self.snapshots.snapshot()
        self._check_complete(cluster)
        snapshotted = self._clock()
        # The store hands out the same snapshot object while nothing changed.
        unchanged = cluster is self._cluster
        first = self._cluster is None
        delta = RulesetDelta() if unchanged else self.compiler.update(cluster)
        compiled = first or not delta.empty
        # The replaced document (and the compiler's replaced ruleset) are freed, and the
        # enforcer's patched sets settled, after the kernel has the change: at 10k pods freeing
        # a whole document takes 5-7 ms, and folding a 40k-element set's patches 1.5 ms.
        retired = self._document
        if compiled:
            self.compiles += 1
            self._document = None
            self._count(delta)
        if self.metrics is not None:
            self.metrics.compiles.labels(outcome="compiled" if compiled else "skipped").inc()
        compiled_at = self._clock()
        if self._verified_at is None or self.resync_interval <= 0:
            applied = self.enforcer.apply(self.document, source=self._source, verify=True)
            self._verified_at = self._clock()
        else:
            # Rule comments only name sources, and elements of local pods without a dispatch entry
            # are looked up by no packet: they follow in settle().
            now, later = self.compiler.split_unreachable(delta)
            applied = self.enforcer.apply_delta(delta_to_group(now, self.log_group), desired=lambda: self.document,
                                                source=self._source, renames_later=True, later=later)
        applied_at = self._clock()
        self._cluster = cluster
        local = self.compiler.local_pods
        selecting = self.compiler.selecting
        if compiled:
            self._log_isolation(selecting, sync_id)
        revoked = 0
        if (applied.changed and not applied.dry_run) or self._revoke_pending:
            revoked = self._revoke(local, sync_id)
        del retired
        self.compiler.release()
        self.enforcer.settle()
        finished = self._clock()
        report = SyncReport(
            sync_id=sync_id,
            compiled=compiled,
            changed=applied.changed,
            transaction_id=applied.transaction_id if applied.changed else None,
            local_pods=len(local),
            active_policies=self.isolation.active,
            elements=sum(self._sizes.values()),
            revoked=revoked,
            duration_seconds=finished - started,
            stages=tuple(zip(SYNC_STAGES, (
                snapshotted - started,
                compiled_at - snapshotted,
                applied_at - compiled_at - applied.kernel_seconds,
                applied.kernel_seconds,
                finished - applied_at,
            ), strict=True)),
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
                "stages_seconds": {name: round(seconds, 6) for name, seconds in report.stages},
            }},
        )
        return report

    def _check_complete(self, cluster: Cluster) -> None:
        """Looks each required object up through the snapshots' changes (``Presence``): a
        lookup in the snapshot's dicts would build them for every new snapshot, 60 ms for
        the agent's pod among 100,000."""
        def size() -> str:
            return f"{len(cluster.nodes)} nodes, {len(cluster.namespaces)} namespaces, {len(cluster.pods)} pods"

        if not self._node_present(cluster.nodes):
            raise IncompleteView(f"node {self.node} is not among the {len(cluster.nodes)} nodes of the cluster view "
                                 f"({size()}); nothing applied")  # fmt: skip
        if self._pod_present is None or self._namespace_present is None:
            return
        if not self._pod_present(cluster.pods):
            raise IncompleteView(f"this agent's pod {self.required_pod} is not in the cluster view ({size()}); "
                                 "nothing applied")  # fmt: skip
        if not self._namespace_present(cluster.namespaces):
            raise IncompleteView(f"this agent's namespace {self._namespace_present.key} is not in the cluster view "
                                 f"({size()}); nothing applied")  # fmt: skip

    def _revoke(self, local: tuple[Pod, ...], sync_id: int) -> int:
        if self.conntrack is None:
            return 0
        try:
            result = revoke(self.conntrack, self._judge(), local=local_addresses(local))
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

    def _judge(self) -> FlowJudge:
        """Flows are judged against what the enforcer committed, read in place; rendering the
        whole ruleset for it cost 60-70 ms at 10k pods after every change. A table the
        enforcer does not hold (a dry run, or an applier that keeps no state) is judged from
        its rendering."""
        committed = self.enforcer.committed
        if committed is None:
            return ruleset_judge(lambda: self.document)
        return evaluator_judge(lambda: self._evaluators.evaluator(committed))

    def _count(self, delta: RulesetDelta) -> None:
        """Keep the element count of every set and map from the deltas alone."""
        sizes = self._sizes
        for name in delta.removed:
            sizes.pop(name, None)
        sizes.update({s.name: len(s.elements) for s in delta.sets})
        sizes.update({m.name: len(m.elements) for m in delta.maps})
        for name, elements in (*delta.added_elements, *delta.added_entries):
            sizes[name] = sizes.get(name, 0) + len(elements)
        for name, elements in (*delta.removed_elements, *delta.removed_entries):
            sizes[name] = sizes.get(name, 0) - len(elements)

    def _log_isolation(self, selecting: Selecting, sync_id: int) -> None:
        appeared, gone = self.isolation.update(selecting)
        changes = [("policy now isolates pod", t) for t in appeared]
        changes += [("policy no longer isolates pod", t) for t in gone]
        for message, (pod, direction, policy) in sorted(changes, key=lambda c: (c[1][0], c[1][1].value, c[1][2], c[0])):
            self.log.info(message, extra={"fields": {
                "sync_id": sync_id, "pod": pod, "direction": direction.value.lower(), "policy": policy,
            }})


if TYPE_CHECKING:
    _conforms_enforcer: type[RulesetApplier] = Enforcer
