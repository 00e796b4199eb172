"""Every probe case of the project (the probe-case spec's examples included) passes on the compiled engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from policyctl.compiler.engine import CompiledEngine
from policyctl.probecases.cases import load_probe_case
from policyctl.probecases.runner import run_case

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted((ROOT / "tests" / "cases").rglob("*.yaml"))


def test_there_are_cases_to_run() -> None:
    assert len(CASES) >= 3


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_probe_case_passes_on_compiled_engine(path: Path) -> None:
    result = run_case(load_probe_case(path), CompiledEngine())
    mismatches = [m for step in result.steps for o in step for m in o.mismatches]
    assert result.passed, mismatches[:5]
