"""One sync: the applied document is the node's compiled ruleset; events that cannot change
it skip the compiler; failures keep the previous ruleset and are retried; revoked flows are cut."""

from __future__ import annotations

import dataclasses
import ipaddress
import io
import json
import uuid
from typing import Any
from unittest import mock

import pytest

from policyctl.agent.config import AgentConfig
from policyctl.agent.logs import configure
from policyctl.agent.metrics import AgentMetrics
from policyctl.agent.sync import IncompleteView, NodeSync
from policyctl.compiler.compile import compile_node
from policyctl.compiler.render_json import to_document
from policyctl.enforcer.conntrack import Flow
from policyctl.enforcer.tables import read_table
from policyctl.kubeapi.projections import Projection
from policyctl.kubeapi.resources import Resource
from policyctl.kubeapi.store import ClusterStore
from policyctl.policy.model import Labels
from policyctl.policy.cluster import Cluster
from tests import builders as b
from tests.agent.clock import FakeClock
from tests.agent.fakes import FixedSnapshots, MemoryConntrack, RecordingEnforcer

WEB_FROM_CLIENTS = b.policy("x/web-from-clients", {"app": "web"}, ingress=[b.rule(b.pod_peer({"role": "client"}, {}))])


def base_cluster(*policies: object) -> Cluster:
    return b.cluster(
        b.namespace("x"),
        b.namespace("y"),
        b.node("node-1", "192.168.0.1"),
        b.node("node-2", "192.168.0.2"),
        b.pod("x/web", {"app": "web"}, node="node-1", ips=["10.0.1.10"]),
        b.pod("y/client", {"role": "client"}, node="node-2", ips=["10.0.2.10"]),
        b.pod("y/batch", {"role": "batch"}, node="node-2", ips=["10.0.2.11"]),
        *policies,  # type: ignore[arg-type]
    )


def relabel(cluster: Cluster, key: str, **labels: str) -> Cluster:
    return dataclasses.replace(
        cluster, pods=tuple(dataclasses.replace(p, labels=Labels(labels)) if p.key == key else p for p in cluster.pods)
    )


def make(cluster: Cluster, **kwargs: object) -> tuple[NodeSync, FixedSnapshots, RecordingEnforcer]:
    snapshots = FixedSnapshots(cluster)
    enforcer = RecordingEnforcer()
    return NodeSync(snapshots, node="node-1", enforcer=enforcer, **kwargs), snapshots, enforcer  # type: ignore[arg-type]


def expected(cluster: Cluster) -> dict[str, object]:
    return to_document(compile_node(cluster, "node-1"))


def test_the_applied_document_is_the_compiled_ruleset_of_the_node() -> None:
    cluster = base_cluster(WEB_FROM_CLIENTS)
    sync, _, enforcer = make(cluster)
    report = sync()
    assert enforcer.kernel == expected(cluster)
    assert (report.compiled, report.changed, report.local_pods, report.active_policies) == (True, True, 1, 1)
    assert report.elements == compile_node(cluster, "node-1").element_count


@pytest.mark.parametrize(
    ("change", "compiles"),
    [
        pytest.param(lambda c: c, False, id="periodic-resync"),
        pytest.param(lambda c: relabel(c, "y/batch", role="batch", version="2"), False, id="pod-outside-every-peer"),
        pytest.param(lambda c: b.with_policies(c, b.policy("y/other", {}, ingress=[b.rule()])), False,
                     id="policy-for-another-node"),
        pytest.param(lambda c: relabel(c, "y/batch", role="client"), True, id="pod-joins-a-peer"),
        pytest.param(lambda c: relabel(c, "y/client", role="gone"), True, id="pod-leaves-a-peer"),
        pytest.param(lambda c: dataclasses.replace(c, policies=()), True, id="local-policy-deleted"),
    ],
)
def test_only_changes_that_reach_the_node_recompile(change, compiles: bool) -> None:
    sync, snapshots, enforcer = make(base_cluster(WEB_FROM_CLIENTS))
    sync()
    snapshots.cluster = change(snapshots.cluster)
    report = sync()
    assert report.compiled is compiles
    assert sync.compiles == (2 if compiles else 1)
    assert enforcer.kernel == expected(snapshots.cluster)


