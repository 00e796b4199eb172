"""Fixtures for lab tests: real namespaces, always removed, also when a test fails.

Kernel tests are marked ``kernel`` and skipped, with the reason, only where the lab cannot
run at all (not root, no network namespaces, no iproute2). Each lab test gets its own state
root, so descriptions never mix with a lab someone runs by hand, and every namespace under the
test's prefixes is deleted in teardown whatever the test did.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from policyctl.lab import netns
from policyctl.lab.state import new_prefix

UNAVAILABLE = netns.available()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("kernel") and UNAVAILABLE:
            item.add_marker(pytest.mark.skip(reason=f"lab cannot run here: {UNAVAILABLE}"))


@pytest.fixture
def state_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "labs"
    monkeypatch.setenv("POLICYCTL_LAB_STATE", str(root))
    return root


@pytest.fixture
def prefix() -> Iterator[str]:
    """A fresh lab prefix; whatever exists under it is torn down after the test."""
    chosen = new_prefix()
    yield chosen
    netns.teardown(chosen)


@pytest.fixture
def lab_namespaces() -> Iterator[set[str]]:
    """Namespaces present before the test, to check a test leaves no new ones and to remove
    any it leaves (so one failure does not cascade)."""
    before = set(netns.list_netns(netns.LAB_PREFIX_ROOT))
    yield before
    for name in sorted(set(netns.list_netns(netns.LAB_PREFIX_ROOT)) - before):
        netns.delete_netns(name)
