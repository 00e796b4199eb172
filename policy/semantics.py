"""The reference semantics: does NetworkPolicy let a new connection through, and why.

This is the oracle the compiler, the enforcer and the lab are tested against, so it follows
the ``networking.k8s.io/v1`` API reference to the letter (``docs/semantics.md`` maps each rule
to its function and test):

* Isolation: "A pod is isolated for ingress [egress] if there is any NetworkPolicy that both
  selects the pod and has "Ingress" ["Egress"] in its policyTypes". A pod that is not isolated
  in a direction allows everything in it.
* Union: "Traffic is allowed to a pod if there are no NetworkPolicies selecting the pod ... OR
  if the traffic matches at least one ingress rule across all of the NetworkPolicy objects
  whose podSelector matches the pod" - policies are additive and never conflict. Rules of a
  direction a policy's policyTypes lacks are ignored.
* A rule matches when the traffic "must match both ports and from" (``to`` for egress); an
  empty or missing list matches everything.
* Both halves: "both the egress policy on the source pod and the ingress policy on the
  destination pod need to allow the connection".

Cluster-scoped policies (:mod:`policy.tiers`) wrap NetworkPolicy in the order the
ClusterNetworkPolicy API gives: the Admin tier first (Accept and Deny are final, Pass goes on),
then NetworkPolicy for the pods it isolates ("always makes a final decision for selected pods"),
then the Baseline tier, then the default allow. :attr:`DirectionVerdict.decided_by` says which.

What the API leaves to the implementation is decided once, as :class:`Bypass` values (see
``docs/semantics.md`` for the reasons): non-pod ends, hostNetwork pods, a pod reaching its own
address, and ingress from the destination's own node.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from policyctl.policy.clustermodel import Action, Tier
from policyctl.policy.hints import LazyHints, find_hints
from policyctl.policy.ipblocks import EndAddress, describe, end_address
from policyctl.policy.matchers import isolating, selecting, takes_part
from policyctl.policy.model import Direction, NetworkPolicy, Node, Pod, Rule
from policyctl.policy.cluster import Cluster
from policyctl.policy.peers import match_peer
from policyctl.policy.ports import match_port
from policyctl.policy.tiers import cluster_rule_hints, evaluate_tier, final
from policyctl.policy.verdicts import (
    Bypass,
    Connection,
    DecidedBy,
    DirectionVerdict,
    Endpoint,
    PolicyResult,
    RuleResult,
    TierOutcome,
    Verdict,
)


def selecting_policies(cluster: Cluster, pod: Pod) -> tuple[NetworkPolicy, ...]:
    """Every policy whose ``podSelector`` selects ``pod``, sorted by namespace/name.

    ``podSelector`` "selects the pods to which this NetworkPolicy object applies ... An empty
    podSelector selects all pods in this namespace": only policies of the pod's own namespace
    can select it. A hostNetwork pod is never selected (decided in docs/semantics.md). The rule
    is :func:`policy.matchers.selecting`, which the compiler and the verifier call too."""
    found = selecting(cluster.policies_in(pod.namespace), pod, cluster.namespace_labels(pod.namespace))
    return tuple(sorted(found, key=lambda p: p.ref))


def is_isolated(cluster: Cluster, pod: Pod, direction: Direction) -> bool:
    """Whether some policy selecting ``pod`` has ``direction`` in its policyTypes."""
    return bool(isolating(selecting_policies(cluster, pod), direction))


def _ends(connection: Connection, direction: Direction) -> tuple[Endpoint, Endpoint]:
    """(the end whose policies decide this half, the other end)."""
    if direction is Direction.EGRESS:
        return connection.source, connection.destination
    return connection.destination, connection.source


def _match_rule(
    cluster: Cluster, rule: Rule, *, connection: Connection, other: Endpoint, address: EndAddress
) -> RuleResult:
    peers = tuple(match_peer(cluster, p, other=other, address=address, family=connection.family) for p in rule.peers)
    ports = tuple(
        match_port(p, protocol=connection.protocol, number=connection.port, destination=connection.destination)
        for p in rule.ports
    )
    matched = (not peers or any(p.matched for p in peers)) and (not ports or any(p.matched for p in ports))
    return RuleResult(rule.direction, rule.index, matched, peers, ports, rule.provenance)


def _policy_results(
    cluster: Cluster,
    connection: Connection,
    *,
    applying: tuple[NetworkPolicy, ...],
    direction: Direction,
    other: Endpoint,
    address: EndAddress,
) -> tuple[PolicyResult, ...]:
    results = []
    for policy in applying:
        rules = tuple(
            _match_rule(cluster, r, connection=connection, other=other, address=address)
            for r in policy.rules(direction)
        )
        results.append(
            PolicyResult(policy.ref, any(r.matched for r in rules), rules, policy.provenance, policy.defaults_applied)
        )
    return tuple(results)


def _from_own_node(cluster: Cluster, source: Endpoint, destination: Pod) -> bool:
    """Whether ``source`` is the destination's node: the node itself, a hostNetwork pod on it,
    or one of the node's addresses."""
    if destination.node is None:
        return False
    if isinstance(source, Node):
        return source.name == destination.node
    if isinstance(source, Pod):
        return source.host_network and source.node == destination.node
    node = cluster.node_by_name.get(destination.node)
    return node is not None and source in node.addresses