def test_a_failed_apply_keeps_the_previous_ruleset_and_the_next_sync_catches_up() -> None:
    sync, snapshots, enforcer = make(base_cluster(WEB_FROM_CLIENTS))
    sync()
    before = enforcer.kernel
    snapshots.cluster = dataclasses.replace(snapshots.cluster, policies=())
    enforcer.fail_next = True
    with pytest.raises(RuntimeError):
        sync()
    assert enforcer.kernel == before
    report = sync()
    assert report.changed and enforcer.kernel == expected(snapshots.cluster)


def test_the_enforcer_settles_after_each_applied_sync_and_not_after_a_failed_one() -> None:
    sync, snapshots, enforcer = make(base_cluster(WEB_FROM_CLIENTS))
    sync()
    assert enforcer.settles == 1
    snapshots.cluster = dataclasses.replace(snapshots.cluster, policies=())
    enforcer.fail_next = True
    with pytest.raises(RuntimeError):
        sync()
    assert enforcer.settles == 1
    sync()
    assert enforcer.settles == 2


def test_connections_the_new_ruleset_denies_are_cut_and_allowed_ones_kept() -> None:
    client_to_web = Flow("tcp", ipaddress.ip_address("10.0.2.10"), ipaddress.ip_address("10.0.1.10"), 40000, 80)
    batch_to_web = Flow("tcp", ipaddress.ip_address("10.0.2.11"), ipaddress.ip_address("10.0.1.10"), 40001, 80)
    conntrack = MemoryConntrack(client_to_web, batch_to_web)
    sync, _, _ = make(base_cluster(WEB_FROM_CLIENTS), conntrack=conntrack)
    report = sync()
    assert report.revoked == 1
    assert conntrack.entries == [client_to_web]


def test_a_conntrack_failure_is_retried_on_the_next_sync_even_without_a_change() -> None:
    batch_to_web = Flow("tcp", ipaddress.ip_address("10.0.2.11"), ipaddress.ip_address("10.0.1.10"), 40001, 80)
    conntrack = MemoryConntrack(batch_to_web)
    conntrack.broken = True
    sync, _, _ = make(base_cluster(WEB_FROM_CLIENTS), conntrack=conntrack)
    assert sync().revoked == 0
    conntrack.broken = False
    report = sync()
    assert not report.changed and report.revoked == 1 and conntrack.entries == []


def test_logs_name_the_pod_policy_and_direction_when_isolation_changes() -> None:
    stream = io.StringIO()
    sync, snapshots, _ = make(
        base_cluster(WEB_FROM_CLIENTS),
        logger=configure(node="node-1", stream=stream, name=f"policyctl.test.{uuid.uuid4().hex}"),
    )
    sync()
    snapshots.cluster = dataclasses.replace(snapshots.cluster, policies=())
    sync()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    isolation = [
        (line["msg"], line["pod"], line["policy"], line["direction"], line["sync_id"])
        for line in lines
        if "pod" in line
    ]
    assert isolation == [
        ("policy now isolates pod", "x/web", "x/web-from-clients", "ingress", 1),
        ("policy no longer isolates pod", "x/web", "x/web-from-clients", "ingress", 2),
    ]


def test_metrics_follow_the_syncs() -> None:
    metrics = AgentMetrics()
    sync, snapshots, enforcer = make(base_cluster(WEB_FROM_CLIENTS), metrics=metrics, wall_clock=lambda: 1234.5)
    sync()
    sync()
    enforcer.fail_next = True
    with pytest.raises(RuntimeError):
        sync()
    value = metrics.registry.get_sample_value
    assert value("policyctl_syncs_total", {"result": "applied"}) == 1
    assert value("policyctl_syncs_total", {"result": "unchanged"}) == 1
    assert value("policyctl_syncs_total", {"result": "failed"}) == 1
    assert value("policyctl_compiles_total", {"outcome": "compiled"}) == 1
    assert value("policyctl_compiles_total", {"outcome": "skipped"}) == 2
    assert value("policyctl_sync_duration_seconds_count") == 3
    assert value("policyctl_last_successful_sync_timestamp_seconds") == 1234.5
    assert value("policyctl_local_pods") == 1
    assert value("policyctl_active_local_policies") == 1
    assert value("policyctl_nft_set_elements") == compile_node(snapshots.cluster, "node-1").element_count


