"""Which ports a source may open on a destination, per protocol, as merged ranges, exactly.

The verdict on a connection depends on its port only through the ``NetworkPolicyPort`` entries
of the policies: a port entry matches "the specified protocol AND port", a range ``port`` to
``endPort`` inclusive, a named port the destination pod's container port of that name, and an
entry without ``port`` every port of its protocol. So the verdict is constant between the
boundaries those entries induce. Splitting 1-65535 at every boundary (a number ``p`` gives
``p`` and ``p+1``, a range ``p..e`` gives ``p`` and ``e+1``, a named port the numbers it can
resolve to on the destination) and evaluating one representative port per interval with
``semantics.evaluate`` gives the exact answer for all 65,535 ports with a few evaluations.

Boundaries are taken from every policy of the cluster (cluster-scoped ones included: their
ports are the same values) and every container port of the
destination, not only from the policies that select the two ends: extra boundaries cost an
evaluation each and never change the result, missing ones would.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from policyctl.policy.clustermodel import ClusterNetworkPolicy
from policyctl.policy.model import Family, NetworkPolicy, Pod, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection, Endpoint, Verdict

FIRST_PORT = 1
LAST_PORT = 65535


@dataclass(frozen=True, slots=True)
class PortInterval:
    """Ports ``first``..``last`` (inclusive) of ``protocol`` that all get the same verdict as
    ``verdict``, the verdict on ``first``."""

    protocol: Protocol
    first: int
    last: int
    verdict: Verdict

    def __str__(self) -> str:
        span = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return f"{self.protocol.value} {span}"


@dataclass(frozen=True, slots=True)
class PortRange:
    """A merged run of ports with one answer; ``allowed`` is the overall verdict or one half's,
    depending on what was merged on."""

    protocol: Protocol
    first: int
    last: int
    allowed: bool

    @property
    def span(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


@dataclass(frozen=True, slots=True)
class PortSummary:
    """The verdict on every port of every protocol from ``source`` to ``destination``:
    ``intervals`` cover 1-65535 for each protocol, in order, adjacent ones differing in the
    overall verdict or in one of its halves."""

    source: Endpoint
    destination: Endpoint
    family: Family
    intervals: tuple[PortInterval, ...]

    def ranges(self, key: Callable[[Verdict], bool] = lambda v: v.allowed) -> tuple[PortRange, ...]:
        """The intervals merged on ``key`` (default: the overall verdict; pass e.g.
        ``lambda v: v.egress.allowed`` for one half)."""
        return merge_ranges((i.protocol, i.first, i.last, key(i.verdict)) for i in self.intervals)

    def allowed_ranges(self, key: Callable[[Verdict], bool] = lambda v: v.allowed) -> tuple[PortRange, ...]:
        return tuple(r for r in self.ranges(key) if r.allowed)

    def describe(self, key: Callable[[Verdict], bool] = lambda v: v.allowed) -> str:
        """In words, e.g. ``TCP 80-81 allowed, everything else denied``."""
        return describe_ranges(self.ranges(key))


def port_boundaries(cluster: Cluster, destination: Endpoint) -> tuple[int, ...]:
    """Every port where the verdict may change, ascending, always starting with 1."""
    named: dict[str, list[int]] = {}
    if isinstance(destination, Pod):
        for container_port in destination.ports:
            if container_port.name:
                named.setdefault(container_port.name, []).append(container_port.port)
    points = {FIRST_PORT}
    policies: list[NetworkPolicy | ClusterNetworkPolicy] = [*cluster.policies, *cluster.cluster_policies]
    for policy in policies:
        for rule in (*policy.ingress, *policy.egress):
            for port in rule.ports:
                if isinstance(port.port, int):
                    points.add(port.port)
                    points.add((port.end_port if port.end_port is not None else port.port) + 1)
                elif isinstance(port.port, str):
                    for number in named.get(port.port, ()):
                        points.update((number, number + 1))
    return tuple(sorted(p for p in points if FIRST_PORT <= p <= LAST_PORT))


def summarize_ports(
    cluster: Cluster,
    source: Endpoint,
    destination: Endpoint,
    *,
    family: Family = Family.IPV4,
    protocols: Iterable[Protocol] = tuple(Protocol),
) -> PortSummary:
    """The exact verdict on every port of ``protocols`` from ``source`` to ``destination``."""
    starts = port_boundaries(cluster, destination)
    intervals: list[PortInterval] = []
    for protocol in protocols:
        for first, following in zip(starts, (*starts[1:], LAST_PORT + 1)):
            verdict = evaluate(
                cluster, Connection(source, destination, protocol, first, family=family)
            )
            previous = intervals[-1] if intervals else None
            if (
                previous is not None
                and previous.protocol is protocol
                and _answer(previous.verdict) == _answer(verdict)
            ):
                intervals[-1] = PortInterval(protocol, previous.first, following - 1, previous.verdict)
            else:
                intervals.append(PortInterval(protocol, first, following - 1, verdict))
    return PortSummary(source, destination, family, tuple(intervals))


def merge_ranges(items: Iterable[tuple[Protocol, int, int, Hashable]]) -> tuple[PortRange, ...]:
    """Adjacent ``(protocol, first, last, allowed)`` runs with the same answer joined."""
    merged: list[PortRange] = []
    for protocol, first, last, allowed in items:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and previous.protocol is protocol
            and previous.allowed == allowed
            and previous.last + 1 == first
        ):
            merged[-1] = PortRange(protocol, previous.first, last, previous.allowed)
        else:
            merged.append(PortRange(protocol, first, last, bool(allowed)))
    return tuple(merged)


def describe_ranges(ranges: Iterable[PortRange]) -> str:
    """``TCP 80-81 allowed, everything else denied``; ``everything allowed``; ``everything
    denied``; or the allowed and denied lists when neither is short."""
    ranges = tuple(ranges)
    allowed = [r for r in ranges if r.allowed]
    denied = [r for r in ranges if not r.allowed]
    if not denied:
        return "everything allowed"
    if not allowed:
        return "everything denied"
    present = {r.protocol for r in ranges}
    full = {p for p in present if all(r.allowed for r in ranges if r.protocol is p)}
    if len(allowed) <= len(denied):
        return f"{_listing(allowed, full)} allowed, everything else denied"
    closed = {p for p in present if all(not r.allowed for r in ranges if r.protocol is p)}
    return f"{_listing(denied, closed)} denied, everything else allowed"


def _listing(ranges: list[PortRange], whole: set[Protocol]) -> str:
    parts: list[str] = []
    for protocol in Protocol:
        spans = [r.span for r in ranges if r.protocol is protocol]
        if protocol in whole:
            parts.append(f"{protocol.value} (all ports)")
        elif spans:
            parts.append(f"{protocol.value} {', '.join(spans)}")
    return "; ".join(parts)


def _answer(verdict: Verdict) -> tuple[bool, bool, bool]:
    return verdict.allowed, verdict.egress.allowed, verdict.ingress.allowed
