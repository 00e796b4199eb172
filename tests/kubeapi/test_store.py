"""The store: the change feed, relists that synthesise deletions, cheap snapshots."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.kubeapi import store as store_module
from policyctl.kubeapi.projections import Projection
from policyctl.kubeapi.resources import Resource
from policyctl.kubeapi.store import Change, ChangeKind, ClusterStore
from policyctl.policy.model import NAMESPACE_NAME_LABEL, Labels, Namespace, Pod
from policyctl.policy.snapshots import Presence, Successor, changed_objects, identity_diff

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


# -- snapshot order, maintained as writes arrive -------------------------------------------

Op = tuple[str, str]
"""("upsert", key), ("relabel", key), ("remove", key) or ("relist", "k1,k2,...")."""


def _apply(store: ClusterStore, ops: list[Op]) -> None:
    for op, arg in ops:
        if op == "upsert":
            store.upsert(PODS, record(arg))
        elif op == "relabel":
            store.upsert(PODS, record(arg, app="relabelled"))
        elif op == "remove":
            store.remove(PODS, arg)
        else:
            store.replace(PODS, [record(k) for k in arg.split(",") if k])


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ([("upsert", k) for k in ("b/a", "a/x", "a-b/x", "a/a")], ["a/a", "a/x", "a-b/x", "b/a"]),
        ([("upsert", k) for k in ("a/a", "a/b", "a/c")] + [("remove", "a/b")], ["a/a", "a/c"]),
        ([("upsert", k) for k in ("a/a", "a/b")] + [("remove", "a/a"), ("upsert", "a/a")], ["a/a", "a/b"]),
        ([("upsert", k) for k in ("a/a", "a/b", "a/c")] + [("relabel", "a/b")], ["a/a", "a/b", "a/c"]),
        ([("upsert", "z/z"), ("relist", "c/c,a-b/x,a/x"), ("upsert", "a/b")], ["a/b", "a/x", "a-b/x", "c/c"]),
        ([("relist", "b/b,a/a"), ("remove", "a/a"), ("remove", "b/b")], []),
    ],
    ids=["adds-out-of-order", "delete-in-the-middle", "delete-then-re-add",
         "modify-keeps-its-place", "relist-then-add", "relist-then-delete-all"],
)  # fmt: skip
def test_snapshot_order_follows_adds_deletes_and_modifications(ops: list[Op], expected: list[str]) -> None:
    store = ClusterStore()
    _apply(store, ops)
    snapshot = store.snapshot()
    assert [p.key for p in snapshot.pods] == expected
    relabelled = [p.key for p in snapshot.pods if p.labels.get("app") == "relabelled"]
    assert relabelled == [arg for op, arg in ops if op == "relabel" and arg in expected]


@pytest.mark.parametrize(
    "noop",
    [
        lambda s: s.upsert(PODS, record("a/x", version="9")),
        lambda s: s.remove(PODS, "a/absent"),
        lambda s: s.replace(PODS, [record("a/x"), record("b/y")]),
        lambda s: s.replace(Resource.NODES, []),
    ],
    ids=["new-version-same-meaning", "remove-of-an-absent-key", "relist-of-the-same-objects",
         "empty-relist-of-another-kind"],
)
def test_the_snapshot_is_the_same_object_while_nothing_changed(noop: Callable[[ClusterStore], object]) -> None:
    store = ClusterStore()
    store.replace(PODS, [record("a/x"), record("b/y")])
    before = store.snapshot()
    noop(store)
    assert store.snapshot() is before


def test_a_change_to_pods_reuses_the_other_kinds_of_the_previous_snapshot() -> None:
    store = ClusterStore()
    store.upsert(Resource.NAMESPACES, Projection("a", "u", "1", Namespace("a", Labels({NAMESPACE_NAME_LABEL: "a"}))))
    store.upsert(PODS, record("a/x"))
    before = store.snapshot()
    store.upsert(PODS, record("a/y"))
    after = store.snapshot()
    assert after.namespaces is before.namespaces
    assert [p.key for p in after.pods] == ["a/x", "a/y"]


def test_a_snapshot_after_one_write_shares_every_block_but_the_one_written() -> None:
    """10k pods in blocks: an add (which may split its block), a relabel and a delete each
    leave the snapshot after them made of the blocks before, all but one or two."""
    store = ClusterStore()
    store.replace(PODS, [record(f"ns-{i % 100:03d}/pod-{i:05d}") for i in range(10_000)])
    writes = [
        lambda: store.upsert(PODS, record("ns-050/pod-new")),
        lambda: store.upsert(PODS, record("ns-050/pod-new", app="relabelled")),
        lambda: store.remove(PODS, "ns-007/pod-00007"),
    ]
    for write in writes:
        before = store.snapshot().pods
        write()
        after = store.snapshot().pods
        assert isinstance(before, Successor) and isinstance(after, Successor)
        shared = {id(b) for b in before.blocks}
        assert len(after.blocks) >= 10_000 // (2 * store_module._BLOCK)
        assert sum(id(b) not in shared for b in after.blocks) in (1, 2)


def test_a_snapshot_after_one_change_searches_instead_of_sorting(monkeypatch: pytest.MonkeyPatch) -> None:
    """10k pods, then one add and one delete: the store locates each in O(log n) key
    computations and never calls ``sorted``; a full sort would compute 10k keys."""
    calls: list[str] = []

    def counted(key: str) -> tuple[str, str, str]:
        calls.append(key)
        return key.partition("/")

    monkeypatch.setattr(store_module, "_by_namespace_then_name", counted)
    store = ClusterStore()
    store.replace(PODS, [record(f"ns-{i % 100:03d}/pod-{i:05d}") for i in range(10_000)])
    store.snapshot()
    calls.clear()

    def no_sorting(*_: object, **__: object) -> object:
        raise AssertionError("sorted() on the event path")

    monkeypatch.setattr(store_module, "sorted", no_sorting, raising=False)
    store.upsert(PODS, record("ns-050/pod-new"))
    store.remove(PODS, "ns-007/pod-00007")
    pods = store.snapshot().pods
    assert len(calls) <= 2 * 2 * 15  # two binary searches of at most log2(10k) + 1 steps
    assert len(pods) == 10_000
    assert "ns-050/pod-new" in [p.key for p in pods] and "ns-007/pod-00007" not in [p.key for p in pods]


op_keys = st.sampled_from([f"{ns}/{name}" for ns in ("a", "a-b", "ab", "b") for name in ("x", "x-y", "y")])
ops = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["upsert", "relabel", "remove"]), op_keys),
        st.tuples(st.just("relist"), st.sets(op_keys).map(lambda s: ",".join(s))),
    ),
    max_size=25,
)


def test_a_last_block_split_after_appends_keeps_its_bound_above_the_first_half_s() -> None:
    """Keys appended after every other, then a split of that block, then an update of a key
    of its first half: the update must land on that key (hypothesis found the update writing
    over the next key when the second half's bound was left below the first half's)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "_BLOCK", 2)
        store = ClusterStore()
        for key in ("a/x", "a/x-y", "a/y", "a-b/x", "a-b/x-y"):
            store.upsert(PODS, record(key))
        store.upsert(PODS, record("a/x-y", version="2", app="new"))
    assert [(p.key, dict(p.labels)) for p in store.snapshot().pods] == [
        ("a/x", {}), ("a/x-y", {"app": "new"}), ("a/y", {}), ("a-b/x", {}), ("a-b/x-y", {})]


