"""Proof that two policy sets over the same cluster allow exactly the same traffic, tiers included.

``policyctl convert`` rewrites AdminNetworkPolicy and BaselineAdminNetworkPolicy objects as
ClusterNetworkPolicy objects and must show that nothing changed. Both sets are turned into
class relations (:mod:`verifier.relation`) and compared with
:func:`verifier.comparison.differences` in both directions: every pair of joint classes of pods,
the pod-pair bypasses, every outside address class and every node address (which ``nodes``
peers and ``networks`` CIDRs match).

Cost: the relations' classes, plus distinct node views times pod classes; never pod pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

from policyctl.policy.model import Family, Pod
from policyctl.policy.cluster import Cluster

from .comparison import Difference, differences
from .relation import Relation


@dataclass(frozen=True, slots=True)
class Counterexample:
    """A connection one set allows and the other denies: ``difference`` names the ends, the
    family and the ports; ``allowed_by`` says which set (``"original"`` or ``"converted"``)."""

    difference: Difference
    allowed_by: str

    def __str__(self) -> str:
        d = self.difference
        first = d.ports.first()
        port = f"{first[1]}/{first[0].value}" if first else "no port"
        source = d.source.key if isinstance(d.source, Pod) else str(d.source)
        destination = d.destination.key if isinstance(d.destination, Pod) else str(d.destination)
        return (
            f"{source} -> {destination} on {port} ({d.family.value}) is allowed by the {self.allowed_by} set only "
            f"(ports allowed by it alone: {d.ports})"
        )


def first_counterexample(original: Cluster, converted: Cluster) -> Counterexample | None:
    """None when the two clusters (the same pods, nodes and namespaces) allow exactly the same
    connections in every family, else one connection only one of them allows."""
    a, b = Relation(original), Relation(converted)
    families = tuple(f for f in Family if f in set(a.families) | set(b.families))
    for first, second, name in ((a, b, "original"), (b, a, "converted")):
        for difference in differences(first, second, families=families):
            return Counterexample(difference, name)
    return None
