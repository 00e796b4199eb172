"""Both halves of a verdict over views: the ports one end may open on another, exactly.

This is ``policy.semantics`` lifted from one (protocol, port) to all of them at once, over
:class:`~verifier.index.View` values instead of pods:

* egress is decided for the source, ingress for the destination; "both ... need to allow the
  connection", so the answer is the intersection of the two halves' port sets;
* a half of an end that is not a pod on the pod network (an external address, a hostNetwork
  pod) allows everything; a pod not isolated in a direction allows everything in it;
* an isolated half allows the union, over the rules of the policies that select it and have
  the direction in policyTypes, of the rule's ports when some peer (or no peer list) matches
  the other end;
* a rule's ports: every port when it has none, a protocol's whole range when ``port`` is
  unset, ``port``..``endPort`` inclusive, a named port's numbers on the destination pod (none
  when the destination is not a pod on the pod network).

With cluster-scoped policies the half is port-set algebra over the tiers (``policy.tiers``,
``policy.semantics._decide``), walking the rules that apply in precedence order while keeping
the still-undecided port set ``U`` (every port at first). A rule whose peer matches the other
end, with ports ``R``, decides ``U & R`` by its action (Accept allows, Deny denies, Pass hands
it to the next tier) and leaves ``U - R`` undecided:

1. Admin tier: Accept and Deny are final.
2. What the Admin tier passed or left undecided goes to NetworkPolicy when it isolates the pod
   ("v1.NetworkPolicy always makes a final decision for selected pods"): allowed iff some rule
   allows it;
3. otherwise to the Baseline tier (Accept and Deny final; Pass and no match go on);
4. what is left is allowed (the default).

``domainNames`` peers match nothing ("not enforced: names are not resolved").

Two bypasses depend on *which* pods meet, not on what policies see of them, and are therefore
applied by callers that know the pods (:mod:`verifier.relation`): a pod reaching its own
address, and ingress from the destination's own node.
"""

from __future__ import annotations

from dataclasses import dataclass

from policyctl.compiler.intervals import Interval
from policyctl.policy.clustermodel import Action
from policyctl.policy.matchers import NamedPortResolver, port_ranges
from policyctl.policy.model import Direction, PortMatch, Protocol

from .index import (
    EndKind,
    IndexedClusterRule,
    IndexedRule,
    NamedPorts,
    PolicyIndex,
    View,
)
from .portsets import ALL, NONE, PortSet


def _named_on(destination: View) -> NamedPortResolver:
    """Named ports as the view resolved them (:meth:`PolicyIndex.named_of`); none off the pod network."""

    def numbers(name: str, protocol: Protocol) -> tuple[int, ...]:
        if destination.kind is not EndKind.POD:
            return ()
        return next((n for named, p, n in destination.named if named == name and p is protocol), ())

    return numbers


def _port_match(match: PortMatch, destination: View) -> PortSet:
    """The ports of :func:`policy.matchers.port_ranges`, the rule every engine calls."""
    ranges = port_ranges(match, _named_on(destination))
    if ranges is None:
        return PortSet.whole(match.protocol)
    return PortSet.of((match.protocol, Interval(low, high)) for low, high in ranges) if ranges else NONE


@dataclass(frozen=True, slots=True)
class TierSplit:
    """How one tier splits the ports it was given: ``accepted`` and ``denied`` are final,
    ``passed`` goes to the next tier, ``undecided`` matched no rule (and goes on too)."""

    accepted: PortSet
    denied: PortSet
    passed: PortSet
    undecided: PortSet


@dataclass(frozen=True, slots=True)
class Mentioned:
    """Ids of the scoped selectors, ipBlocks and nodes peers some rules name."""

    selectors: frozenset[int]
    blocks: frozenset[int]
    nodes: frozenset[int]


