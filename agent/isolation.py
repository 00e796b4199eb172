"""Which policies isolate which local pods, followed from one sync to the next.

A pod "is isolated for a direction when some policy selecting it has that policy type"; the
agent logs each (pod, direction, policy) fact as it appears or disappears and exports how many
policies select a local pod. Recomputing both over every local pod and its policies on every
event costs milliseconds at 10k pods (hundreds of local pods, dozens of policies each), so
:class:`Isolation` revisits only the pods whose selecting policies are no longer the very same
objects as at the previous sync (the compiler keeps unchanged policies and pods as they were).

Invariant: after ``update(selecting)``, ``facts`` and ``active`` equal what a fresh
computation over ``selecting`` gives (a property test holds it to that).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from policyctl.policy.model import Direction, NetworkPolicy, PolicyRef

Fact = tuple[str, Direction, str]
Selecting = Mapping[str, tuple[NetworkPolicy, ...]]


def _facts_of(pod: str, policies: tuple[NetworkPolicy, ...]) -> set[Fact]:
    """(pod, direction, policy) for every policyType of every policy selecting ``pod``."""
    return {(pod, direction, str(policy.ref)) for policy in policies for direction in policy.policy_types}


def _same(a: tuple[NetworkPolicy, ...], b: tuple[NetworkPolicy, ...]) -> bool:
    return a is b or (len(a) == len(b) and all(x is y for x, y in zip(a, b)))


class Isolation:
    """The isolation facts and active policies of one node's local pods."""

    def __init__(self) -> None:
        self._by_pod: dict[str, tuple[NetworkPolicy, ...]] = {}
        self._facts: dict[str, set[Fact]] = {}
        self._uses: Counter[PolicyRef] = Counter()

    @property
    def facts(self) -> frozenset[Fact]:
        return frozenset(f for facts in self._facts.values() for f in facts)

    @property
    def active(self) -> int:
        """How many policies select at least one local pod."""
        return len(self._uses)

    def update(self, selecting: Selecting) -> tuple[set[Fact], set[Fact]]:
        """Follow ``selecting`` (local pod key -> the policies selecting it); returns the
        facts that appeared and those that disappeared."""
        appeared: set[Fact] = set()
        gone: set[Fact] = set()
        for pod in [p for p in self._by_pod if p not in selecting]:
            gone |= self._forget(pod)
        for pod, policies in selecting.items():
            known = self._by_pod.get(pod)
            if known is not None and _same(known, policies):
                continue
            before = self._forget(pod) if known is not None else set()
            after = _facts_of(pod, policies)
            self._by_pod[pod] = policies
            self._facts[pod] = after
            self._uses.update(p.ref for p in policies)
            gone |= before - after
            appeared |= after - before
        return appeared - gone, gone - appeared

    def _forget(self, pod: str) -> set[Fact]:
        """Only the counts of the pod's own policies change, so only they are looked at: a
        pod event costs its policies, not every policy of the node."""
        refs = [p.ref for p in self._by_pod.pop(pod)]
        self._uses.subtract(refs)
        for ref in set(refs):
            if self._uses[ref] <= 0:
                del self._uses[ref]
        return self._facts.pop(pod)