def _assert_bounds_sorted_and_holding_their_blocks(store: ClusterStore) -> None:
    """The invariant the binary search over blocks needs (``kubeapi.store._Table``), checked
    after every write: a wrong bound shows here at once, not only when a later write lands on
    the wrong key."""
    table = store._tables[PODS]
    order = table.sort_key
    for block, (keys, bound) in enumerate(zip(table.keys, table.maxes, strict=True)):
        assert keys and all(order(k) <= bound for k in keys)  # type: ignore[operator]
        if block:
            assert table.maxes[block - 1] < order(keys[0])  # type: ignore[operator]


@pytest.mark.parametrize("block", [1, 2, 512], ids=["blocks-of-1-to-2", "blocks-of-2-to-4", "one-block"])
@settings(max_examples=150, deadline=None)
@given(ops=ops)
def test_a_maintained_snapshot_equals_a_from_scratch_sort_of_the_store(block: int, ops: list[Op]) -> None:
    """Blocks of any size (splitting past twice their size, dropped when emptied)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "_BLOCK", block)
        store = ClusterStore()
        for op in ops:
            _apply(store, [op])
            _assert_bounds_sorted_and_holding_their_blocks(store)
    pods = [p.value for p in (store.get(PODS, k) for k in store.keys(PODS)) if p is not None]
    expected = sorted(pods, key=lambda p: (p.namespace, p.name))  # type: ignore[union-attr]
    snapshot = store.snapshot().pods
    assert [(p.key, p.labels) for p in snapshot] == [(p.key, p.labels) for p in expected]  # type: ignore[union-attr]
    assert isinstance(snapshot, Successor) and all(0 < len(b) <= 2 * block for b in snapshot.blocks)


@pytest.mark.parametrize("block", [1, 512], ids=["blocks-of-1-to-2", "one-block"])
@settings(max_examples=200, deadline=None)
@given(rounds=st.lists(ops, min_size=1, max_size=6), repeat=st.lists(op_keys, max_size=3))
def test_each_snapshot_carries_exactly_what_it_gained_and_lost_against_the_one_before(
    block: int, rounds: list[list[Op]], repeat: list[str]
) -> None:
    """Between two snapshots, any writes (the same object put back included); the change a
    snapshot carries is what comparing the two sequences by identity finds, in their order,
    and it is left out only after a relist. Only the newest snapshot keeps its change."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "_BLOCK", block)
        _carried_changes_match_the_identity_diff(rounds, repeat)