def _decide(cluster: Cluster, connection: Connection, direction: Direction) -> DirectionVerdict:
    pod, other = _ends(connection, direction)
    if not isinstance(pod, Pod):
        note = f"{describe(pod)} is not a pod: no policy applies to it"
        return DirectionVerdict(
            direction, True, None, False, bypass=Bypass.NOT_A_POD, note=note, decided_by=DecidedBy.BYPASS
        )
    if pod.host_network:
        note = f"{pod.key} is a hostNetwork pod: policies never select it"
        return DirectionVerdict(direction, True, pod, False, bypass=Bypass.HOST_NETWORK, note=note,
                                decided_by=DecidedBy.BYPASS)  # fmt: skip
    selected = selecting_policies(cluster, pod)
    applying = isolating(selected, direction)
    shown = tuple(p.ref for p in selected if not takes_part(p, direction))
    address = end_address(cluster, other, connection.family)
    results = _policy_results(cluster, connection, applying=applying, direction=direction, other=other, address=address)
    isolated = bool(applying)
    verdict = DirectionVerdict(direction, True, pod, isolated, results, shown)
    if isinstance(other, Pod) and other.key == pod.key and not connection.via_service:
        note = f"{pod.key} reaches its own address: the connection never leaves its network namespace"
        return replace(verdict, bypass=Bypass.SAME_POD, note=note, decided_by=DecidedBy.BYPASS)
    if direction is Direction.INGRESS and _from_own_node(cluster, other, pod):
        note = f"{describe(other)} is on {pod.key}'s own node {pod.node}: a node may always reach its pods"
        return replace(verdict, bypass=Bypass.FROM_OWN_NODE, note=note, decided_by=DecidedBy.BYPASS)
    tier = partial(
        evaluate_tier, cluster, pod=pod, direction=direction, connection=connection, other=other, address=address
    )
    admin = tier(Tier.ADMIN)
    verdict = replace(verdict, admin=admin)
    if final(admin):
        return _tier_decision(verdict, admin, DecidedBy.ADMIN)
    passed = _admin_prefix(admin)
    if not isolated:
        baseline = tier(Tier.BASELINE)
        verdict = replace(verdict, baseline=baseline)
        if final(baseline):
            return _tier_decision(verdict, baseline, DecidedBy.BASELINE)
        note = (
            f"{pod.key} is not isolated for {direction.value}: "
            f"no policy selecting it has {direction.value} in policyTypes"
        )
        if baseline.policies:
            note = "no Baseline-tier rule matched; default allow: " + note
        return replace(verdict, note=passed + note)
    verdict = replace(verdict, decided_by=DecidedBy.NETWORK_POLICY)
    allowing = [str(r.policy) for r in results if r.allows]
    if allowing:
        return replace(verdict, note=f"{passed}allowed by {', '.join(allowing)}")
    refs = ", ".join(str(r.policy) for r in results)
    hints = LazyHints(partial(
        find_hints, cluster, connection, direction=direction, other=other, address=address, results=results,
        recheck=lambda c, k: _decide(c, k, direction).allowed,
    ))  # fmt: skip
    note = f"{passed}{pod.key} is isolated for {direction.value} by {refs} and no rule matches"
    return replace(verdict, allowed=False, hints=hints, note=note)


def _admin_prefix(admin: TierOutcome) -> str:
    """What the Admin tier did before the later stages decided, when it looked at anything."""
    if admin.deciding is not None and admin.deciding.deciding_rule is not None:
        rule = admin.deciding.deciding_rule.rule
        return f"passed by {admin.deciding.policy} {rule.label} (Admin tier); "
    if admin.policies:
        return "no Admin-tier rule matched; "
    return ""


def _tier_decision(verdict: DirectionVerdict, outcome: TierOutcome, stage: DecidedBy) -> DirectionVerdict:
    """A half decided by a cluster-scoped tier: the deciding rule, in words, with its place."""
    deciding = outcome.deciding
    assert deciding is not None and deciding.deciding_rule is not None
    rule = deciding.deciding_rule.rule
    allowed = outcome.action is Action.ACCEPT
    where = f" ({rule.provenance})" if rule.provenance else ""
    note = (
        f"{'accepted' if allowed else 'denied'} by {deciding.policy} {rule.label}{where}, "
        f"{outcome.tier.value} tier priority {deciding.priority}"
    )
    if outcome.ambiguous:
        note += "; ambiguous: " + "; ".join(outcome.ambiguous)
    hints = cluster_rule_hints(outcome, verdict.direction) if not allowed else ()
    return replace(verdict, allowed=allowed, note=note, decided_by=stage, hints=hints)


def evaluate_direction(cluster: Cluster, connection: Connection, direction: Direction) -> DirectionVerdict:
    """One half: egress decided for the source pod, ingress for the destination pod, with
    every selecting policy, rule, peer and port and, when denied, hints (found when read)."""
    return _decide(cluster, connection, direction)


def evaluate(cluster: Cluster, connection: Connection) -> Verdict:
    """The verdict on a new connection: allowed iff both halves allow it and the connection
    can exist (every pod or node end has an address in ``connection.family``, or none known)."""
    egress = evaluate_direction(cluster, connection, Direction.EGRESS)
    ingress = evaluate_direction(cluster, connection, Direction.INGRESS)
    source = end_address(cluster, connection.source, connection.family)
    destination = end_address(cluster, connection.destination, connection.family)
    impossible = [a.problem for a in (source, destination) if a.impossible]
    unknown = [a.problem for a in (source, destination) if a.problem and not a.impossible]
    if impossible:
        note = f"no such connection: {'; '.join(impossible)}"
    elif unknown:
        note = f"{'; '.join(unknown)}: decided from labels and ports only, no ipBlock can match it"
    else:
        note = ""
    return Verdict(
        connection,
        egress.allowed and ingress.allowed and not impossible,
        egress,
        ingress,
        source.address,
        destination.address,
        note,
    )
