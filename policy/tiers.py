"""The cluster-scoped tiers of the reference semantics: which rule of which policy decides.

The ClusterNetworkPolicy API (``policy.networking.k8s.io``, ``spec.tier``) orders evaluation:

* "Admin tier ... NetworkPolicy tier ... Baseline tier"; "If Admin tier has made a final
  decision (Accept or Deny) on a connection, then no further evaluation is done";
  "v1.NetworkPolicy always makes a final decision for selected pods"; "If a given connection
  wasn't allowed or denied by any of the tiers, the default kubernetes policy is applied".
* Within a tier: "Policies with lower priority values have higher precedence"; within a policy
  "the relative precedence of ingress rules ... will be determined by the order in which the
  rule is written". The first rule that matches decides the tier.
* ``Pass`` "skips all further ClusterNetworkPolicy rules in the current tier".
* "CNPs with no ingress rules do not affect ingress traffic" (likewise egress).
* "If two (or more) policies in the same tier with the same priority could match a
  connection, then the implementation can apply any of the matching policies": every engine
  here takes the first by (kind, name) (:attr:`ClusterNetworkPolicy.order`), and the outcome
  records the tie when the tied policies would decide differently, so ``explain`` shows both
  orders and lint reports it.

Peers and ports are matched with the NetworkPolicy matchers (:mod:`policy.peers`,
:mod:`policy.ports`, :mod:`policy.ipblocks`) wherever the API means the same thing; the two
new peers are matched here (:func:`match_nodes_peer`, :func:`match_domain_names_peer`).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby

from policyctl.policy.clustermodel import (
    Action,
    ClusterNetworkPolicy,
    ClusterPeer,
    ClusterRule,
    DomainNamesPeer,
    NodesPeer,
    Tier,
)
from policyctl.policy.ipblocks import EndAddress, describe
from policyctl.policy.matchers import isolating, selecting
from policyctl.policy.model import Direction, Family, Node, Pod
from policyctl.policy.cluster import Cluster
from policyctl.policy.peers import match_peer
from policyctl.policy.ports import match_port
from policyctl.policy.verdicts import (
    ClusterPolicyResult,
    ClusterRuleResult,
    Connection,
    Endpoint,
    Hint,
    PeerResult,
    TierOutcome,
)


def applying_policies(cluster: Cluster, tier: Tier, pod: Pod, direction: Direction) -> tuple[ClusterNetworkPolicy, ...]:
    """The policies of ``tier`` whose subject selects ``pod`` (namespace labels AND pod labels;
    "host-networked pods are not included in subject selection") and that have rules in
    ``direction``, in precedence order: :func:`policy.matchers.selecting` and
    :func:`policy.matchers.isolating`, as for NetworkPolicy."""
    in_tier = (p for p in cluster.cluster_policies if p.tier is tier)
    found = isolating(selecting(in_tier, pod, cluster.namespace_labels(pod.namespace)), direction)
    return tuple(sorted(found, key=lambda p: p.order))


def _nodes_of(cluster: Cluster, other: Endpoint, address: EndAddress) -> tuple[Node, ...]:
    """The nodes whose addresses the other end uses: the node itself, a hostNetwork pod's
    node, or every node that has the address."""
    if isinstance(other, Node):
        return (other,)
    if isinstance(other, Pod):
        if not other.host_network:
            return ()
        node = cluster.node_by_name.get(other.node or "")
        return (node,) if node is not None else ()
    return tuple(n for n in cluster.nodes if address.address is not None and address.address in n.addresses)


def match_nodes_peer(cluster: Cluster, peer: NodesPeer, *, other: Endpoint, address: EndAddress) -> PeerResult:
    """A ``nodes`` peer "selects the nodeIPs as the peer type by matching on the IPs present in
    the node.Status.Addresses field of the node": the other end matches when it uses the
    address of a node whose labels the selector matches (a hostNetwork pod uses its node's)."""
    nodes = _nodes_of(cluster, other, address)
    if not nodes:
        return PeerResult(peer, False, (f"{describe(other)} is not a node address",))
    for node in nodes:
        if peer.selector.matches(node.labels):
            return PeerResult(peer, True, (f"node {node.name} has {peer.selector}",))
    failing = "; ".join(f"node {n.name}: {r} required" for n in nodes for r in peer.selector.failing(n.labels))
    return PeerResult(peer, False, (failing,))


def match_domain_names_peer(peer: DomainNamesPeer) -> PeerResult:
    """``domainNames`` needs the DNS answers the pod received; an nftables data path does not
    see them, so the peer matches nothing here, and says so."""
    return PeerResult(peer, False, (f"not enforced: names are not resolved ({', '.join(peer.names)})",))


def match_cluster_peer(
    cluster: Cluster, peer: ClusterPeer, *, other: Endpoint, address: EndAddress, family: Family
) -> PeerResult:
    """One peer of a cluster rule against the other end (the source for ingress rules, the
    destination for egress rules)."""
    if isinstance(peer, NodesPeer):
        return match_nodes_peer(cluster, peer, other=other, address=address)
    if isinstance(peer, DomainNamesPeer):
        return match_domain_names_peer(peer)
    return match_peer(cluster, peer, other=other, address=address, family=family)


def match_cluster_rule(
    cluster: Cluster, rule: ClusterRule, *, connection: Connection, other: Endpoint, address: EndAddress
) -> ClusterRuleResult:
    """A rule matches when some peer matches AND (it has no protocols, or some port matches:
    "If unspecified, protocol-specific attributes will not be used to match traffic")."""
    peers = tuple(
        match_cluster_peer(cluster, p, other=other, address=address, family=connection.family) for p in rule.peers
    )
    ports = tuple(
        match_port(p, protocol=connection.protocol, number=connection.port, destination=connection.destination)
        for p in rule.ports
    )
    matched = any(p.matched for p in peers) and (not ports or any(p.matched for p in ports))
    return ClusterRuleResult(rule, matched, peers, ports)


def _policy_result(
    cluster: Cluster, policy: ClusterNetworkPolicy, direction: Direction, *, connection: Connection, other: Endpoint,
    address: EndAddress,
) -> ClusterPolicyResult:
    """The policy's rules in order, up to and including the first that matches."""
    results: list[ClusterRuleResult] = []
    for rule in policy.rules(direction):
        result = match_cluster_rule(cluster, rule, connection=connection, other=other, address=address)
        results.append(result)
        if result.matched:
            return ClusterPolicyResult(policy.ref, policy.tier, policy.priority, tuple(results), rule.action,
                                       policy.provenance)  # fmt: skip
    return ClusterPolicyResult(policy.ref, policy.tier, policy.priority, tuple(results), None, policy.provenance)


def _groups(policies: tuple[ClusterNetworkPolicy, ...]) -> Iterator[tuple[ClusterNetworkPolicy, ...]]:
    for _, group in groupby(policies, key=lambda p: p.priority):
        yield tuple(group)


def evaluate_tier(
    cluster: Cluster, tier: Tier, pod: Pod, direction: Direction, *, connection: Connection, other: Endpoint,
    address: EndAddress,
) -> TierOutcome:
    """The first matching rule of the tier's policies that select ``pod``, by priority then
    rule order; with the policies of a tied priority all evaluated, so a tie that changes the
    outcome is recorded in :attr:`TierOutcome.ambiguous`."""
    results: list[ClusterPolicyResult] = []
    for group in _groups(applying_policies(cluster, tier, pod, direction)):
        evaluated = [
            _policy_result(cluster, p, direction, connection=connection, other=other, address=address) for p in group
        ]
        results.extend(evaluated)
        deciding = [r for r in evaluated if r.decision is not None]
        if not deciding:
            continue
        first = deciding[0]
        ambiguous = tuple(
            f"{r.policy} (priority {r.priority}) would {r.decision.value if r.decision else ''} instead: "
            f"same priority as {first.policy}, whose {first.decision.value if first.decision else ''} "
            f"policyctl applies (the API leaves the order of equal priorities undefined)"
            for r in deciding[1:] if r.decision is not first.decision
        )
        return TierOutcome(tier, tuple(results), first.decision, first, ambiguous)
    return TierOutcome(tier, tuple(results), None, None, ())


def final(outcome: TierOutcome | None) -> bool:
    """Whether the tier made a final decision (Accept or Deny): Pass and no match go on."""
    return outcome is not None and outcome.action in (Action.ACCEPT, Action.DENY)


def cluster_rule_hints(outcome: TierOutcome, direction: Direction) -> tuple[Hint, ...]:
    """Changes that flip a half a cluster tier denied. Each holds by the evaluation order
    alone: an Accept that matches before the Deny ends the tier with an allow; and below the
    Admin tier, a NetworkPolicy that isolates the pod decides before the Baseline tier."""
    deciding = outcome.deciding
    if deciding is None or deciding.deciding_rule is None:
        return ()
    rule = deciding.deciding_rule.rule
    hints = [Hint(
        f"remove or narrow {deciding.policy} {rule.label}, or add an Accept rule for this peer and port "
        f"before it (earlier in {deciding.policy.name}, or in an {outcome.tier.value}-tier policy with a "
        f"priority below {deciding.priority})",
        rule.provenance,
    )]  # fmt: skip
    if outcome.tier is Tier.BASELINE:
        hints.append(Hint(
            f"a NetworkPolicy that selects the pod with {direction.value} in policyTypes and admits this "
            f"connection decides before the Baseline tier",
            rule.provenance,
        ))  # fmt: skip
    return tuple(hints)
