"""The semantic diff of two snapshots: flows added and removed, by workload and port range.

Two manifests can differ in text and mean the same, or differ by one peer and open a whole
namespace; this compares what they *allow* (:mod:`verifier.comparison`) in both directions and
groups the differences by (source workload, destination workload, family), each with the
merged port ranges and one concrete pod pair. Pods without a workload are grouped per
namespace: the pods of one difference share their views, and groups of one namespace with the
same other end, family and ports are folded into one (named by the first pod and how many
more), so the report grows with what a change touches, never with pod pairs. Outside addresses
appear as the first address of their range. Pods that exist on one side only are listed apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from policyctl.policy.endpoints import workload_label
from policyctl.policy.model import Family, IPAddress, Pod
from policyctl.policy.cluster import Cluster

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
    source_pods: tuple[str, ...] = ()
    destination_pods: tuple[str, ...] = ()
    """The pods a ``source``/``destination`` made of pods without a workload stands for."""


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


Unit = tuple[Literal["unit"], str] | tuple[Literal["pods"], str, frozenset[str]]
"""How a reader names ends: ``("unit", label)`` for a workload or an address, ``("pods",
namespace, keys)`` for pods without a workload."""


def _units(ends: tuple[Pod | IPAddress, ...], outside: str = "") -> dict[Unit, set[str]]:
    """The ends of one side of a difference by unit: a pod's workload; pods without one
    grouped per namespace (the difference's ends all have the same views); an address by the
    ranges it stands for (``outside``) when known."""
    found: dict[Unit, set[str]] = {}
    loose: dict[str, set[str]] = {}
    for end in ends:
        if isinstance(end, Pod) and not end.workload:
            loose.setdefault(end.namespace, set()).add(end.key)
        elif not isinstance(end, Pod) and outside:
            found.setdefault(("unit", outside), set()).add(_name(end))
        else:
            found.setdefault(("unit", _unit(end)), set()).add(_name(end))
    for namespace, keys in loose.items():
        found[("pods", namespace, frozenset(keys))] = keys
    return found


def _unit_pairs(
    sources: tuple[Pod | IPAddress, ...], destinations: tuple[Pod | IPAddress, ...], outside: str = ""
) -> set[tuple[Unit, Unit]]:
    """Unit pairs (:func:`_units`) of every two *different* ends: a unit pair made only of one
    pod with itself is left out (a pod reaching itself is never a flow)."""
    by_source = _units(sources, outside)
    by_destination = _units(destinations, outside)
    return {
        (s, d)
        for s, source_names in by_source.items()
        for d, destination_names in by_destination.items()
        if not (len(source_names) == 1 and source_names == destination_names)
    }


Merged = dict[tuple[Unit, Unit, Family], tuple[PortSet, tuple[str, str]]]


def _fold(merged: Merged, side: int) -> Merged:
    """Pods units of one namespace (on ``side``: 0 sources, 1 destinations) that have the same
    other end, family and ports become one unit: the statement "each of these may now reach
    each of those on these ports" holds for the union."""
    folded: Merged = {}
    pending: dict[tuple[str, Unit, Family, PortSet], tuple[set[str], PortSet, tuple[str, str]]] = {}
    for key, (ports, example) in merged.items():
        unit = key[0] if side == 0 else key[1]
        if unit[0] != "pods":
            folded[key] = (ports, example)
            continue
        group = (unit[1], key[1] if side == 0 else key[0], key[2], ports)
        keys, _, first = pending.get(group, (set(), ports, example))
        pending[group] = (keys | unit[2], ports, min(first, example))
    for (namespace, other, family, _), (keys, ports, example) in pending.items():
        pods: Unit = ("pods", namespace, frozenset(keys))
        folded[(pods, other, family) if side == 0 else (other, pods, family)] = (ports, example)
    return folded


def _label(unit: Unit) -> str:
    if unit[0] != "pods":
        return unit[1]
    keys = sorted(unit[2])
    more = len(keys) - 1
    return keys[0] if not more else f"{keys[0]} and {more} more pod{'s' if more > 1 else ''}"


def _members(unit: Unit) -> tuple[str, ...]:
    return tuple(sorted(unit[2])) if unit[0] == "pods" else ()


def _grouped(found: list[Difference]) -> tuple[FlowChange, ...]:
    merged: Merged = {}
    for difference in found:
        sources = difference.sources or (difference.source,)
        destinations = difference.destinations or (difference.destination,)
        if _name(difference.source) == _name(difference.destination):
            units: set[tuple[Unit, Unit]] = {
                (("unit", _unit(difference.source)), ("unit", _unit(difference.destination)))
            }
        else:
            units = _unit_pairs(sources, destinations, difference.outside)
        for source, destination in units:
            key = (source, destination, difference.family)
            ports, example = merged.get(key, (PortSet(), (_name(difference.source), _name(difference.destination))))
            merged[key] = (ports | difference.ports, example)
    merged = _fold(_fold(merged, 0), 1)
    changes = [
        FlowChange(_label(s), _label(d), f, ports, example, _members(s), _members(d))
        for (s, d, f), (ports, example) in merged.items()
    ]
    return tuple(sorted(changes, key=lambda c: (c.source, c.destination, c.family.value)))


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
