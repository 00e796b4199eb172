"""Every probe case, the shared ones beside the checkout and the project's own, passes on the
model engine: the reference semantics agrees with truth tables reasoned out from the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from policyctl.probecases.cases import load_probe_case
from policyctl.probecases.runner import ModelEngine, run_case

REPO = Path(__file__).resolve().parents[1]
SHARED_CASES = REPO.parent / "shared" / "cases"
OWN_CASES = REPO / "tests" / "cases"

CASES = sorted(OWN_CASES.rglob("*.yaml")) + sorted(SHARED_CASES.glob("*.yaml"))


def _id(path: Path) -> str:
    base = SHARED_CASES if path.is_relative_to(SHARED_CASES) else OWN_CASES
    prefix = "shared/" if base == SHARED_CASES else ""
    return prefix + str(path.relative_to(base))


def test_shared_cases_are_present() -> None:
    if not SHARED_CASES.is_dir():
        pytest.skip(f"{SHARED_CASES} is absent: the shared probe cases live beside the checkout")
    assert list(SHARED_CASES.glob("*.yaml")), f"no probe cases in {SHARED_CASES}"


def test_own_cases_cover_at_least_eight_scenarios() -> None:
    assert len(list(OWN_CASES.glob("*.yaml"))) >= 8


@pytest.mark.parametrize("path", CASES, ids=_id)
def test_case_passes_on_the_model_engine(path: Path) -> None:
    result = run_case(load_probe_case(path), ModelEngine())
    mismatches = [
        (step, o.probe.probe, m) for step, outcomes in enumerate(result.steps) for o in outcomes for m in o.mismatches
    ]
    assert result.passed, f"{path}: {mismatches[:10]}"
    assert any(o.probe.expected for step in result.steps for o in step), "a case must expect something"