class Decider:
    """Port sets between views of one cluster, memoised on everything they depend on."""

    def __init__(self, index: PolicyIndex) -> None:
        self.index = index
        self._rule_ports: dict[tuple[int, EndKind, NamedPorts], PortSet] = {}
        self._halves: dict[tuple[Direction, frozenset[int], NamedPorts, tuple[object, ...]], PortSet] = {}
        self._mentions: dict[tuple[Direction, frozenset[int]], Mentioned] = {}
        self._meets: dict[tuple[PortSet, PortSet], PortSet] = {}

    def rule_ports(self, rule: IndexedRule | IndexedClusterRule, destination: View) -> PortSet:
        key = (rule.id if isinstance(rule, IndexedRule) else -1 - rule.id, destination.kind, destination.named)
        found = self._rule_ports.get(key)
        if found is None:
            found = ALL if not rule.ports else NONE
            for match in rule.ports:
                found = found | _port_match(match, destination)
            self._rule_ports[key] = found
        return found

    def peer_matches(self, rule: IndexedRule, other: View) -> bool:
        """Some peer of the rule (or its missing peer list) admits ``other``."""
        if rule.any_peer:
            return True
        if other.kind is EndKind.POD and any(s in other.selectors for s in rule.selectors):
            return True
        return other.blocks is not None and any(b in other.blocks for b in rule.blocks)

    def cluster_peer_matches(self, rule: IndexedClusterRule, other: View) -> bool:
        """Some peer of a cluster rule admits ``other``: a namespaces/pods peer a pod on the pod
        network, a ``networks`` CIDR its address, a ``nodes`` peer a matching node's address;
        a ``domainNames`` peer nothing."""
        if other.kind is EndKind.POD and any(s in other.selectors for s in rule.selectors):
            return True
        if other.blocks is not None and any(b in other.blocks for b in rule.blocks):
            return True
        return any(n in other.nodes for n in rule.nodes)

    def tier(self, rule_ids: tuple[int, ...], undecided: PortSet, other: View, destination: View) -> TierSplit:
        """One tier's rules in precedence order over the ports still ``undecided``."""
        accepted = denied = passed = NONE
        for rule_id in rule_ids:
            if not undecided:
                break
            rule = self.index.cluster_rules[rule_id]
            if not self.cluster_peer_matches(rule, other):
                continue
            ports = self.rule_ports(rule, destination)
            hit = undecided & ports
            if hit:
                if rule.action is Action.ACCEPT:
                    accepted = accepted | hit
                elif rule.action is Action.DENY:
                    denied = denied | hit
                else:
                    passed = passed | hit
                undecided = undecided - ports
        return TierSplit(accepted, denied, passed, undecided)

    def network_policy(self, direction: Direction, pod: View, other: View) -> PortSet | None:
        """What NetworkPolicy allows in this half, or None when no policy isolates the pod."""
        isolated, rule_ids = self.index.applying(pod.selectors, direction)
        if not isolated:
            return None
        destination = other if direction is Direction.EGRESS else pod
        found = NONE
        for rule_id in rule_ids:
            rule = self.index.rules[rule_id]
            if self.peer_matches(rule, other):
                found = found | self.rule_ports(rule, destination)
        return found

    def half(self, direction: Direction, pod: View, other: View) -> PortSet:
        """One half: ``pod`` is the end whose policies decide (source for egress, destination
        for ingress), ``other`` the far end. Ports are those of the destination."""
        if pod.kind is not EndKind.POD:
            return ALL
        named = pod.named if direction is Direction.INGRESS else ()
        key = (direction, pod.selectors, named, self.seen(direction, pod.selectors, other))
        found = self._halves.get(key)
        if found is None:
            found = self._decide(direction, pod, other)
            self._halves[key] = found
        return found

    def mentioned(self, direction: Direction, selectors: frozenset[int]) -> Mentioned:
        """The selector, ipBlock and nodes-peer ids named by the rules that apply to a pod
        with these selectors in ``direction`` (NetworkPolicy and both tiers)."""
        key = (direction, selectors)
        found = self._mentions.get(key)
        if found is None:
            _, rule_ids = self.index.applying(selectors, direction)
            tiers = self.index.tiered(selectors, direction)
            rules = [self.index.rules[r] for r in rule_ids]
            cluster = [self.index.cluster_rules[r] for r in (*tiers.admin, *tiers.baseline)]
            both: list[IndexedRule | IndexedClusterRule] = [*rules, *cluster]
            found = Mentioned(
                frozenset(s for r in both for s in r.selectors),
                frozenset(b for r in both for b in r.blocks),
                frozenset(n for r in cluster for n in r.nodes),
            )
            self._mentions[key] = found
        return found

    def seen(self, direction: Direction, selectors: frozenset[int], other: View) -> tuple[object, ...]:
        """What the rules applying to the pod can see of ``other``: the half depends on
        ``other`` through this only, so halves are memoised on it."""
        seen = self.mentioned(direction, selectors)
        return (
            other.kind,
            other.selectors & seen.selectors if other.kind is EndKind.POD else frozenset(),
            None if other.blocks is None else other.blocks & seen.blocks,
            other.nodes & seen.nodes,
            other.named if direction is Direction.EGRESS else (),
        )

    def _decide(self, direction: Direction, pod: View, other: View) -> PortSet:
        return self.decide(direction, pod, other, self.network_policy(direction, pod, other))

    def decide(self, direction: Direction, pod: View, other: View, allowed_by_np: PortSet | None) -> PortSet:
        """The half through the tiers (see the module docstring) given what NetworkPolicy
        allows (None: no policy isolates the pod); public so that a caller that changes the
        NetworkPolicies (a redundancy check removing one) reuses the same tier algebra."""
        tiers = self.index.tiered(pod.selectors, direction)
        if not tiers:
            return ALL if allowed_by_np is None else allowed_by_np
        destination = other if direction is Direction.EGRESS else pod
        admin = self.tier(tiers.admin, ALL, other, destination)
        rest = admin.passed | admin.undecided
        if allowed_by_np is not None:
            return admin.accepted | (rest & allowed_by_np)
        baseline = self.tier(tiers.baseline, rest, other, destination)
        return admin.accepted | baseline.accepted | baseline.passed | baseline.undecided

    def ports(self, source: View, destination: View) -> PortSet:
        """What new connections ``source`` may open on ``destination``, without the two
        pod-pair bypasses (see the module docstring)."""
        if source.impossible or destination.impossible:
            return NONE
        egress = self.half(Direction.EGRESS, source, destination)
        if not egress:
            return NONE
        ingress = self.half(Direction.INGRESS, destination, source)
        key = (egress, ingress)
        found = self._meets.get(key)
        if found is None:
            found = egress & ingress
            self._meets[key] = found
        return found

