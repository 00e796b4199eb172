"""The semantic diff of two snapshots: flows added and removed, by workload and port range.

Two manifests can differ in text and mean the same, or differ by one peer and open a whole
namespace; this compares what they *allow* (:mod:`verifier.comparison`) in both directions and
groups the differences by (source workload, destination workload, family), each with the
merged port ranges and one concrete pod pair; pods without a workload are named by their group
of equivalent pods (the first pod and how many more), so the report grows with the groups a
change touches, never with pod pairs. Outside addresses appear as the first address of
their range. Pods that exist on one side only are listed apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from policyctl.policy.endpoints import workload_label
from policyctl.policy.model import Cluster, Family, IPAddress, Pod

from .comparison import Difference, differences, policy_differences, same_ends
from .portsets import PortSet
from .relation import Relation, cluster_families


@dataclass(frozen=True, slots=True)
class FlowChange:
    """Ports from ``source`` to ``destination`` (workloads, pods or addresses) in ``family``
    that one snapshot allows and the other does not; ``example`` is one concrete pair."""

    source: str
    destination: str
    family: Family
    ports: PortSet
    example: tuple[str, str]


@dataclass(frozen=True, slots=True)
class FlowDiff:
    added: tuple[FlowChange, ...]
    removed: tuple[FlowChange, ...]
    pods_added: tuple[str, ...] = ()
    pods_removed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.pods_added or self.pods_removed)


def _unit(end: Pod | IPAddress) -> str:
    return workload_label(end) if isinstance(end, Pod) else str(end)


def _name(end: Pod | IPAddress) -> str:
    return end.key if isinstance(end, Pod) else str(end)


def _units(ends: tuple[Pod | IPAddress, ...]) -> dict[str, set[str]]:
    """The ends of one side of a difference by the unit a reader names them by: a pod's
    workload; for pods without one, the group of equivalent pods of one namespace (the
    difference's ends all have the same views), named by its first pod and how many more;
    an address by itself."""
    found: dict[str, set[str]] = {}
    loose: dict[str, list[str]] = {}
    for end in ends:
        if isinstance(end, Pod) and not end.workload:
            loose.setdefault(end.namespace, []).append(end.key)
        else:
            found.setdefault(_unit(end), set()).add(_name(end))
    for keys in loose.values():
        keys.sort()
        more = len(keys) - 1
        label = keys[0] if not more else f"{keys[0]} and {more} equivalent pod{'s' if more > 1 else ''}"
        found.setdefault(label, set()).update(keys)
    return found


def _unit_pairs(
    sources: tuple[Pod | IPAddress, ...], destinations: tuple[Pod | IPAddress, ...]
) -> set[tuple[str, str]]:
    """Unit pairs (:func:`_units`) of every two *different* ends: a unit pair made only of one
    pod with itself is left out (a pod reaching itself is never a flow)."""
    by_source = _units(sources)
    by_destination = _units(destinations)
    return {
        (s, d)
        for s, source_names in by_source.items()
        for d, destination_names in by_destination.items()
        if not (len(source_names) == 1 and source_names == destination_names)
    }


def _grouped(found: list[Difference]) -> tuple[FlowChange, ...]:
    merged: dict[tuple[str, str, Family], tuple[PortSet, tuple[str, str]]] = {}
    for difference in found:
        sources = difference.sources or (difference.source,)
        destinations = difference.destinations or (difference.destination,)
        if _name(difference.source) == _name(difference.destination):
            units = {(_unit(difference.source), _unit(difference.destination))}
        else:
            units = _unit_pairs(sources, destinations)
        for source, destination in units:
            key = (source, destination, difference.family)
            ports, example = merged.get(key, (PortSet(), (_name(difference.source), _name(difference.destination))))
            merged[key] = (ports | difference.ports, example)
    return tuple(
        FlowChange(s, d, f, ports, example)
        for (s, d, f), (ports, example) in sorted(merged.items(), key=lambda i: (i[0][0], i[0][1], i[0][2].value))
    )


def semantic_diff(old: Cluster, new: Cluster) -> FlowDiff:
    """Flows ``new`` allows that ``old`` did not (added) and the reverse (removed)."""
    families = tuple(f for f in Family if f in set(cluster_families(old)) | set(cluster_families(new)))
    a, b = Relation(old, families=families), Relation(new, families=families)
    compared = policy_differences if same_ends(old, new) else differences
    return FlowDiff(
        added=_grouped(list(compared(b, a))),
        removed=_grouped(list(compared(a, b))),
        pods_added=tuple(sorted(set(new.pod_by_key) - set(old.pod_by_key))),
        pods_removed=tuple(sorted(set(old.pod_by_key) - set(new.pod_by_key))),
    )
