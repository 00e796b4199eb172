"""Snapshot tuples that know how they differ from the snapshot they follow.

Consumers of a stream of cluster snapshots (the node compiler, the new-pod window) find what
changed between two snapshots by object identity: snapshots share every object that did not
change. Comparing two tuples of 100,000 pods costs ~2.7 ms even at C speed, on every event,
for an event that changed one pod. The store that builds the snapshots already knows which
objects it put in and took out since the last one; a :class:`Successor` carries that, so a
consumer that holds exactly the previous snapshot reads the change instead of searching for
it. Anyone else (another base, or a tuple built elsewhere) compares as before.
"""

from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SnapshotChange(Generic[T]):
    """``gone``: the objects of ``base`` that the successor lacks; ``came``: its objects that
    ``base`` lacks; both by identity, each in its tuple's order."""

    base: tuple[T, ...]
    gone: tuple[T, ...]
    came: tuple[T, ...]


class Successor(tuple[T, ...]):
    """A snapshot tuple, with its :class:`SnapshotChange` from the snapshot before it when its
    builder knows it. Only the newest successor keeps its change (and so the base it names):
    the builder drops the previous one's when it makes the next, so no chain of old snapshots
    is kept alive."""

    change: SnapshotChange[T] | None = None


def changed_objects(old: tuple[T, ...], new: tuple[T, ...]) -> tuple[list[T], list[T]]:
    """The objects of ``old`` that are not in ``new`` and those of ``new`` not in ``old``, by
    identity, each in its tuple's order. Read from ``new``'s change when it follows ``old``;
    otherwise the common prefix and suffix (found at C speed) are skipped, as snapshots keep
    unchanged objects and their order, and only the window between them is compared."""
    change = getattr(new, "change", None)
    if change is not None and change.base is old:
        return list(change.gone), list(change.came)
    return identity_diff(old, new)


def identity_diff(old: tuple[T, ...], new: tuple[T, ...]) -> tuple[list[T], list[T]]:
    """:func:`changed_objects` found by comparing the tuples."""
    head = next(itertools.compress(itertools.count(), map(operator.is_not, old, new)), min(len(old), len(new)))
    room = min(len(old), len(new)) - head
    tail = next(itertools.compress(itertools.count(), map(operator.is_not, reversed(old), reversed(new))), room)
    tail = min(tail, room)
    old_window, new_window = old[head : len(old) - tail], new[head : len(new) - tail]
    old_ids, new_ids = set(map(id, old_window)), set(map(id, new_window))
    return [o for o in old_window if id(o) not in new_ids], [o for o in new_window if id(o) not in old_ids]
