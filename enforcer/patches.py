"""Read-only mappings patched without copying: what a delta makes of a large set's elements.

A delta changes a handful of elements of a set or map that may hold thousands (the peer maps
of a node hold one entry per pod address in the cluster). Copying the whole mapping to apply
a few changes makes each event cost as much as the set is large; a :class:`PatchedMapping`
instead keeps the unchanged mapping as its base and only the changes beside it, so patching
costs as much as the changes (plus the changes still pending from earlier patches). Once the
pending changes outgrow a fraction of the base, :func:`settled` folds them into a fresh
``dict``, which keeps lookups and iteration cheap and bounds the cost of each patch; the fold
costs one copy of the mapping, spread over the many patches that came before it. Folding when
the pending changes exceed twice the square root of the base's size balances the two: a patch
copies O(sqrt n) pending changes, and a fold's O(n) copy comes once every O(sqrt n) changes.

The fold is a step of its own because its copy is the one cost here that grows with the set
(1.5 ms for a 40k-element set; the heaviest pod delete at 100k pods touches ~45 such sets): a
caller on the way from an event to the kernel patches, and settles once the kernel has the
change. A patch folds by itself only when the pending changes reach four times the bound, so
a caller that never settles still has every patch bounded.

Invariants: the base is never modified (a patch or a fold leaves the mapping it was made from
as it was); iteration order is that of a ``dict`` the same changes were applied to in place (a
key removed and added again moves to the end); a patched mapping equals every ``Mapping`` with
the same items, and so does its settled form.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from itertools import chain
from math import isqrt
from typing import Any, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Pending changes are folded into a plain ``dict`` when they exceed this many, or twice the
#: square root of the base's size, whichever is larger.
FOLD_MINIMUM = 32
#: A patch folds by itself once the pending changes exceed this many times that bound.
UNSETTLED_FACTOR = 4


def _bound(base: Mapping[Any, Any]) -> int:
    return max(FOLD_MINIMUM, 2 * isqrt(len(base)))


class PatchedMapping(Mapping[K, V]):
    """``base`` without the keys in ``removed``, with the items of ``added`` on top.

    ``removed`` holds only keys of ``base`` and none of ``added``; an ``added`` key may also be
    a key of ``base`` (its value replaced, its place moved to the end)."""

    __slots__ = ("_base", "_added", "_removed", "_length")

    def __init__(
        self, base: Mapping[K, V], added: dict[K, V], removed: frozenset[K], *, length: int | None = None
    ) -> None:
        self._base = base
        self._added = added
        self._removed = removed
        if length is None:
            length = len(base) - len(removed) + sum(1 for key in added if key not in base)
        self._length = length

    def __getitem__(self, key: K) -> V:
        added = self._added
        if key in added:
            return added[key]
        if key in self._removed:
            raise KeyError(key)
        return self._base[key]

    def get(self, key: K, default: Any = None) -> Any:
        added = self._added
        if key in added:
            return added[key]
        if key in self._removed:
            return default
        return self._base.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._added or (key not in self._removed and key in self._base)

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[K]:
        added, removed = self._added, self._removed
        kept = (key for key in self._base if key not in removed and key not in added)
        return chain(kept, added)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.items())!r})"

    @property
    def pending(self) -> int:
        """Changes held beside the base."""
        return len(self._added) + len(self._removed)


def patched(mapping: Mapping[K, V], *, removed: Iterable[K] = (), added: Iterable[tuple[K, V]] = ()) -> Mapping[K, V]:
    """``mapping`` with the keys in ``removed`` taken out, then the items of ``added`` put in
    (a key in both ends up with its new value, at the end). ``mapping`` is left unchanged; the
    result shares it, unless the changes pending on it have reached :data:`UNSETTLED_FACTOR`
    times the bound :func:`settled` keeps, when they are folded into a ``dict`` here.
    Removing a key ``mapping`` lacks raises ``KeyError``, as ``del`` on a ``dict`` does."""
    length = len(mapping)
    if isinstance(mapping, PatchedMapping):
        base: Mapping[K, V] = mapping._base
        pending_added = dict(mapping._added)
        pending_removed = set(mapping._removed)
    else:
        base, pending_added, pending_removed = mapping, {}, set()
    for key in removed:
        if key in pending_added:
            del pending_added[key]
            if key in base:
                pending_removed.add(key)
        elif key in base and key not in pending_removed:
            pending_removed.add(key)
        else:
            raise KeyError(key)
        length -= 1
    for key, value in added:
        if key in pending_added:
            del pending_added[key]
        elif key in pending_removed:
            pending_removed.discard(key)
            length += 1
        elif key not in base:
            length += 1
        pending_added[key] = value
    if len(pending_added) + len(pending_removed) > UNSETTLED_FACTOR * _bound(base):
        return _folded(base, pending_added, pending_removed)
    return PatchedMapping(base, pending_added, frozenset(pending_removed), length=length)


def settled(mapping: Mapping[K, V]) -> Mapping[K, V]:
    """``mapping`` itself, or, when it is patched and its pending changes exceed the bound, the
    same items folded into a fresh ``dict`` (the base is left as it was)."""
    if isinstance(mapping, PatchedMapping) and mapping.pending > _bound(mapping._base):
        return _folded(mapping._base, mapping._added, mapping._removed)
    return mapping


def _folded(base: Mapping[K, V], added: Mapping[K, V], removed: Iterable[K]) -> dict[K, V]:
    result = dict(base)
    for key in removed:
        del result[key]
    for key, value in added.items():
        result.pop(key, None)
        result[key] = value
    return result
