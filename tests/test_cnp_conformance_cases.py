"""The network-policy-api conformance suite, transcribed as probe cases in
``tests/cases/cnp-conformance/``, passes on the model engine.

Each case is one upstream ``ConformanceTest`` (Admin and Baseline ClusterNetworkPolicy tiers,
standard and experimental features); its expected cells are upstream's ``PokeServer`` assertions,
never this project's output. A case is loaded exactly as ``policyctl probe`` loads it
(:func:`probecases.cases.load_probe_case`) and run on the reference semantics.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from policyctl.probecases.cases import load_probe_case
from policyctl.probecases.runner import ModelEngine, run_case

CORPUS = Path(__file__).resolve().parent / "cases" / "cnp-conformance"
CASES = sorted(CORPUS.glob("*.yaml"))

#: The ``ShortName`` of every ``ConformanceTest`` in upstream's ``conformance/tests`` and the number
#: of its ``t.Run`` subtests.
UPSTREAM_TESTS = {
    "CNPAdminTierEgressInlineCIDRPeers": 2,
    "CNPAdminTierEgressNamedPort": 1,
    "CNPAdminTierEgressNodePeers": 3,
    "CNPAdminTierEgressSCTP": 6,
    "CNPAdminTierEgressTCP": 6,
    "CNPAdminTierEgressUDP": 6,
    "CNPAdminTierGress": 6,
    "CNPAdminTierIngressNamedPort": 1,
    "CNPAdminTierIngressSCTP": 6,
    "CNPAdminTierIngressTCP": 6,
    "CNPAdminTierIngressUDP": 6,
    "CNPAdminTierIntegration": 6,
    "CNPAdminTierPriorityField": 3,
    "CNPBaselineTierEgressInlineCIDRPeers": 2,
    "CNPBaselineTierEgressNamedPort": 1,
    "CNPBaselineTierEgressNodePeers": 2,
    "CNPBaselineTierEgressSCTP": 4,
    "CNPBaselineTierEgressTCP": 4,
    "CNPBaselineTierEgressUDP": 4,
    "CNPBaselineTierGress": 4,
    "CNPBaselineTierIngressNamedPort": 1,
    "CNPBaselineTierIngressSCTP": 4,
    "CNPBaselineTierIngressTCP": 4,
    "CNPBaselineTierIngressUDP": 4,
}

def test_every_upstream_test_has_one_case_named_after_it() -> None:
    assert sorted(p.stem for p in CASES) == sorted(UPSTREAM_TESTS)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_each_upstream_subtest_is_named_in_the_case_header(path: Path) -> None:
    header = " ".join(line.lstrip("# ") for line in path.read_text().splitlines() if line.startswith("#"))
    named = set(re.findall(r't\.Run\("(.+?)"\)', header))
    assert len(named) == UPSTREAM_TESTS[path.stem], named


#: Upstream's ``PokeServer`` calls over all 24 tests; each is one expected cell of one probe.
UPSTREAM_POKES = 301


def test_expected_cells_are_exactly_upstreams_assertions() -> None:
    """As many cells as upstream pokes, none of a pod to itself (upstream never pokes a pod's own
    address): the corpus states what upstream asserts and nothing more."""
    cells = [
        (source, destination)
        for path in CASES
        for step in yaml.safe_load(path.read_text())["steps"]
        for probe in step.get("probes", [])
        for source, row in probe["expected"].items()
        for destination in row
    ]
    assert len(cells) == UPSTREAM_POKES
    assert all(source != destination for source, destination in cells)


def test_the_cases_are_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(CORPUS / "generate.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_passes_on_the_model_engine(path: Path) -> None:
    result = run_case(load_probe_case(path), ModelEngine())
    mismatches = [
        (step, outcome.probe.probe, mismatch)
        for step, outcomes in enumerate(result.steps)
        for outcome in outcomes
        for mismatch in outcome.mismatches
    ]
    assert result.passed, f"{path.name}: {mismatches[:10]}"
    assert any(outcome.probe.expected for step in result.steps for outcome in step)