def timed(cluster: Cluster, **kwargs: object) -> tuple[NodeSync, FixedSnapshots, RecordingEnforcer, FakeClock]:
    clock = FakeClock()
    sync, snapshots, enforcer = make(cluster, clock=clock, resync_interval=60.0, **kwargs)
    return sync, snapshots, enforcer, clock


def event(snapshots: FixedSnapshots, step: int) -> None:
    snapshots.cluster = relabel(snapshots.cluster, "y/client", role="client", step=str(step))


@pytest.mark.parametrize(
    ("elapsed", "kinds"),
    [
        pytest.param([0.0, 1.0], [True, False, False], id="events-right-after-the-first-read"),
        pytest.param([59.0, 30.0, 30.0], [True, False, False, False], id="events-after-the-interval-still-go-alone"),
    ],
)
def test_a_sync_reads_the_kernel_back_only_the_first_time(elapsed: list[float], kinds: list[bool]) -> None:
    """An event's sync is its delta alone, however long since the last read-back: the read-back
    is :meth:`NodeSync.verify`'s, run between syncs."""
    sync, snapshots, enforcer, clock = timed(base_cluster(WEB_FROM_CLIENTS))
    sync()
    for step, seconds in enumerate(elapsed):
        clock.advance(seconds)
        event(snapshots, step)
        sync()
    assert enforcer.verified == kinds
    assert enforcer.kernel == expected(snapshots.cluster)


def test_the_read_back_is_due_an_interval_after_the_last_one() -> None:
    sync, snapshots, enforcer, clock = timed(base_cluster(WEB_FROM_CLIENTS))
    assert sync.verification_due() == float("inf"), "nothing to read back before the first sync"
    clock.advance(5.0)
    sync()
    assert sync.verification_due() == 65.0
    clock.advance(70.0)
    event(snapshots, 1)
    sync()
    assert sync.verification_due() == 65.0, "an event is no read-back"
    assert sync.verify() is True
    assert enforcer.verified == [True, False, True]
    assert sync.verification_due() == 135.0


def test_the_interval_counts_from_the_end_of_the_full_read_not_from_the_start_of_its_sync() -> None:
    """A first sync that compiles a large cluster for 50 s reads the kernel at its end; the
    next read-back is due an interval after that end."""
    sync, snapshots, enforcer, clock = timed(base_cluster(WEB_FROM_CLIENTS))
    full_apply = enforcer.apply

    def slow_apply(desired: Any, **kwargs: Any) -> Any:
        clock.advance(50.0)
        return full_apply(desired, **kwargs)

    enforcer.apply = slow_apply  # type: ignore[method-assign]
    sync()
    assert sync.verification_due() == 110.0


@pytest.mark.parametrize(
    ("late", "gives_way"),
    [
        pytest.param(0.0, True, id="due-gives-way-to-a-waiting-sync"),
        pytest.param(59.0, True, id="nearly-overdue-still-gives-way"),
        pytest.param(60.0, False, id="overdue-by-a-whole-interval-goes-on"),
    ],
)
def test_a_read_back_gives_way_to_a_waiting_sync_until_it_is_overdue(late: float, gives_way: bool) -> None:
    sync, snapshots, enforcer, clock = timed(base_cluster(WEB_FROM_CLIENTS))
    sync()
    clock.advance(60.0 + late)
    completed = sync.verify(interrupted=lambda: True)
    assert completed is not gives_way
    assert enforcer.verified == ([True] if gives_way else [True, True])
    assert sync.verification_due() == (60.0 if gives_way else 120.0 + late)


