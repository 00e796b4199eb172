"""Running a probe case on an engine, and the model engine.

The runner shows an :class:`~policyctl.probecases.engines.Engine` the cluster of every step in turn,
asks it for each probe's truth table, and compares the observation with the case's expected
cells. :meth:`CaseResult.to_json` is the output of ``policyctl probe -o json`` exactly as
``../shared/spec/probe-cases.md`` defines it: ``observed`` holds every ordered pair of pods of
the step (a pod to itself included), ``mismatches`` every expected cell that differs, ``passed``
is true when there are none.

The model engine answers from the reference semantics. A pod's connection to its own address
never leaves its network namespace, so ``semantics.evaluate`` reports it allowed (bypass
``same-pod``); through a Service it hairpins and policy applies, which the connection's
``via_service`` tells the semantics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policyctl.probecases.engines import Engine, Observation, Probe
from policyctl.policy.cluster import Cluster
from policyctl.probecases.cases import CaseProbe, ProbeCase
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection

#: Exit codes of ``policyctl probe``; 2 (bad input, engine unavailable) belongs to the CLI.
EXIT_PASSED = 0
EXIT_MISMATCHES = 1


@dataclass(frozen=True, slots=True)
class Mismatch:
    """An expected cell the engine observed otherwise (``observed`` None: not reported)."""

    source: str
    destination: str
    expected: bool
    observed: bool | None


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """One probe of one step: what the engine observed and where it departs from ``expected``."""

    probe: CaseProbe
    observation: Observation
    mismatches: tuple[Mismatch, ...]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """A whole case run on one engine."""

    case: ProbeCase
    engine: str
    steps: tuple[tuple[ProbeOutcome, ...], ...]

    @property
    def passed(self) -> bool:
        return not any(o.mismatches for step in self.steps for o in step)

    @property
    def exit_code(self) -> int:
        return EXIT_PASSED if self.passed else EXIT_MISMATCHES

    def to_json(self) -> dict[str, Any]:
        """The spec's output document; pod keys sorted, so the same run gives the same bytes."""
        return {
            "case": self.case.name,
            "engine": self.engine,
            "addresses": {key: [str(a) for a in ips] for key, ips in self.case.addresses},
            "steps": [{"probes": [_outcome_json(o) for o in step]} for step in self.steps],
            "passed": self.passed,
        }


def run_case(case: ProbeCase, engine: Engine) -> CaseResult:
    """Run every step of ``case`` on ``engine``; the engine is closed afterwards, also on error."""
    steps = []
    try:
        for step in case.steps:
            outcomes = []
            for probe in step.probes:
                observation = engine.observe(step.cluster, probe.probe)
                outcomes.append(ProbeOutcome(probe, observation, compare(probe, observation)))
            steps.append(tuple(outcomes))
    finally:
        engine.close()
    return CaseResult(case, engine.name, tuple(steps))


def compare(probe: CaseProbe, observation: Observation) -> tuple[Mismatch, ...]:
    """Every expected cell whose observation differs, in (source, destination) order."""
    mismatches = []
    for cell in probe.expected:
        observed = observation.allowed.get(cell.source, {}).get(cell.destination)
        if observed is not cell.allowed:
            mismatches.append(Mismatch(cell.source, cell.destination, cell.allowed, observed))
    return tuple(mismatches)


class ModelEngine:
    """Decides every ordered pair with ``semantics.evaluate``: the reference the others are
    checked against."""

    name = "model"

    def observe(self, cluster: Cluster, probe: Probe) -> Observation:
        pods = sorted(cluster.pods, key=lambda p: p.key)
        allowed: dict[str, dict[str, bool]] = {}
        for source in pods:
            row = allowed.setdefault(source.key, {})
            for destination in pods:
                connection = Connection(
                    source,
                    destination,
                    probe.protocol,
                    probe.port,
                    family=probe.family,
                    via_service=probe.via_service,
                )
                row[destination.key] = evaluate(cluster, connection).allowed
        return Observation(allowed, "model")

    def close(self) -> None:
        """Nothing to release: the model keeps no state between steps."""


_: Engine = ModelEngine()


def _outcome_json(outcome: ProbeOutcome) -> dict[str, Any]:
    probe = outcome.probe.probe
    document: dict[str, Any] = {
        "port": probe.port,
        "protocol": probe.protocol.value,
        "family": probe.family.value,
    }
    if probe.via_service:
        document["via"] = "service"
    document["method"] = outcome.observation.method
    document["observed"] = _sorted_table(outcome.observation.allowed)
    document["mismatches"] = [
        {"from": m.source, "to": m.destination, "expected": m.expected, "observed": m.observed}
        for m in outcome.mismatches
    ]
    return document


def _sorted_table(table: Mapping[str, Mapping[str, bool]]) -> dict[str, dict[str, bool]]:
    return {s: {d: bool(table[s][d]) for d in sorted(table[s])} for s in sorted(table)}
