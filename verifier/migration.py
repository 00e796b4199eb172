"""Proof that two policy sets over the same cluster allow exactly the same traffic, tiers included.

``policyctl convert`` rewrites AdminNetworkPolicy and BaselineAdminNetworkPolicy objects as
ClusterNetworkPolicy objects and must show that nothing changed. Both sets are turned into
class relations (:mod:`verifier.relation`) and compared with
:func:`verifier.comparison.differences` in both directions: every pair of joint classes of pods,
the pod-pair bypasses, and every outside address class. Node addresses are not outside
addresses there (pods or nodes have them), yet ``nodes`` peers and ``networks`` CIDRs match
them, so each node is compared here too, as a destination of every pod class and as a source
to every pod class (with the own-node bypass, which is the same in both sets, kept apart).

Cost: the relations' classes, plus nodes times pod classes; never pod pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from policyctl.policy.model import Cluster, Family, Node, Pod

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


def _pod_groups(a: Relation, b: Relation, family: Family, node: Node) -> dict[tuple[int, int, bool], Pod]:
    """One pod per (class in ``a``, class in ``b``, on ``node``): what decides a connection
    between the node and the pod."""
    ca, cb = a.of(family), b.of(family)
    found: dict[tuple[int, int, bool], Pod] = {}
    for pod in a.pods:
        if pod.key in b.cluster.pod_by_key:
            found.setdefault((ca.class_of[pod.key], cb.class_of[pod.key], pod.node == node.name), pod)
    return found


def node_differences(a: Relation, b: Relation, family: Family) -> Iterator[Difference]:
    """Ports ``a`` allows and ``b`` does not between pods and node addresses of ``family``."""
    for node in a.cluster.nodes:
        address = node.ip(family)
        if address is None:
            continue
        for pod in _pod_groups(a, b, family, node).values():
            other = b.cluster.pod_by_key[pod.key]
            extra = a.to_address(pod, address) - b.to_address(other, address)
            if extra:
                yield Difference(pod, address, family, extra, (pod,), (address,))
            extra = a.from_address(address, pod) - b.from_address(address, other)
            if extra:
                yield Difference(address, pod, family, extra, (address,), (pod,))


def first_counterexample(original: Cluster, converted: Cluster) -> Counterexample | None:
    """None when the two clusters (the same pods, nodes and namespaces) allow exactly the same
    connections in every family, else one connection only one of them allows."""
    a, b = Relation(original), Relation(converted)
    families = tuple(f for f in Family if f in set(a.families) | set(b.families))
    for first, second, name in ((a, b, "original"), (b, a, "converted")):
        for difference in differences(first, second, families=families):
            return Counterexample(difference, name)
        for family in families:
            for difference in node_differences(first, second, family):
                return Counterexample(difference, name)
    return None
