"""The conntrack listing bench at a tiny size: both ways list every inserted entry and the
figures compare them on the same table (nothing here asserts how fast either is)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from policyctl.bench.conntrack import measure
from policyctl.bench.run import NETNS_PREFIX
from policyctl.lab import netns

UNAVAILABLE = netns.available() or ("" if shutil.which("conntrack") else "conntrack-tools is not installed")

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(bool(UNAVAILABLE), reason=str(UNAVAILABLE))]


def test_each_way_lists_every_entry_and_is_compared_with_the_netlink_dump() -> None:
    figures = {f.name: f for f in measure(entries=40, samples=1)}
    assert set(figures) == {"conntrack.list.netlink", "conntrack.list.command", "conntrack.list.tool"}
    assert all("40 tracked TCP flows" in f.detail for f in figures.values())
    netlink = figures["conntrack.list.netlink"].value
    assert netlink is not None and netlink > 0
    assert figures["conntrack.list.command"].baseline == netlink
    assert figures["conntrack.list.tool"].ratio is not None
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert NETNS_PREFIX not in namespaces, "the bench left its namespace behind"
