"""Stand-ins for the kernel side of a sync: an enforcer that remembers what it was given and
a conntrack table in memory."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from policyctl.compiler.delta import RulesetDelta
from policyctl.enforcer.apply import ApplyReport
from policyctl.enforcer.conntrack import Flow
from policyctl.enforcer.diff import Transaction
from policyctl.enforcer.tables import TableState, read_table
from policyctl.policy.cluster import Cluster


class RecordingEnforcer:
    """Holds the last applied document as "the kernel"; a different document is a change.
    A delta is applied by taking the whole desired document, so "the kernel" is always what
    the sync meant it to be. ``fail_next`` makes the next apply raise, as a rejected
    transaction does."""

    def __init__(self, table: str = "policyctl") -> None:
        self.table = table
        self.kernel: Mapping[str, Any] | None = None
        self.applies: list[Mapping[str, Any]] = []
        self.fail_next = False
        self.verified: list[bool] = []
        self.deltas: list[RulesetDelta] = []
        self.settles = 0

    def apply(
        self, desired: Mapping[str, Any], *, dry_run: bool = False, source: str = "<ruleset>", verify: bool = False
    ) -> ApplyReport:
        self.verified.append(verify)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("nft rejected the transaction")
        self.applies.append(desired)
        changed = json.dumps(desired, sort_keys=True) != json.dumps(self.kernel, sort_keys=True)
        commands: tuple[Mapping[str, Any], ...] = ({"replace": {"table": self.table}},) if changed else ()
        if not dry_run:
            self.kernel = desired
        return ApplyReport(
            Transaction(commands=commands), applied=changed and not dry_run, dry_run=dry_run, duration_seconds=0.0
        )

    @property
    def committed(self) -> TableState | None:
        """"The kernel" read as the real enforcer holds its last commit."""
        if self.kernel is None:
            return None
        return read_table(self.kernel, family="inet", table=self.table)

    def apply_delta(
        self, delta: RulesetDelta, *, desired: Callable[[], Mapping[str, Any]], source: str = "<ruleset>",
        renames_later: bool = False, later: RulesetDelta | None = None,
    ) -> ApplyReport:
        self.deltas.append(delta)
        return self.apply(desired(), source=source)

    def settle(self) -> None:
        """Nothing is left pending: every apply takes the whole document."""
        self.settles += 1

    def verify(
        self, desired: Callable[[], Mapping[str, Any]], *, source: str = "<ruleset>",
        interrupted: Callable[[], bool] = lambda: False,
    ) -> ApplyReport | None:
        """The real enforcer's steps, each checked before: render, then read back and repair
        (one step here: "the kernel" is held whole)."""
        if interrupted():
            return None
        document = desired()
        if interrupted():
            return None
        return self.apply(document, source=source, verify=True)


class FixedSnapshots:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def snapshot(self) -> Cluster:
        return self.cluster


class MemoryConntrack:
    def __init__(self, *flows: Flow) -> None:
        self.entries = list(flows)
        self.broken = False

    def flows(self) -> tuple[Flow, ...]:
        if self.broken:
            raise OSError("conntrack: netlink error")
        return tuple(self.entries)

    def delete(self, flow: Flow) -> bool:
        if flow in self.entries:
            self.entries.remove(flow)
            return True
        return False
