"""Fixtures for lab tests: real namespaces, always removed, also when a test fails.

Kernel tests are marked ``kernel`` and skipped, with the reason, only where the lab cannot
run at all (not root, no network namespaces, no iproute2). Each lab test gets its own state
root, so descriptions never mix with a lab someone runs by hand, and every namespace under the
test's prefixes is deleted in teardown whatever the test did.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from policyctl.lab import netns
from policyctl.lab.state import LEASES, new_prefix, process_alive

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


def _ours_or_abandoned(name: str) -> bool:
    """Whether a lab namespace belongs to this process or to nobody: labs of other processes
    (another test run, a lab someone works in) are left alone."""
    prefix = name[: name.index("-", len(netns.LAB_PREFIX_ROOT)) + 1]
    try:
        holder = int((LEASES / prefix).read_text().strip())
    except (OSError, ValueError):
        return True
    return holder == os.getpid() or not process_alive(holder)


@pytest.fixture
def lab_namespaces() -> Iterator[set[str]]:
    """Namespaces present before the test, to check a test leaves no new ones and to remove
    any it leaves (so one failure does not cascade)."""
    before = set(netns.list_netns(netns.LAB_PREFIX_ROOT))
    yield before
    for name in sorted(set(netns.list_netns(netns.LAB_PREFIX_ROOT)) - before):
        if _ours_or_abandoned(name):
            netns.delete_netns(name)
