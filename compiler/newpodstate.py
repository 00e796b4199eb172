"""The new-pod sets of one node over a sequence of snapshots, for the incremental compiler.

What :func:`newpods.new_pod_sets` derives from a whole snapshot, followed by the change: the
pods that came or went (by object identity, as :func:`policy.snapshots.changed_objects` finds them)
move the count of each known address inside the node's pod range (two pods may hold one
address for a while); an address that became known or unknown changes the elements of its
family's set, found by one sweep of that family's sorted holes and given as element changes.
The sets and base chains are rebuilt and diffed only when the node's pod CIDRs changed or the
window opened or closed.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from policyctl.policy.cluster import Cluster
from policyctl.policy.model import Family, IPAddress, IPNetwork, Pod
from policyctl.policy.snapshots import changed_objects

from .chains import base_chains
from .delta import RulesetDelta, diff
from .layout import FAMILIES
from .newpods import NewPodWindow, known_addresses, new_pod_set, range_without, window_families
from .ruleset import Element, Mode, Ruleset, Set


class UnknownAddresses:
    """The unknown-address sets of one node and the families they close, step by step."""

    def __init__(self, node: str, window: NewPodWindow) -> None:
        self.node = node
        self.window = window
        self.families: tuple[Family, ...] = ()
        self.sets: tuple[Set, ...] = ()
        self._cidrs: tuple[IPNetwork, ...] = ()
        self._pods_seen: Sequence[Pod] = ()
        self._known: Counter[IPAddress] = Counter()
        self._holes: dict[Family, list[int]] = {f: [] for f in FAMILIES}

    def follow(self, cluster: Cluster, table: str, mode: Mode) -> RulesetDelta | None:
        """Advance to ``cluster``; the change of the sets and base chains, None when nothing
        changed. When only known addresses moved, the change is the elements of the sets they
        are in: a pod event costs a sweep of its family's holes, not a diff of rulesets."""
        if self.window is NewPodWindow.ALLOW:
            return None
        this = cluster.node_by_name.get(self.node)
        cidrs = this.pod_cidrs if this is not None else ()
        families = window_families(cluster, self.node, self.window)
        if cidrs != self._cidrs:
            self._cidrs = cidrs
            self._known = Counter(known_addresses(cluster.pods, cidrs))
            self._holes = {f: sorted(int(a) for a in self._known if Family.of(a) is f) for f in FAMILIES}
            self._pods_seen = cluster.pods
            return self._rebuild(families, table, mode)
        moved = self._follow_pods(cluster.pods, cidrs)
        if families != self.families:
            return self._rebuild(families, table, mode)
        added: list[tuple[str, tuple[Element, ...]]] = []
        removed: list[tuple[str, tuple[Element, ...]]] = []
        sets = list(self.sets)
        for i, family in enumerate(families):
            if family not in moved:
                continue
            old = sets[i]
            elements = range_without(cidrs, self._holes[family], family)
            before, after = set(old.elements), set(elements)
            if after - before:
                added.append((old.name, tuple(sorted(after - before))))
            if before - after:
                removed.append((old.name, tuple(sorted(before - after))))
            sets[i] = replace(old, elements=elements)
        self.sets = tuple(sets)
        if not added and not removed:
            return None
        return RulesetDelta(added_elements=tuple(added), removed_elements=tuple(removed))

    def _follow_pods(self, pods: Sequence[Pod], cidrs: tuple[IPNetwork, ...]) -> set[Family]:
        """Count the addresses of the pods that came and went; the families in which an
        address became known or unknown."""
        if pods is self._pods_seen:
            return set()
        moved: set[Family] = set()
        gone, came = changed_objects(self._pods_seen, pods)
        self._pods_seen = pods
        for pod in gone:
            for address in known_addresses((pod,), cidrs):
                self._known[address] -= 1
                if not self._known[address]:
                    del self._known[address]
                    family = Family.of(address)
                    holes = self._holes[family]
                    del holes[bisect.bisect_left(holes, int(address))]
                    moved.add(family)
        for pod in came:
            for address in known_addresses((pod,), cidrs):
                if not self._known[address]:
                    family = Family.of(address)
                    bisect.insort(self._holes[family], int(address))
                    moved.add(family)
                self._known[address] += 1
        return moved

    def _rebuild(self, families: tuple[Family, ...], table: str, mode: Mode) -> RulesetDelta | None:
        before = self._ruleset(table, mode)
        self.families = families
        self.sets = tuple(new_pod_set(self.node, f, range_without(self._cidrs, self._holes[f], f)) for f in families)
        after = self._ruleset(table, mode)
        return None if after == before else diff(before, after)

    def _ruleset(self, table: str, mode: Mode) -> Ruleset:
        return Ruleset(table, self.node, mode, sets=self.sets, maps=(), chains=base_chains(mode, self.families))
