"""A row of a class table stored as its most common value and the cells that differ.

Policies make most class pairs answer alike (a namespace's default deny leaves every class
outside the few its rules name at "nothing allowed"), so the relation and the tables built on
it keep one default per row and only the exceptions. Reading a cell is one dictionary lookup;
the full row is still a :class:`~collections.abc.Sequence` for callers that walk it.

Invariant: no exception equals the default, so two rows of the same width are equal exactly
when their defaults and exception maps are, and the exceptions are the only cells that can
tell two columns apart within rows of equal default.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, overload

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SparseRow(Sequence[T], Generic[T]):
    """``width`` cells: ``exceptions.get(i, default)`` for column ``i``."""

    width: int
    default: T
    exceptions: Mapping[int, T]

    @classmethod
    def of(cls, width: int, default: T, cells: Iterable[tuple[int, T]]) -> SparseRow[T]:
        """A row from ``default`` and some cells, the cells equal to the default dropped."""
        return cls(width, default, {i: v for i, v in cells if v != default})

    @classmethod
    def dense(cls, cells: Sequence[T]) -> SparseRow[T]:
        """A row from every cell, its most common value (first seen on ties) as the default."""
        if not cells:
            raise ValueError("a dense row needs at least one cell")
        default = Counter(cells).most_common(1)[0][0]
        return cls.of(len(cells), default, enumerate(cells))

    def __len__(self) -> int:
        return self.width

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...

    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.width))]
        if not -self.width <= index < self.width:
            raise IndexError(index)
        return self.exceptions.get(index % self.width, self.default)

    def __iter__(self) -> Iterator[T]:
        get, default = self.exceptions.get, self.default
        for i in range(self.width):
            yield get(i, default)