def test_a_read_back_repairs_the_table_to_the_last_applied_ruleset_not_the_newest_snapshot() -> None:
    """Someone edited our table; an event is already in the cache but not yet synced. The
    read-back puts back what was applied; the event's sync then brings its change."""
    metrics = AgentMetrics()
    stream = io.StringIO()
    batch_to_web = Flow("tcp", ipaddress.ip_address("10.0.2.11"), ipaddress.ip_address("10.0.1.10"), 40001, 80)
    conntrack = MemoryConntrack()
    sync, snapshots, enforcer, clock = timed(
        base_cluster(WEB_FROM_CLIENTS), metrics=metrics, conntrack=conntrack,
        logger=configure(node="node-1", stream=stream, name=f"policyctl.test.{uuid.uuid4().hex}"))
    sync()
    applied = expected(snapshots.cluster)
    enforcer.kernel = {"nftables": []}
    conntrack.entries.append(batch_to_web)
    snapshots.cluster = relabel(snapshots.cluster, "y/batch", role="client")
    clock.advance(60.0)
    assert sync.verify()
    assert enforcer.kernel == applied
    assert conntrack.entries == [], "a flow the repaired table denies is cut"
    sync()
    assert enforcer.kernel == expected(snapshots.cluster) != applied
    value = metrics.registry.get_sample_value
    assert value("policyctl_kernel_readbacks_total", {"result": "repaired"}) == 1
    assert value("policyctl_kernel_readback_duration_seconds_count") == 1
    warnings = [json.loads(line) for line in stream.getvalue().splitlines() if '"warning"' in line.lower()]
    assert [(w["msg"], w["revoked_connections"]) for w in warnings] == [
        ("kernel read-back found the table changed by someone else; repaired", 1)
    ]


def test_a_read_back_that_gives_way_sends_nothing_and_counts_as_deferred() -> None:
    metrics = AgentMetrics()
    sync, snapshots, enforcer, clock = timed(base_cluster(WEB_FROM_CLIENTS), metrics=metrics)
    sync()
    enforcer.kernel = {"nftables": []}
    clock.advance(60.0)
    answers = iter([False, True])
    assert sync.verify(interrupted=lambda: next(answers)) is False
    assert enforcer.kernel == {"nftables": []} and enforcer.verified == [True]
    assert metrics.registry.get_sample_value("policyctl_kernel_readbacks_total", {"result": "deferred"}) == 1


def test_a_failed_read_back_is_a_failed_sync_and_the_next_sync_starts_over() -> None:
    metrics = AgentMetrics()
    sync, snapshots, enforcer, clock = timed(base_cluster(WEB_FROM_CLIENTS), metrics=metrics)
    sync()
    clock.advance(60.0)
    enforcer.fail_next = True
    with pytest.raises(RuntimeError):
        sync.verify()
    assert sync.last_error == "nft rejected the transaction" and sync.failing_since == 60.0
    assert sync.verification_due() == float("inf")
    assert metrics.registry.get_sample_value("policyctl_kernel_readbacks_total", {"result": "failed"}) == 1
    sync()
    assert enforcer.verified == [True, True, True], "the next sync reads the kernel and applies in full"
    assert sync.failing_since is None and sync.verification_due() == 120.0


def test_a_zero_resync_interval_reads_the_kernel_on_every_sync_and_no_read_back_falls_due() -> None:
    cluster = base_cluster(WEB_FROM_CLIENTS)
    sync, snapshots, enforcer = make(cluster)
    sync()
    snapshots.cluster = relabel(cluster, "y/client", role="other")
    sync()
    assert enforcer.verified == [True, True]
    assert sync.verification_due() == float("inf")


def test_between_resyncs_a_change_reaches_the_enforcer_as_the_delta_of_that_change() -> None:
    cluster = base_cluster(WEB_FROM_CLIENTS)
    snapshots = FixedSnapshots(cluster)
    enforcer = RecordingEnforcer()
    sync = NodeSync(snapshots, node="node-1", enforcer=enforcer, resync_interval=60.0)  # type: ignore[arg-type]
    sync()
    snapshots.cluster = relabel(cluster, "y/batch", role="client")
    report = sync()
    (delta,) = enforcer.deltas
    assert report.compiled and enforcer.verified == [True, False]
    assert [(name, [str(address) for address, _ in entries]) for name, entries in delta.added_entries] == [
        ("in-peers-v4", ["10.0.2.11"])
    ]
    assert not (delta.sets or delta.maps or delta.chains or delta.removed or delta.removed_entries)
    assert enforcer.kernel == expected(snapshots.cluster)
    assert report.elements == compile_node(snapshots.cluster, "node-1").element_count


def test_a_sync_that_fails_inside_the_compiler_is_followed_by_a_whole_correct_ruleset() -> None:
    sync, snapshots, enforcer = make(base_cluster(WEB_FROM_CLIENTS), resync_interval=60.0)
    sync()
    snapshots.cluster = relabel(snapshots.cluster, "y/batch", role="client")

    def broken(cluster: Cluster) -> object:
        raise RuntimeError("compiler failed halfway")

    sync.compiler.update = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        sync()
    report = sync()
    assert enforcer.verified[-1] is True and report.compiled
    assert enforcer.kernel == expected(snapshots.cluster)
    assert report.elements == compile_node(snapshots.cluster, "node-1").element_count


