"""Figures: nearest-rank quantiles, ratios against the baseline and targets."""

from __future__ import annotations

import pytest

from policyctl.bench.figures import Figure, Target, median, quantile

QUANTILES = {
    "p50 of four is the second": ([4.0, 1.0, 3.0, 2.0], 0.5, 2.0),
    "p99 of twenty is the largest": ([float(i) for i in range(20)], 0.99, 19.0),
    "p99 of a hundred and one is the hundredth": ([float(i) for i in range(1, 102)], 0.99, 100.0),
    "one sample": ([7.0], 0.99, 7.0),
}


@pytest.mark.parametrize(("values", "q", "expected"), QUANTILES.values(), ids=QUANTILES.keys())
def test_quantile_is_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert quantile(values, q) == expected


def test_median_of_even_count_is_the_mean_of_the_middle_two() -> None:
    assert median([1.0, 10.0, 2.0, 3.0]) == 2.5


TARGETS = {
    "below limit met": (Figure("x", "s", 0.4, target=Target(0.5)), True),
    "at limit not below": (Figure("x", "s", 0.5, target=Target(0.5)), False),
    "ratio at least met": (
        Figure("x", "conn/s", 95.0, baseline=100.0, target=Target(0.95, below=False, on_ratio=True)),
        True,
    ),
    "ratio short": (
        Figure("x", "conn/s", 89.0, baseline=100.0, target=Target(0.90, below=False, on_ratio=True)),
        False,
    ),
    "ratio without baseline is unknown": (
        Figure("x", "conn/s", 89.0, target=Target(0.9, below=False, on_ratio=True)),
        None,
    ),
    "no value is unknown": (Figure("x", "s", None, target=Target(1.0)), None),
}


@pytest.mark.parametrize(("figure", "met"), TARGETS.values(), ids=TARGETS.keys())
def test_target_is_judged_on_value_or_ratio(figure: Figure, met: bool | None) -> None:
    assert figure.met is met


def test_json_has_ratio_of_value_to_baseline() -> None:
    out = Figure("x", "s", 2.0, baseline=8.0, baseline_name="b").to_json()
    assert (out["ratio"], out["baseline_name"], out["unavailable"]) == (0.25, "b", None)
