"""Figures: one measured value, the baseline it is compared with, and the target it must meet.

Every figure of the suite is compared with a baseline measured in the same run on the same
machine (no ruleset, a linear rule list, a from-scratch apply, another analyzer), because
absolute numbers from a shared two-core machine mean little on their own while ratios hold.
A figure that cannot be measured here is still reported, with ``value`` None and the reason,
so a missing measurement is never mistaken for a good one.

Invariants: ``ratio`` is ``value / baseline`` when both are numbers; ``met`` is None unless
both a value and a target exist; JSON output has sorted keys.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Target:
    """``value < limit`` (``below=True``) or ``value >= limit``; on the value, or on the
    ratio when ``on_ratio``."""

    limit: float
    below: bool = True
    on_ratio: bool = False

    def met(self, value: float, ratio: float | None) -> bool | None:
        subject = ratio if self.on_ratio else value
        if subject is None:
            return None
        return subject < self.limit if self.below else subject >= self.limit

    def __str__(self) -> str:
        what = "ratio" if self.on_ratio else "value"
        return f"{what} {'<' if self.below else '>='} {self.limit:g}"


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure of the suite. ``baseline_name`` says what the baseline is."""

    name: str
    unit: str
    value: float | None
    baseline: float | None = None
    baseline_name: str = ""
    target: Target | None = None
    detail: str = ""
    unavailable: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.value is None or self.target is None:
            return None
        return self.target.met(self.value, self.ratio)

    def to_json(self) -> dict[str, Any]:
        return {
            "value": _round(self.value),
            "unit": self.unit,
            "baseline": _round(self.baseline),
            "baseline_name": self.baseline_name,
            "ratio": _round(self.ratio),
            "target": str(self.target) if self.target else None,
            "met": self.met,
            "detail": self.detail,
            "unavailable": self.unavailable or None,
        }


def unavailable(name: str, unit: str, reason: str, *, target: Target | None = None) -> Figure:
    return Figure(name, unit, None, target=target, unavailable=reason)


def _round(value: float | None) -> float | None:
    if value is None:
        return None
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, max(3, 3 - int(math.floor(math.log10(abs(value))))))


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by the nearest-rank method (p99 of 20 samples is the largest)."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def machine() -> dict[str, Any]:
    """What a figure was measured on: shared machines make the load part of the result."""
    return {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)}


def print_report(figures: Sequence[Figure]) -> None:
    """A stand-alone bench's JSON on stdout: the machine and its figures by name."""
    report = {"machine": machine(), "figures": {f.name: f.to_json() for f in sorted(figures, key=lambda f: f.name)}}
    json.dump(report, sys.stdout, indent=2, sort_keys=True)
    print()
