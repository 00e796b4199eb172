"""The store: the change feed, relists that synthesise deletions, cheap snapshots."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.kubeapi.projections import Projection
from policyctl.kubeapi.resources import Resource
from policyctl.kubeapi.store import Change, ChangeKind, ClusterStore
from policyctl.policy.model import Labels, Pod

PODS = Resource.PODS


def record(key: str, *, uid: str = "u", version: str = "1", **labels: str) -> Projection:
    ns, _, name = key.partition("/")
    return Projection(key, uid, version, Pod(ns, name, Labels(labels)))


def test_the_change_feed_says_added_modified_and_deleted() -> None:
    store = ClusterStore()
    assert store.upsert(PODS, record("a/x", app="1")) == Change(PODS, "a/x", ChangeKind.ADDED)
    assert store.upsert(PODS, record("a/x", app="2")) == Change(PODS, "a/x", ChangeKind.MODIFIED)
    assert store.upsert(PODS, record("a/x", uid="v", app="2")) == Change(PODS, "a/x", ChangeKind.MODIFIED)
    assert store.remove(PODS, "a/x") == Change(PODS, "a/x", ChangeKind.DELETED)
    assert store.remove(PODS, "a/x") is None


def test_a_new_version_that_means_the_same_is_no_change_and_keeps_the_snapshot() -> None:
    store = ClusterStore()
    store.upsert(PODS, record("a/x", app="1"))
    before = store.snapshot()
    assert store.upsert(PODS, record("a/x", version="2", app="1")) is None
    assert store.snapshot() is before
    assert store.get(PODS, "a/x").resource_version == "2"  # type: ignore[union-attr]


def test_snapshots_are_sorted_by_namespace_then_name() -> None:
    store = ClusterStore()
    for key in ("a/x", "a-b/x", "b/a", "a/a"):
        store.upsert(PODS, record(key))
    assert [p.key for p in store.snapshot().pods] == ["a/a", "a/x", "a-b/x", "b/a"]


keys = st.sets(st.sampled_from([f"{ns}/{name}" for ns in "ab" for name in "xyz"]))


@settings(max_examples=100, deadline=None)
@given(before=keys, after=keys, relabel=keys)
def test_a_relist_leaves_exactly_the_listed_objects_and_reports_every_difference(
    before: set[str], after: set[str], relabel: set[str]
) -> None:
    store = ClusterStore()
    for key in before:
        store.upsert(PODS, record(key))
    fresh = [record(k, app="new") if k in relabel else record(k) for k in after]
    changes = store.replace(PODS, fresh)
    assert store.keys(PODS) == tuple(sorted(after))
    assert {c.key for c in changes if c.kind is ChangeKind.DELETED} == before - after
    assert {c.key for c in changes if c.kind is ChangeKind.ADDED} == after - before
    assert {c.key for c in changes if c.kind is ChangeKind.MODIFIED} == before & after & relabel
