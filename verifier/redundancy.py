"""Redundant policies and rules, found on one relation: only the classes a candidate touches.

Removing a policy (or one rule of it) changes the allowed relation only through the pods it
selects: "each NetworkPolicy selects a set of pods"; its rules take part only in the halves of
connections whose policy end (the source for egress, the destination for ingress) it selects,
and its policyTypes only in whether those ends are isolated. Every other half is untouched,
and a connection is allowed when "both the egress policy on the source pod and the ingress
policy on the destination pod" allow it. So, for a candidate and a direction it affects, with
``i`` a class of pods it selects (the *own* end) and ``j`` any other end (the *far* end):

* the new half of ``i`` towards ``j`` is recomputed without the candidate: NetworkPolicy's
  share is nothing to say when no other policy still isolates ``i`` in that direction, else
  the union of the remaining rules whose peers admit ``j``; cluster-scoped tiers then decide
  around it as always (``Decider.decide``: Admin first, NetworkPolicy for what Admin passes or
  leaves, Baseline when no NetworkPolicy isolates);
* the cell changes only when the new half meets the far end's half differently; when the
  policy still isolates ``i`` (or others do), that can happen only for ends some removed rule
  admits, so only those are visited (an inverted index from selector and ipBlock ids to
  classes finds them); when ``i`` loses its isolation, every end is visited until the first
  change;
* a changed cell counts only on a pair of pods that no pod-pair bypass decides (a pod and
  itself, a hostNetwork pod and a pod on its node: every port either way).

The relation is built once (its index, decider and outside classes); each candidate costs the
classes it selects times the ends its rules admit, never a new relation. Ends are the same as
:func:`verifier.comparison.differences` compares: the pods, the addresses no pod or node has,
and the node addresses (grouped by what policies see of them), towards which the own-node
bypass spares only the pods on that node. The result equals removing the candidate and
comparing relations, which the property tests check
(``tests/verifier/test_redundancy_properties.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from policyctl.policy.model import Direction, Family, Pod, PolicyRef

from .index import EndKind, IndexedPolicy, IndexedRule, View
from .portsets import ALL, NONE, PortSet
from .relation import ExternalClass, Relation
from .viewclasses import SelectorClasses, ViewClasses, selector_classes, view_classes


@dataclass(frozen=True, slots=True)
class Candidate:
    """What is removed: a whole policy (``rule`` None) or one rule of it."""

    policy: IndexedPolicy
    rule: IndexedRule | None = None

    def directions(self) -> tuple[Direction, ...]:
        if self.rule is not None:
            return (self.rule.direction,)
        return tuple(d for d in (Direction.INGRESS, Direction.EGRESS) if d in self.policy.types)

    def removed_rules(self, direction: Direction) -> tuple[int, ...]:
        if self.rule is not None:
            return (self.rule.id,) if self.rule.direction is direction else ()
        return self.policy.rules[direction] if direction in self.policy.types else ()


@dataclass(frozen=True, slots=True)
class _NodeEnd:
    """Node addresses (no pod has them) that every policy sees alike, and whose they are: the
    own-node bypass ("agents on a node ... can communicate with all pods on that node") spares
    only the pods on those nodes."""

    view: View
    nodes: frozenset[str]


def _node_ends(relation: Relation, family: Family) -> tuple[_NodeEnd, ...]:
    taken = {x for p in relation.cluster.pods for x in p.ips}
    grouped: dict[View, set[str]] = {}
    for node in relation.cluster.nodes:
        for address in node.addresses:
            if Family.of(address) is family and address not in taken:
                grouped.setdefault(relation.index.view_of_address(address), set()).add(node.name)
    return tuple(_NodeEnd(view, frozenset(names)) for view, names in grouped.items())


@dataclass(frozen=True, slots=True)
class _Family:
    family: Family
    classes: ViewClasses
    outside: tuple[ExternalClass, ...]
    lookup: SelectorClasses
    nodes: tuple[_NodeEnd, ...]


class Redundancy:
    """Removal checks against one relation (see the module docstring)."""

    def __init__(self, relation: Relation) -> None:
        self.relation = relation
        self.index = relation.index
        self.decider = relation.decider
        self._families: list[_Family] = []
        for family in relation.families:
            classes = view_classes(relation, family)
            outside = relation.external(family)
            lookup = selector_classes(classes, outside)
            self._families.append(_Family(family, classes, outside, lookup, _node_ends(relation, family)))
        self._policies: dict[tuple[frozenset[int], Direction], tuple[IndexedPolicy, ...]] = {}

    def policy(self, ref: PolicyRef) -> IndexedPolicy:
        return next(p for p in self.index.policies if p.ref == ref)

    def _isolating(self, selectors: frozenset[int], direction: Direction) -> tuple[IndexedPolicy, ...]:
        key = (selectors, direction)
        found = self._policies.get(key)
        if found is None:
            found = self._policies[key] = tuple(
                p for p in self.index.policies if p.target in selectors and direction in p.types
            )
        return found

    def _half_without(self, candidate: Candidate, direction: Direction, own: View, far: View) -> PortSet:
        """The half of ``own`` (the end whose policies decide) towards ``far`` once the
        candidate is removed; ports are the destination's."""
        if own.kind is not EndKind.POD:
            return ALL
        if candidate.policy.target not in own.selectors or direction not in candidate.directions():
            return self.decider.half(direction, own, far)
        kept = [
            p
            for p in self._isolating(own.selectors, direction)
            if candidate.rule is not None or p.ref != candidate.policy.ref
        ]
        removed = candidate.rule.id if candidate.rule is not None else None
        destination = far if direction is Direction.EGRESS else own
        allowed: PortSet | None = None
        if kept:
            allowed = NONE
            for policy in kept:
                for rule_id in policy.rules[direction]:
                    if rule_id == removed:
                        continue
                    rule = self.index.rules[rule_id]
                    if self.decider.peer_matches(rule, far):
                        allowed = allowed | self.decider.rule_ports(rule, destination)
        return self.decider.decide(direction, own, far, allowed)

    def _cell_without(self, candidate: Candidate, source: View, destination: View) -> PortSet:
        if source.impossible or destination.impossible:
            return NONE
        egress = self._half_without(candidate, Direction.EGRESS, source, destination)
        if not egress:
            return NONE
        return egress & self._half_without(candidate, Direction.INGRESS, destination, source)

    def _admitted(self, candidate: Candidate, direction: Direction, at: _Family) -> list[tuple[int | None, int | None]]:
        """(pod class, None) or (None, outside class) for every end a removed rule admits;
        every end when one admits any peer."""
        rules = [self.index.rules[r] for r in candidate.removed_rules(direction)]
        if any(r.any_peer for r in rules):
            return self._every_end(at)
        pods: set[int] = set()
        outside: set[int] = set()
        for rule in rules:
            for selector in rule.selectors:
                pods.update(at.lookup.by_selector.get(selector, ()))
            for block in rule.blocks:
                pods.update(at.lookup.by_block.get(block, ()))
                outside.update(at.lookup.outside_by_block.get(block, ()))
        return [(j, None) for j in sorted(pods)] + [(None, k) for k in sorted(outside)]

    def _admitted_nodes(self, candidate: Candidate, direction: Direction, at: _Family) -> list[_NodeEnd]:
        """The node ends a removed rule admits (an ipBlock holding their addresses, or any peer)."""
        rules = [self.index.rules[r] for r in candidate.removed_rules(direction)]
        if any(r.any_peer for r in rules):
            return list(at.nodes)
        blocks = {b for r in rules for b in r.blocks}
        return [n for n in at.nodes if not blocks.isdisjoint(n.view.blocks or ())]

    @staticmethod
    def _every_end(at: _Family) -> list[tuple[int | None, int | None]]:
        return [(j, None) for j in range(len(at.classes.views))] + [(None, k) for k in range(len(at.outside))]

    def _changes_in(self, candidate: Candidate, at: _Family) -> bool:
        classes = at.classes
        for direction in candidate.directions():
            admitted: list[tuple[int | None, int | None]] | None = None
            for i in at.lookup.by_selector.get(candidate.policy.target, ()):
                own = classes.views[i]
                if own.impossible:
                    continue
                still_isolated = candidate.rule is not None or any(
                    p.ref != candidate.policy.ref for p in self._isolating(own.selectors, direction)
                )
                if still_isolated:
                    admitted = admitted if admitted is not None else self._admitted(candidate, direction, at)
                    ends = admitted
                else:
                    ends = self._every_end(at)
                for j, k in ends:
                    far = classes.views[j] if j is not None else at.outside[k].view  # type: ignore[index]
                    source, destination = (own, far) if direction is Direction.EGRESS else (far, own)
                    if self._cell_without(candidate, source, destination) == self.decider.ports(source, destination):
                        continue
                    if j is None:
                        return True
                    pair = (classes.members[i], classes.members[j])
                    sources, destinations = pair if direction is Direction.EGRESS else pair[::-1]
                    if classes.ordinary_pair(sources, destinations) is not None:
                        return True
                nodes = self._admitted_nodes(candidate, direction, at) if still_isolated else at.nodes
                if any(self._node_changes(candidate, direction, own, node, classes.members[i]) for node in nodes):
                    return True
        return False

    def _node_changes(
        self, candidate: Candidate, direction: Direction, own: View, node: _NodeEnd, members: tuple[Pod, ...]
    ) -> bool:
        """Whether the cell between the class ``own`` and the node end changes, on a pair no
        bypass decides: pod -> node is always policy's; node -> pod only for a pod elsewhere."""
        source, destination = (own, node.view) if direction is Direction.EGRESS else (node.view, own)
        if self._cell_without(candidate, source, destination) == self.decider.ports(source, destination):
            return False
        return direction is Direction.EGRESS or any(p.node is None or {p.node} != node.nodes for p in members)

    def changes(self, candidate: Candidate) -> bool:
        """Whether removing the candidate changes some flow between ends of the relation."""
        return any(self._changes_in(candidate, at) for at in self._families)


def redundant_candidates(relation: Relation) -> Iterator[Candidate]:
    """Every policy, then every rule of a direction its policy isolates, that changes no flow
    when removed, in policy order."""
    checker = Redundancy(relation)
    policies = sorted(relation.index.policies, key=lambda p: p.ref)
    for policy in policies:
        candidate = Candidate(policy)
        if not checker.changes(candidate):
            yield candidate
    for policy in policies:
        for direction in (Direction.INGRESS, Direction.EGRESS):
            if direction not in policy.types:
                continue
            for rule_id in policy.rules[direction]:
                candidate = Candidate(policy, relation.index.rules[rule_id])
                if not checker.changes(candidate):
                    yield candidate
