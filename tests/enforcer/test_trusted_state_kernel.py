"""Between full reads the enforcer diffs against its own last commit: no table listing per
apply, yet a deleted table, a failed transaction and an explicit verify all go back to
reading the kernel, and drift inside the table is repaired by the verifying apply."""

from __future__ import annotations

from typing import Any

import pytest

from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.errors import NftApplyError
from policyctl.enforcer.tables import read_table
from tests.enforcer.netns import Node
from tests.enforcer.rulesets import ruleset

pytestmark = pytest.mark.kernel

A, B = Node.A_IP, Node.B_IP
ONLY_80 = ruleset(isolated=(B,), allowed=((f"{A}/32", B, 80),), local_pods=(A, B))
ALSO_443 = ruleset(isolated=(B,), allowed=((f"{A}/32", B, 80), (f"{A}/32", B, 443)), local_pods=(A, B))


class CountingBackend:
    """The real backend, counting full table listings and commands sent."""

    def __init__(self, inner: LibnftablesBackend) -> None:
        self.inner = inner
        self.listings = 0
        self.handles = 0
        self.runs: list[dict[str, Any]] = []

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.runs.append(payload)
        return self.inner.run(payload)

    def list_table(self, family: str, name: str) -> dict[str, Any] | None:
        self.listings += 1
        return self.inner.list_table(family, name)

    def check(self, payload: dict[str, Any]) -> None:
        self.inner.check(payload)

    def table_handle(self, family: str, name: str) -> int | None:
        self.handles += 1
        return self.inner.table_handle(family, name)


@pytest.fixture
def counting(backend: LibnftablesBackend) -> CountingBackend:
    return CountingBackend(backend)


def in_sync(backend: LibnftablesBackend, desired: dict[str, Any]) -> bool:
    """A fresh enforcer, which reads the kernel in full, finds nothing to change."""
    return Enforcer(backend).plan(desired).empty


def test_applies_after_the_first_do_not_list_the_table(counting: CountingBackend, backend: LibnftablesBackend) -> None:
    enforcer = Enforcer(counting)
    enforcer.apply(ONLY_80)
    listed = counting.listings
    report = enforcer.apply(ALSO_443)
    assert report.transaction.elements_added == 1 and report.transaction.elements_removed == 0
    assert enforcer.apply(ONLY_80).transaction.elements_removed == 1
    assert enforcer.apply(ONLY_80).transaction.empty
    assert counting.listings == listed, "an apply listed the table although nothing else touched it"
    assert in_sync(backend, ONLY_80)


def test_a_fresh_enforcer_reads_the_kernel(counting: CountingBackend) -> None:
    Enforcer(counting).apply(ONLY_80)
    before = counting.listings
    assert Enforcer(counting).apply(ONLY_80).transaction.empty
    assert counting.listings == before + 1


def test_drift_inside_the_table_is_repaired_by_the_verifying_apply(backend: LibnftablesBackend) -> None:
    enforcer = Enforcer(backend)
    enforcer.apply(ONLY_80)
    backend.run({"nftables": [{"delete": {"element": {
        "family": "inet", "table": "policyctl", "name": "local_pods", "elem": [A]}}}]})
    assert not in_sync(backend, ONLY_80)
    assert enforcer.apply(ONLY_80).transaction.empty, "between full reads the last commit is trusted"
    repaired = enforcer.apply(ONLY_80, verify=True)
    assert (repaired.transaction.elements_added, repaired.transaction.elements_removed) == (1, 0)
    assert in_sync(backend, ONLY_80)


def test_a_table_deleted_behind_our_back_is_noticed_without_a_verify(
    counting: CountingBackend, backend: LibnftablesBackend
) -> None:
    enforcer = Enforcer(counting)
    enforcer.apply(ONLY_80)
    backend.run({"nftables": [{"delete": {"table": {"family": "inet", "name": "policyctl"}}}]})
    listed = counting.listings
    report = enforcer.apply(ALSO_443)
    assert report.transaction.created_table
    assert counting.listings == listed + 1
    assert in_sync(backend, ALSO_443)


def test_a_table_recreated_by_someone_else_is_read_in_full(
    counting: CountingBackend, backend: LibnftablesBackend
) -> None:
    enforcer = Enforcer(counting)
    enforcer.apply(ONLY_80)
    backend.run({"nftables": [{"delete": {"table": {"family": "inet", "name": "policyctl"}}}]})
    Enforcer(backend).apply(ALSO_443)
    listed = counting.listings
    report = enforcer.apply(ALSO_443)
    assert report.transaction.empty and not report.transaction.created_table
    assert counting.listings == listed + 1


def test_a_failed_transaction_makes_the_next_apply_read_the_kernel(counting: CountingBackend) -> None:
    enforcer = Enforcer(counting)
    enforcer.apply(ONLY_80)
    bad = ruleset(isolated=(B,), allowed=((f"{A}/32", B, 81),), local_pods=(A, "fd00::1"))
    with pytest.raises(NftApplyError):
        enforcer.apply(bad)
    listed = counting.listings
    assert enforcer.apply(ALSO_443).transaction.elements_added == 1
    assert counting.listings == listed + 1


