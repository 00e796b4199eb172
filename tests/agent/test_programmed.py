"""When a policy change reached the kernel: the tracker's claims and the Event it becomes."""

from __future__ import annotations

import pytest

from policyctl.agent.programmed import (
    PolicyKey,
    Programmed,
    ProgrammedTracker,
    event_for,
    read_event,
)

WEB = PolicyKey("NetworkPolicy", "shop", "web")
GUARD = PolicyKey("ClusterNetworkPolicy", "", "guard")


@pytest.mark.parametrize(
    ("changes", "started", "finished", "programmed", "left"),
    [
        ([(WEB, 1.0)], 2.0, 2.5, [(WEB, 1.5)], 0),
        ([(WEB, 1.0), (WEB, 1.8)], 2.0, 2.5, [(WEB, 1.5)], 0),
        ([(WEB, 2.1)], 2.0, 2.5, [], 1),
        ([(WEB, 1.0), (GUARD, 2.2)], 2.0, 3.0, [(WEB, 2.0)], 1),
        ([(GUARD, 0.5), (WEB, 2.0)], 2.0, 2.0, [(GUARD, 1.5), (WEB, 0.0)], 0),
    ],
    ids=["seen-before-the-sync", "the-oldest-change-counts", "seen-during-the-sync-waits", "only-earlier-ones",
         "sorted-by-policy"],
)
def test_a_sync_programs_the_changes_seen_before_it_started(
    changes: list[tuple[PolicyKey, float]], started: float, finished: float,
    programmed: list[tuple[PolicyKey, float]], left: int,
) -> None:
    tracker = ProgrammedTracker("node-a")
    for policy, at in changes:
        tracker.changed(policy, at)
    found = tracker.synced(started, finished, wall_clock=1000.0)
    assert [(p.policy, p.latency) for p in found] == programmed
    assert all(p.node == "node-a" and p.at == 1000.0 for p in found)
    assert tracker.pending == left


def test_a_policy_deleted_before_it_was_programmed_is_forgotten() -> None:
    tracker = ProgrammedTracker("node-a")
    tracker.changed(WEB, 1.0)
    tracker.deleted(WEB)
    assert tracker.synced(2.0, 3.0, wall_clock=0.0) == () and tracker.pending == 0


@pytest.mark.parametrize(
    ("store_key", "kind", "expected"),
    [("shop/web", "NetworkPolicy", WEB), ("guard", "ClusterNetworkPolicy", GUARD)],
)
def test_store_keys_name_policies(store_key: str, kind: str, expected: PolicyKey) -> None:
    assert PolicyKey.of(kind, store_key) == expected


def test_the_event_says_where_and_how_fast_and_reads_back() -> None:
    done = Programmed(WEB, "node-3", 0.041, 1_800_000_000.0)
    event = event_for(done)
    assert event["message"] == "programmed on node-3 in 41 ms"
    assert event["metadata"]["namespace"] == "shop"
    assert event["metadata"]["name"] == "web.networkpolicy.programmed.node-3"
    assert event["involvedObject"] == {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "name": "web",
                                       "namespace": "shop"}
    assert (event["reason"], event["type"], event["source"]) == ("Programmed", "Normal",
                                                                 {"component": "policyctl-agent", "host": "node-3"})
    assert read_event(event) == done


def test_a_cluster_scoped_policy_has_its_events_in_default_and_long_names_stay_valid() -> None:
    event = event_for(Programmed(PolicyKey("ClusterNetworkPolicy", "", "g" * 250), "node-1", 1.0, 0.0))
    assert event["metadata"]["namespace"] == "default" and "namespace" not in event["involvedObject"]
    assert len(event["metadata"]["name"]) == 253


@pytest.mark.parametrize(
    "change",
    [{"reason": "Scheduled"}, {"source": {"component": "kubelet"}}, {"metadata": {"annotations": {}}},
     {"metadata": {"annotations": {"policyctl.io/latency-seconds": "soon", "policyctl.io/node": "n"}}}],
)
def test_other_events_are_not_read_as_programmed(change: dict[str, object]) -> None:
    event = {**event_for(Programmed(WEB, "node-3", 0.041, 0.0)), **change}
    assert read_event(event) is None
