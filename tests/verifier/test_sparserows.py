"""Sparse rows read back as the dense rows they stand for."""

from __future__ import annotations

import pytest

from policyctl.verifier.sparserows import SparseRow


@pytest.mark.parametrize(
    ("cells", "default", "exceptions"),
    [
        pytest.param(["n", "n", "a", "n"], "n", {2: "a"}, id="most-common-is-the-default"),
        pytest.param(["a", "a", "a"], "a", {}, id="uniform-row-has-no-exceptions"),
        pytest.param(["a", "b"], "a", {1: "b"}, id="tie-takes-the-first-value"),
        pytest.param([True, False, True, True], True, {1: False}, id="booleans"),
    ],
)
def test_dense_rows_keep_only_cells_unlike_the_default(cells: list, default: object, exceptions: dict) -> None:
    row = SparseRow.dense(cells)
    assert (row.default, dict(row.exceptions)) == (default, exceptions)
    assert list(row) == cells and len(row) == len(cells)
    assert [row[i] for i in range(-len(cells), 0)] == cells
    assert row[1:3] == cells[1:3]


@pytest.mark.parametrize(
    ("width", "default", "cells", "expected"),
    [
        pytest.param(3, "n", [(0, "n"), (2, "a")], ["n", "n", "a"], id="cells-equal-to-the-default-dropped"),
        pytest.param(2, "n", [], ["n", "n"], id="no-cells"),
    ],
)
def test_rows_from_a_default_and_cells(width: int, default: str, cells: list, expected: list) -> None:
    row = SparseRow.of(width, default, cells)
    assert list(row) == expected
    assert all(v != default for v in row.exceptions.values())


@pytest.mark.parametrize("index", [3, -4])
def test_reading_past_the_width_is_an_index_error(index: int) -> None:
    with pytest.raises(IndexError):
        SparseRow.of(3, "n", [])[index]