def _carried_changes_match_the_identity_diff(rounds: list[list[Op]], repeat: list[str]) -> None:
    store = ClusterStore()
    previous = store.snapshot().pods
    relisted = False
    for batch in rounds:
        _apply(store, batch)
        relisted = relisted or any(op == "relist" for op, _ in batch)
        for key in repeat:
            kept = store.get(PODS, key)
            if kept is not None:
                store.upsert(PODS, Projection(key, kept.uid, "again", kept.value))
        current = store.snapshot().pods
        gone, came = changed_objects(previous, current)
        expected_gone, expected_came = identity_diff(previous, current)
        assert [id(p) for p in gone] == [id(p) for p in expected_gone]
        assert [id(p) for p in came] == [id(p) for p in expected_came]
        change = getattr(current, "change", None)
        if current is not previous and not relisted:
            assert change is not None and change.base is previous
        if current is not previous:
            assert getattr(previous, "change", None) is None
            relisted = False
        previous = current


@settings(max_examples=200, deadline=None)
@given(rounds=st.lists(st.tuples(ops, st.booleans()), min_size=1, max_size=8), key=op_keys)
def test_presence_followed_through_the_changes_is_a_search_of_each_snapshot(
    rounds: list[tuple[list[Op], bool]], key: str
) -> None:
    """Whatever the writes, relists included, and whether or not a snapshot was taken between
    two that the follower sees (then the one it sees does not follow the one it saw)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "_BLOCK", 1)
        store = ClusterStore()
        present: Presence[Pod] = Presence(key, lambda pod: pod.key)
        for batch, unseen_snapshot_between in rounds:
            _apply(store, batch[: len(batch) // 2])
            if unseen_snapshot_between:
                store.snapshot()
            _apply(store, batch[len(batch) // 2 :])
            pods = store.snapshot().pods
            assert present(pods) == any(p.key == key for p in pods)