def without(cluster: Cluster, *, nodes: tuple[str, ...] = (), pods: tuple[str, ...] = (),
            namespaces: tuple[str, ...] = ()) -> Cluster:
    return dataclasses.replace(
        cluster,
        nodes=tuple(n for n in cluster.nodes if n.name not in nodes),
        pods=tuple(p for p in cluster.pods if p.key not in pods),
        namespaces=tuple(n for n in cluster.namespaces if n.name not in namespaces),
    )


@pytest.mark.parametrize(
    ("view", "required_pod", "message"),
    [
        pytest.param(lambda c: without(c, nodes=("node-1",)), None, "node node-1 is not among the 1 nodes",
                     id="this-node-missing"),
        pytest.param(lambda c: Cluster(), None, "node node-1 is not among the 0 nodes", id="an-empty-view"),
        pytest.param(lambda c: without(c, pods=("y/batch",)), "y/batch", "this agent's pod y/batch is not in",
                     id="own-pod-missing"),
        pytest.param(lambda c: without(c, namespaces=("y",)), "y/batch", "this agent's namespace y is not in",
                     id="own-namespace-missing"),
    ],
)
def test_an_incomplete_view_is_never_applied(view: Any, required_pod: str | None, message: str) -> None:
    cluster = base_cluster(WEB_FROM_CLIENTS)
    snapshots = FixedSnapshots(cluster)
    enforcer = RecordingEnforcer()
    sync = NodeSync(snapshots, node="node-1", enforcer=enforcer, required_pod=required_pod)  # type: ignore[arg-type]
    sync()
    applied = list(enforcer.applies)
    snapshots.cluster = view(cluster)
    with pytest.raises(IncompleteView, match=message):
        sync()
    assert enforcer.applies == applied and enforcer.kernel == expected(cluster), "the previous ruleset stays"
    assert sync.failing_since is not None and message in (sync.last_error or "")
    snapshots.cluster = cluster
    sync()
    assert sync.failing_since is None and sync.last_error is None


def test_the_agents_own_pod_leaving_and_coming_back_through_the_store_is_seen() -> None:
    """The store's snapshots carry their changes: the agent follows its pod through them
    instead of looking it up in each snapshot."""
    cluster = base_cluster(WEB_FROM_CLIENTS)
    store = ClusterStore()
    for resource, objects, key in ((Resource.NAMESPACES, cluster.namespaces, lambda o: o.name),
                                   (Resource.NODES, cluster.nodes, lambda o: o.name),
                                   (Resource.PODS, cluster.pods, lambda o: o.key),
                                   (Resource.NETWORK_POLICIES, cluster.policies, lambda o: f"{o.namespace}/{o.name}")):
        store.replace(resource, [Projection(key(o), "u", "1", o) for o in objects])
    enforcer = RecordingEnforcer()
    sync = NodeSync(store, node="node-1", enforcer=enforcer, required_pod="y/batch")  # type: ignore[arg-type]
    sync()
    own = store.get(Resource.PODS, "y/batch")
    assert own is not None
    store.remove(Resource.PODS, "y/batch")
    with pytest.raises(IncompleteView, match="this agent's pod y/batch is not in"):
        sync()
    store.upsert(Resource.PODS, own)
    sync()
    assert sync.failing_since is None and enforcer.kernel == expected(cluster)


def test_a_complete_view_with_the_agents_own_pod_is_applied() -> None:
    sync, _, enforcer = make(base_cluster(WEB_FROM_CLIENTS), required_pod="y/batch")
    sync()
    assert enforcer.kernel == expected(base_cluster(WEB_FROM_CLIENTS))


def test_revocation_judges_the_table_the_enforcer_committed_not_a_new_rendering() -> None:
    """The enforcer's last commit is what the kernel enforces: flows are judged against it,
    read in place, even where the compiler's ruleset would now say otherwise."""
    client_to_web = Flow("tcp", ipaddress.ip_address("10.0.2.10"), ipaddress.ip_address("10.0.1.10"), 40000, 80)
    conntrack = MemoryConntrack(client_to_web)
    sync, _, enforcer = make(base_cluster(WEB_FROM_CLIENTS), conntrack=conntrack)
    deny_all = read_table(expected(base_cluster(b.policy("x/deny", {"app": "web"}, ingress=[]))),
                          family="inet", table=enforcer.table)
    with mock.patch.object(type(enforcer), "committed", new_callable=mock.PropertyMock, return_value=deny_all):
        report = sync()
    assert report.revoked == 1 and conntrack.entries == []


