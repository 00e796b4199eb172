"""Pods grouped by view, without the relation's port table: what proofs over a few classes need.

An assertion, a redundancy check or a lateral-movement search asks about the classes a few
selectors name, not about every pair of classes, so building the whole class matrix
(:meth:`verifier.relation.Relation.of`, one port set per row and column of sides) would cost
more than the question. :class:`ViewClasses` groups the pods of one family by
:class:`~verifier.index.View` (the same grouping as the relation's classes), and ports between
two classes come from the relation's memoised :class:`~verifier.decisions.Decider`, only for
the pairs asked.

The two pod-pair bypasses (a pod reaching its own address; a hostNetwork pod and a pod on its
node) are decided here from the views, as :meth:`Relation.bypass` does, so that no lookup forces
the whole matrix.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from policyctl.policy.model import Family, Pod

from .index import EndKind, View
from .portsets import ALL, NONE, PortSet
from .relation import ExternalClass, Relation


@dataclass(frozen=True, slots=True)
class ViewClasses:
    """Pods of one family grouped by view: ``members[i]`` share ``views[i]`` (key order)."""

    family: Family
    views: tuple[View, ...]
    members: tuple[tuple[Pod, ...], ...]
    class_of: dict[str, int]

    def view(self, pod: Pod) -> View:
        return self.views[self.class_of[pod.key]]

    def bypass(self, source: Pod, destination: Pod) -> PortSet | None:
        """The answer when a pod-pair bypass applies, else None (see the module docstring)."""
        if source.key == destination.key:
            return NONE if self.view(source).impossible else ALL
        if source.host_network and destination.node is not None and source.node == destination.node:
            return NONE if self.view(source).impossible or self.view(destination).impossible else ALL
        return None

    def ordinary_pair(self, sources: Sequence[Pod], destinations: Sequence[Pod]) -> tuple[Pod, Pod] | None:
        """A (source, destination) pair of different pods no bypass applies to, if any: at
        most two destinations are tried per ordinary source, every one per hostNetwork source."""
        for source in sources:
            tried = destinations if source.host_network else destinations[:2]
            for destination in tried:
                if self.bypass(source, destination) is None:
                    return source, destination
        return None


_CACHE: weakref.WeakKeyDictionary[Relation, dict[Family, ViewClasses]] = weakref.WeakKeyDictionary()


def view_classes(relation: Relation, family: Family) -> ViewClasses:
    """The pods of ``relation`` grouped by view in ``family`` (computed once per relation)."""
    found = _CACHE.setdefault(relation, {})
    classes = found.get(family)
    if classes is None:
        grouped: dict[View, list[Pod]] = {}
        for pod in relation.pods:
            grouped.setdefault(relation.index.view_of_pod(pod, family), []).append(pod)
        views = tuple(grouped)
        members = tuple(tuple(grouped[v]) for v in views)
        class_of = {p.key: i for i, group in enumerate(members) for p in group}
        classes = found[family] = ViewClasses(family, views, members, class_of)
    return classes


def ports_between(relation: Relation, classes: ViewClasses, source: Pod, destination: Pod) -> PortSet:
    """``Relation.ports`` from the view classes: the bypasses, else the decider on two views."""
    found = classes.bypass(source, destination)
    if found is not None:
        return found
    return relation.decider.ports(classes.view(source), classes.view(destination))


@dataclass(frozen=True, slots=True)
class SelectorClasses:
    """Inverted indexes of one family's ends: per scoped-selector id the pod classes whose view
    holds it, per ipBlock id the pod classes and outside classes whose addresses it contains."""

    by_selector: dict[int, tuple[int, ...]]
    by_block: dict[int, tuple[int, ...]]
    outside_by_block: dict[int, tuple[int, ...]]


def selector_classes(classes: ViewClasses, outside: Sequence[ExternalClass]) -> SelectorClasses:
    by_selector: dict[int, list[int]] = {}
    by_block: dict[int, list[int]] = {}
    outside_by_block: dict[int, list[int]] = {}
    for i, view in enumerate(classes.views):
        if view.kind is EndKind.POD:
            for selector in view.selectors:
                by_selector.setdefault(selector, []).append(i)
        for block in view.blocks or ():
            by_block.setdefault(block, []).append(i)
    for i, group in enumerate(outside):
        for block in group.view.blocks or ():
            outside_by_block.setdefault(block, []).append(i)

    def frozen(found: dict[int, list[int]]) -> dict[int, tuple[int, ...]]:
        return {k: tuple(v) for k, v in found.items()}

    return SelectorClasses(frozen(by_selector), frozen(by_block), frozen(outside_by_block))
