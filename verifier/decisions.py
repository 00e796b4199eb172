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

Two bypasses depend on *which* pods meet, not on what policies see of them, and are therefore
applied by callers that know the pods (:mod:`verifier.relation`): a pod reaching its own
address, and ingress from the destination's own node.
"""

from __future__ import annotations

from policyctl.compiler.intervals import Interval
from policyctl.policy.model import Direction, PortMatch

from .index import EndKind, IndexedRule, NamedPorts, PolicyIndex, View
from .portsets import ALL, NONE, PortSet


def _port_match(match: PortMatch, destination: View) -> PortSet:
    if match.port is None:
        return PortSet.whole(match.protocol)
    if isinstance(match.port, int):
        high = match.end_port if match.end_port is not None else match.port
        return PortSet.of([(match.protocol, Interval(match.port, high))]) if high >= match.port else NONE
    if destination.kind is not EndKind.POD:
        return NONE
    numbers = next((n for name, protocol, n in destination.named if name == match.port and protocol is match.protocol), ())
    return PortSet.of((match.protocol, Interval(n, n)) for n in numbers)


class Decider:
    """Port sets between views of one cluster, memoised on everything they depend on."""

    def __init__(self, index: PolicyIndex) -> None:
        self.index = index
        self._rule_ports: dict[tuple[int, EndKind, NamedPorts], PortSet] = {}
        self._halves: dict[tuple[Direction, frozenset[int], NamedPorts, View], PortSet] = {}
        self._meets: dict[tuple[PortSet, PortSet], PortSet] = {}

    def rule_ports(self, rule: IndexedRule, destination: View) -> PortSet:
        key = (rule.id, destination.kind, destination.named)
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

    def half(self, direction: Direction, pod: View, other: View) -> PortSet:
        """One half: ``pod`` is the end whose policies decide (source for egress, destination
        for ingress), ``other`` the far end. Ports are those of the destination."""
        if pod.kind is not EndKind.POD:
            return ALL
        named = pod.named if direction is Direction.INGRESS else ()
        key = (direction, pod.selectors, named, other)
        found = self._halves.get(key)
        if found is None:
            isolated, rule_ids = self.index.applying(pod.selectors, direction)
            if not isolated:
                found = ALL
            else:
                destination = other if direction is Direction.EGRESS else pod
                found = NONE
                for rule_id in rule_ids:
                    rule = self.index.rules[rule_id]
                    if self.peer_matches(rule, other):
                        found = found | self.rule_ports(rule, destination)
            self._halves[key] = found
        return found

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