def test_a_sync_reports_how_long_each_stage_took_in_its_report_log_and_metrics() -> None:
    """Snapshot, compile, plan, kernel and after, each timed on the sync's clock; the kernel's
    part is what the enforcer reports of its send, the rest of the apply is planning."""
    stream = io.StringIO()
    metrics = AgentMetrics()
    sync, snapshots, enforcer, clock = timed(
        base_cluster(WEB_FROM_CLIENTS), metrics=metrics,
        logger=configure(node="node-1", stream=stream, name=f"policyctl.test.{uuid.uuid4().hex}"),
    )

    def slow(seconds: float, call: Any, kernel: float | None = None) -> Any:
        def step(*args: Any, **kwargs: Any) -> Any:
            clock.advance(seconds)
            result = call(*args, **kwargs)
            return dataclasses.replace(result, kernel_seconds=kernel) if kernel is not None else result
        return step

    whole = enforcer.apply
    snapshots.snapshot = slow(1.0, snapshots.snapshot)  # type: ignore[method-assign]
    sync.compiler.update = slow(2.0, sync.compiler.update)  # type: ignore[method-assign]
    enforcer.apply = slow(16.0, whole, kernel=8.0)  # type: ignore[method-assign]
    enforcer.apply_delta = slow(  # type: ignore[method-assign]
        4.0, lambda delta, *, desired, **_: whole(desired()), kernel=3.0
    )
    enforcer.settle = slow(32.0, enforcer.settle)  # type: ignore[method-assign]
    first = sync()
    snapshots.cluster = dataclasses.replace(snapshots.cluster, policies=())
    second = sync()

    assert first.stages == (("snapshot", 1.0), ("compile", 2.0), ("plan", 8.0), ("kernel", 8.0), ("after", 32.0))
    assert second.stages == (("snapshot", 1.0), ("compile", 2.0), ("plan", 1.0), ("kernel", 3.0), ("after", 32.0))
    assert [sum(s for _, s in r.stages) for r in (first, second)] == [r.duration_seconds for r in (first, second)]
    logged = [json.loads(line) for line in stream.getvalue().splitlines() if "stages_seconds" in line]
    assert [line["stages_seconds"] for line in logged] == [dict(first.stages), dict(second.stages)]
    value = metrics.registry.get_sample_value
    assert {stage: value("policyctl_sync_stage_seconds_sum", {"stage": stage}) for stage, _ in first.stages} == {
        "snapshot": 2.0, "compile": 4.0, "plan": 9.0, "kernel": 11.0, "after": 64.0,
    }
    assert value("policyctl_sync_stage_seconds_count", {"stage": "kernel"}) == 2


@pytest.mark.parametrize(
    "config",
    [
        AgentConfig(node="node-1"),
        AgentConfig(node="node-2", mode="audit", new_pod_window="allow", identity_mark=None, keep_established=True,
                    drop_log_group=7, max_interval=30.0, pod_name="agent", pod_namespace="kube-system"),
    ],
    ids=["defaults", "every-setting-changed"],
)
def test_the_agent_sync_takes_every_setting_from_the_agent_config(config: AgentConfig) -> None:
    """The agent, the bench and the storm build their syncs with ``NodeSync.for_agent``; a
    setting it dropped would make them measure something the agent does not run."""
    conntrack = MemoryConntrack()
    sync = NodeSync.for_agent(FixedSnapshots(base_cluster()), config, RecordingEnforcer(), conntrack=conntrack)

    assert (sync.node, sync.mode, sync.new_pods, sync.identity_mark) == (
        config.node, config.ruleset_mode, config.new_pods, config.mark)
    assert (sync.resync_interval, sync.required_pod, sync.log_group) == (
        config.max_interval, config.own_pod, config.log_group)
    assert sync.freeze_after_first_sync
    assert sync.conntrack is (None if config.keep_established else conntrack)
