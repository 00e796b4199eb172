"""Pods that do not exist yet but could: the label space, cut where selectors can tell.

A proof "for any pod matching these selectors" cannot enumerate label maps, so it enumerates
what matters: for every label key some selector mentions, the values some requirement names,
one value none names, and (for pod labels) the key being absent. A requirement's verdict only
ever depends on those choices ("In"/"NotIn" on the value, "Exists"/"DoesNotExist" on presence),
so every combination of selector outcomes that any label map can produce is produced by one of
these, and duplicates are folded on the way (keys are processed one at a time and states are
keyed by the set of selectors already failed).

Namespaces are the existing ones, with their labels, plus a namespace that does not exist yet,
with any labels selectors can tell apart and a name (``kubernetes.io/metadata.name``, always
set, never removable) that no existing namespace has: no policy lives there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from policyctl.policy.model import NAMESPACE_NAME_LABEL, Labels, LabelSelector
from policyctl.policy.cluster import Cluster

FRESH_NAMESPACE = "new-namespace"


def _fresh(taken: set[str], stem: str) -> str:
    candidate, number = stem, 0
    while candidate in taken:
        number += 1
        candidate = f"{stem}-{number}"
    return candidate


def label_states(
    selectors: Sequence[LabelSelector], *, forced: dict[str, tuple[str, ...]] | None = None
) -> tuple[tuple[frozenset[int], Labels], ...]:
    """One witness label map per reachable set of failing selectors (indices into
    ``selectors``), sorted. ``forced`` gives keys whose values are limited to the listed ones
    and that are never absent (a namespace's name label)."""
    forced = forced or {}
    keys = sorted({r.key for s in selectors for r in s.requirements} | set(forced))
    states: dict[frozenset[int], dict[str, str]] = {frozenset(): {}}
    for key in keys:
        if key in forced:
            options: list[str | None] = list(forced[key])
        else:
            named = {v for s in selectors for r in s.requirements if r.key == key for v in r.values}
            options = [*sorted(named), _fresh(named, "other"), None]
        grown: dict[frozenset[int], dict[str, str]] = {}
        for failed, labels in states.items():
            for value in options:
                seen = {} if value is None else {key: value}
                more = {
                    i for i, s in enumerate(selectors) for r in s.requirements if r.key == key and not r.matches(seen)
                }
                grown.setdefault(failed | more, {**labels, **seen})
        states = grown
    witnesses = ((failed, Labels(labels)) for failed, labels in states.items())
    return tuple(sorted(witnesses, key=lambda s: (sorted(s[0]), tuple(s[1].items()))))


@dataclass(frozen=True, slots=True)
class NamespaceChoice:
    """A namespace a new pod could be created in: ``exists`` False for one not created yet."""

    name: str
    labels: Labels
    exists: bool


def namespace_choices(
    cluster: Cluster, selectors: Sequence[LabelSelector], *, names: Sequence[str] = ()
) -> tuple[NamespaceChoice, ...]:
    """Every existing namespace (defined, or named by a pod or policy) and one witness new
    namespace per combination of ``selectors`` outcomes a new namespace can produce; ``names``
    are more names a new namespace may be given (e.g. one an assertion names)."""
    existing = sorted(
        {n.name for n in cluster.namespaces}
        | {p.namespace for p in cluster.pods}
        | {p.namespace for p in cluster.policies}
    )
    found = [NamespaceChoice(n, cluster.namespace_labels(n), True) for n in existing]
    named = {v for s in selectors for r in s.requirements if r.key == NAMESPACE_NAME_LABEL for v in r.values}
    mentioned = named | set(names)
    taken = set(existing)
    candidates = (*sorted(mentioned - taken), _fresh(taken | mentioned, FRESH_NAMESPACE))
    for name in candidates:
        for _, labels in label_states(selectors, forced={NAMESPACE_NAME_LABEL: (name,)}):
            found.append(NamespaceChoice(name, labels, False))
    return tuple(found)


def pod_label_choices(selectors: Sequence[LabelSelector]) -> Iterator[Labels]:
    """One witness pod label map per combination of ``selectors`` outcomes."""
    for _, labels in label_states(selectors):
        yield labels
