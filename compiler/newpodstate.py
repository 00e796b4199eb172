"""The new-pod sets of one node over a sequence of snapshots, for the incremental compiler.

What :func:`newpods.new_pod_sets` derives from a whole snapshot, followed by the change: the
pods that came or went (by object identity, as :func:`policy.snapshots.changed_objects` finds them)
move the count of each known address inside the node's pod range, and the sets are rebuilt
only when an address became known or unknown, the node's pod CIDRs changed, or the window
opened or closed. A rebuild costs as much as the node's range holds known pods.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from policyctl.policy.cluster import Cluster
from policyctl.policy.model import Family, IPAddress, IPNetwork, Pod
from policyctl.policy.snapshots import changed_objects

from .chains import base_chains
from .delta import RulesetDelta, diff
from .newpods import NewPodWindow, known_addresses, new_pod_set, unknown_elements, window_families
from .ruleset import Mode, Ruleset, Set


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

    def follow(self, cluster: Cluster, table: str, mode: Mode) -> RulesetDelta | None:
        """Advance to ``cluster``; the change of the sets and base chains, None when nothing
        changed."""
        if self.window is NewPodWindow.ALLOW:
            return None
        this = cluster.node_by_name.get(self.node)
        cidrs = this.pod_cidrs if this is not None else ()
        moved = cidrs != self._cidrs
        if moved:
            self._cidrs = cidrs
            self._known = Counter(known_addresses(cluster.pods, cidrs))
        else:
            gone, came = changed_objects(self._pods_seen, cluster.pods)
            for pod in gone:
                for address in known_addresses((pod,), cidrs):
                    self._known[address] -= 1
                    if not self._known[address]:
                        del self._known[address]
                        moved = True
            for pod in came:
                for address in known_addresses((pod,), cidrs):
                    moved = moved or not self._known[address]
                    self._known[address] += 1
        self._pods_seen = cluster.pods
        families = window_families(cluster, self.node, self.window)
        if not moved and families == self.families:
            return None
        before = self._ruleset(table, mode)
        self.families = families
        self.sets = tuple(new_pod_set(self.node, f, unknown_elements(cidrs, self._known, f)) for f in families)
        return diff(before, self._ruleset(table, mode))

    def _ruleset(self, table: str, mode: Mode) -> Ruleset:
        return Ruleset(table, self.node, mode, sets=self.sets, maps=(), chains=base_chains(mode, self.families))
