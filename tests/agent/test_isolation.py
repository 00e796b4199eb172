"""The isolation facts the agent logs, followed pod by pod, equal a fresh computation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.agent.isolation import Isolation
from policyctl.policy.model import NetworkPolicy
from tests.strategies import policies

POD_KEYS = ("x/a", "x/b", "y/c")


def _fresh(selecting: dict[str, tuple[NetworkPolicy, ...]]) -> tuple[frozenset[object], int]:
    facts = frozenset(
        (pod, direction, f"{policy.namespace}/{policy.name}")
        for pod, ps in selecting.items()
        for policy in ps
        for direction in policy.policy_types
    )
    return facts, len({p.ref for ps in selecting.values() for p in ps})


@st.composite
def selection_histories(draw: st.DrawFn) -> list[dict[str, tuple[NetworkPolicy, ...]]]:
    pool = [draw(policies(name=f"p{i}")) for i in range(4)]
    steps = []
    for _ in range(draw(st.integers(1, 5))):
        pods = draw(st.lists(st.sampled_from(POD_KEYS), unique=True))
        steps.append({pod: tuple(draw(st.lists(st.sampled_from(pool), unique_by=id, max_size=3))) for pod in pods})
    return steps


@settings(max_examples=100, deadline=None)
@given(selection_histories())
def test_followed_isolation_equals_a_fresh_computation_and_reports_exactly_the_change(history) -> None:
    isolation = Isolation()
    previous: frozenset[object] = frozenset()
    for selecting in history:
        appeared, gone = isolation.update(selecting)
        facts, active = _fresh(selecting)
        assert (isolation.facts, isolation.active) == (facts, active)
        assert (appeared, gone) == (facts - previous, previous - facts)
        previous = facts