def test_a_dry_run_does_not_change_what_is_trusted(counting: CountingBackend, backend: LibnftablesBackend) -> None:
    enforcer = Enforcer(counting)
    enforcer.apply(ONLY_80)
    assert enforcer.apply(ALSO_443, dry_run=True).transaction.elements_added == 1
    assert enforcer.apply(ALSO_443).transaction.elements_added == 1
    assert in_sync(backend, ALSO_443)


def drift(backend: LibnftablesBackend) -> None:
    """Someone deletes one element inside our table."""
    backend.run({"nftables": [{"delete": {"element": {
        "family": "inet", "table": "policyctl", "name": "local_pods", "elem": [A]}}}]})


def never_rendered() -> dict[str, Any]:
    raise AssertionError("the read-back rendered the desired ruleset although the last commit is trusted")


@pytest.mark.parametrize("interrupted_at", [0, 1, 2, 3], ids=[
    "before-listing", "after-listing", "after-reading-it", "while-planning"])
def test_a_read_back_told_to_give_way_sends_nothing_and_a_later_one_repairs(
    counting: CountingBackend, backend: LibnftablesBackend, interrupted_at: int
) -> None:
    """With a trusted commit, ``Enforcer.verify`` checks before listing the kernel, after it,
    after reading the listing and while planning; told to give way at any of them it returns
    None with nothing sent, and the trusted commit still serves the next delta."""
    enforcer = Enforcer(counting)
    enforcer.apply(ONLY_80)
    drift(backend)
    checks = iter(range(10))
    sent = len(counting.runs)
    assert enforcer.verify(never_rendered, interrupted=lambda: next(checks) == interrupted_at) is None
    assert len(counting.runs) == sent and not in_sync(backend, ONLY_80)
    assert enforcer.apply(ALSO_443).transaction.elements_added == 1, "the last commit is still trusted"
    repaired = enforcer.verify(never_rendered)
    assert repaired is not None
    assert (repaired.transaction.elements_added, repaired.transaction.elements_removed) == (1, 0)
    assert in_sync(backend, ALSO_443)


@pytest.mark.parametrize("interrupted_at", [0, 1, 2, 3, 4, 5], ids=[
    "before-render", "after-render", "after-reading-it", "after-listing", "after-reading-the-listing",
    "while-planning"])
def test_a_read_back_without_a_trusted_commit_renders_and_gives_way_between_every_step(
    counting: CountingBackend, backend: LibnftablesBackend, interrupted_at: int
) -> None:
    Enforcer(backend).apply(ONLY_80)
    drift(backend)
    enforcer = Enforcer(counting)
    checks = iter(range(10))
    assert enforcer.verify(lambda: ONLY_80, interrupted=lambda: next(checks) == interrupted_at) is None
    assert not counting.runs and not in_sync(backend, ONLY_80)
    repaired = enforcer.verify(lambda: ONLY_80)
    assert repaired is not None
    assert (repaired.transaction.elements_added, repaired.transaction.elements_removed) == (1, 0)
    assert in_sync(backend, ONLY_80)


def test_a_read_back_repairs_to_the_last_commit_without_rendering_the_desired_ruleset(
    backend: LibnftablesBackend,
) -> None:
    enforcer = Enforcer(backend)
    enforcer.apply(ONLY_80)
    enforcer.apply(ALSO_443)
    drift(backend)
    repaired = enforcer.verify(never_rendered)
    assert repaired is not None and repaired.applied
    assert (repaired.transaction.elements_added, repaired.transaction.elements_removed) == (1, 0)
    assert in_sync(backend, ALSO_443)
    clean = enforcer.verify(never_rendered)
    assert clean is not None and not clean.changed


def test_a_read_back_after_someone_recreated_the_table_renders_the_desired_ruleset(
    backend: LibnftablesBackend,
) -> None:
    enforcer = Enforcer(backend)
    enforcer.apply(ONLY_80)
    backend.run({"nftables": [{"delete": {"table": {"family": "inet", "name": "policyctl"}}}]})
    Enforcer(backend).apply(ALSO_443)
    rendered: list[bool] = []

    def desired() -> dict[str, Any]:
        rendered.append(True)
        return ONLY_80

    repaired = enforcer.verify(desired)
    assert rendered and repaired is not None and repaired.changed
    assert in_sync(backend, ONLY_80)


@pytest.mark.parametrize("table", ["policyctl", "absent"])
def test_the_listing_that_gives_way_reads_as_the_in_process_listing(backend: LibnftablesBackend, table: str) -> None:
    Enforcer(backend).apply(ALSO_443)
    by_child = backend.list_table_giving_way("inet", table, lambda: False)
    in_process = backend.list_table("inet", table)
    if in_process is None:
        assert by_child is None
        return
    assert by_child is not None
    assert read_table(by_child, family="inet", table=table, source="<kernel>", strict=False) == read_table(
        in_process, family="inet", table=table, source="<kernel>", strict=False)
