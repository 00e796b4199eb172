"""The smallest change found that would flip a denied half, computed from its rule results.

For a pod that is isolated in a direction and whose connection no rule admits, a rule comes
close when one of its two conditions (peers, ports) already holds. Then one change to the
other condition flips the half, because rules and policies are ORed ("policies are additive"):

* the ports match but no peer does: relabel the other end's pod (cost 1) or namespace (cost
  2; it changes every pod of the namespace), or both (cost 3); for an end that only ipBlocks
  can match, add its address to the rule or drop the excepts that cut it out (cost 2);
* a peer matches but no port does: add the connection's port to the rule (cost 1);
* a policy with no rules for the direction: add a rule to it (cost 4: it opens everything).

Every candidate is applied to a copy of the cluster and the half decided again through the
``recheck`` callback; only changes that really flip it are returned. Relabelling can have
side effects a reason list does not show (the other end may be the pod itself, reached through
a Service, and a new label can change which policies select it), which is why nothing is
proposed unchecked. Output is sorted by (cost, text) and capped, so it is deterministic.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import overload

from policyctl.policy.ipblocks import EndAddress
from policyctl.policy.model import (
    Direction,
    IPBlockPeer,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Operator,
    OwnNamespace,
    Pod,
    PodPeer,
    PortMatch,
    Provenance,
    Rule,
)
from policyctl.policy.cluster import Cluster
from policyctl.policy.verdicts import Connection, Endpoint, Hint, PolicyResult, RuleResult

class LazyHints(Sequence[Hint]):
    """A denied half's hints, found the first time they are read. Finding them re-decides the
    half once per candidate change, many times the cost of the verdict itself, and most callers
    read only ``allowed`` (a matrix, the verifier's checks); ``explain`` reads them and gets
    exactly what an eager search would give. Equal to (and hashed as) the tuple it stands for."""

    __slots__ = ("_compute", "_value")

    def __init__(self, compute: Callable[[], tuple[Hint, ...]]) -> None:
        self._compute: Callable[[], tuple[Hint, ...]] | None = compute
        self._value: tuple[Hint, ...] | None = None

    def _hints(self) -> tuple[Hint, ...]:
        if self._value is None:
            assert self._compute is not None
            self._value, self._compute = self._compute(), None
        return self._value

    @overload
    def __getitem__(self, index: int) -> Hint: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Hint, ...]: ...

    def __getitem__(self, index: int | slice) -> Hint | tuple[Hint, ...]:
        return self._hints()[index]

    def __len__(self) -> int:
        return len(self._hints())

    def __iter__(self) -> Iterator[Hint]:
        return iter(self._hints())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyHints):
            return self._hints() == other._hints()
        if isinstance(other, tuple):
            return self._hints() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._hints())

    def __repr__(self) -> str:
        return repr(self._hints())

    def __reduce__(self) -> tuple[type[tuple[Hint, ...]], tuple[tuple[Hint, ...]]]:
        return (tuple, (self._hints(),))


Recheck = Callable[[Cluster, Connection], bool]
"""Decides the same half again on a changed cluster/connection: True when it is allowed."""

MAX_HINTS = 5


@dataclass(frozen=True, slots=True)
class _Candidate:
    cost: int
    text: str
    cluster: Cluster
    connection: Connection
    provenance: Provenance | None = None


def _label_changes(selector: LabelSelector, labels: Mapping[str, str]) -> dict[str, str | None] | None:
    """Label edits (value, or None to remove) that make ``labels`` match ``selector``; None
    when a requirement cannot be met by a definite edit (``Exists`` names no value)."""
    changes: dict[str, str | None] = {}
    for requirement in selector.failing(labels):
        if requirement.operator is Operator.IN:
            changes[requirement.key] = requirement.values[0]
        elif requirement.operator is Operator.EXISTS:
            return None
        else:
            changes[requirement.key] = None
    edited = _edit(labels, changes)
    return changes if selector.matches(edited) else None


def _edit(labels: Mapping[str, str], changes: Mapping[str, str | None]) -> Labels:
    kept = {k: v for k, v in labels.items() if k not in changes}
    return Labels({**kept, **{k: v for k, v in changes.items() if v is not None}})


def _describe_changes(changes: Mapping[str, str | None], *, target: str, namespace: bool) -> str:
    parts = []
    for key in sorted(changes):
        value = changes[key]
        if value is None:
            parts.append(f"remove label {key} from {target}")
        elif namespace:
            parts.append(f"label {target} with {key}={value}")
        else:
            parts.append(f"add label {key}={value} to {target}")
    return " and ".join(parts)


def _relabel_pod(cluster: Cluster, connection: Connection, pod: Pod, labels: Labels) -> tuple[Cluster, Connection]:
    changed = replace(pod, labels=labels)

    def swap(end: Endpoint) -> Endpoint:
        return changed if isinstance(end, Pod) and end.key == pod.key else end

    pods = tuple(changed if p.key == pod.key else p for p in cluster.pods)
    return (
        replace(cluster, pods=pods),
        replace(connection, source=swap(connection.source), destination=swap(connection.destination)),
    )


def _relabel_namespace(cluster: Cluster, name: str, labels: Labels) -> Cluster:
    others = tuple(n for n in cluster.namespaces if n.name != name)
    found = cluster.namespace_by_name.get(name)
    updated = replace(found, labels=labels) if found else Namespace(name, labels)
    return replace(cluster, namespaces=tuple(sorted((*others, updated), key=lambda n: n.name)))


def _replace_rule(cluster: Cluster, policy: NetworkPolicy, rule: Rule) -> Cluster:
    def swap(current: tuple[Rule, ...]) -> tuple[Rule, ...]:
        return tuple(rule if (r.direction, r.index) == (rule.direction, rule.index) else r for r in current)

    changed = replace(policy, ingress=swap(policy.ingress), egress=swap(policy.egress))
    return replace(cluster, policies=tuple(changed if p.ref == policy.ref else p for p in cluster.policies))


def _where(rule: RuleResult, policy: NetworkPolicy) -> str:
    provenance = rule.provenance or policy.provenance
    return f"rule {rule.index} of {policy.ref}" + (f" ({provenance})" if provenance else "")


def _peer_candidates(
    cluster: Cluster,
    connection: Connection,
    *,
    policy: NetworkPolicy,
    rule: Rule,
    result: RuleResult,
    other: Endpoint,
    address: EndAddress,
) -> list[_Candidate]:
    found: list[_Candidate] = []
    where = _where(result, policy)
    for peer_result in result.peers:
        peer = peer_result.peer
        if isinstance(peer, PodPeer) and isinstance(other, Pod) and not other.host_network:
            found.extend(_label_candidates(cluster, connection, peer=peer, other=other))
        elif isinstance(peer, IPBlockPeer) and address.address is not None and address.address in peer.cidr:
            cutting = tuple(e for e in peer.excepts if address.address in e)
            widened = replace(peer, excepts=tuple(e for e in peer.excepts if e not in cutting))
            new_rule = replace(rule, peers=tuple(widened if p == peer else p for p in rule.peers))
            text = f"remove except {', '.join(str(e) for e in cutting)} from ipBlock {peer.cidr} in {where}"
            found.append(_Candidate(2, text, _replace_rule(cluster, policy, new_rule), connection, result.provenance))
    if address.address is not None and not found:
        block = IPBlockPeer(ipaddress.ip_network(address.address), written=str(address.address))
        new_rule = replace(rule, peers=(*rule.peers, block))
        text = f"add ipBlock {block.cidr} to {where}"
        found.append(_Candidate(2, text, _replace_rule(cluster, policy, new_rule), connection, result.provenance))
    return found


def _label_candidates(cluster: Cluster, connection: Connection, *, peer: PodPeer, other: Pod) -> list[_Candidate]:
    if isinstance(peer.namespaces, OwnNamespace):
        if peer.namespaces.name != other.namespace:
            return []
        namespace_changes: dict[str, str | None] | None = {}
    else:
        namespace_changes = _label_changes(peer.namespaces.selector, cluster.namespace_labels(other.namespace))
    pod_changes = _label_changes(peer.pods, other.labels)
    if namespace_changes is None or pod_changes is None:
        return []
    texts, cost = [], 0
    changed_cluster, changed_connection = cluster, connection
    provenance = None
    if namespace_changes:
        labels = _edit(cluster.namespace_labels(other.namespace), namespace_changes)
        changed_cluster = _relabel_namespace(changed_cluster, other.namespace, labels)
        texts.append(_describe_changes(namespace_changes, target=f"namespace {other.namespace}", namespace=True))
        cost += 2
        found = cluster.namespace_by_name.get(other.namespace)
        provenance = found.provenance if found else None
    if pod_changes:
        changed_cluster, changed_connection = _relabel_pod(
            changed_cluster, changed_connection, other, _edit(other.labels, pod_changes)
        )
        texts.append(_describe_changes(pod_changes, target=other.key, namespace=False))
        cost += 1
        provenance = other.provenance
    if not texts:
        return []
    return [_Candidate(cost, " and ".join(texts), changed_cluster, changed_connection, provenance)]


def find_hints(
    cluster: Cluster,
    connection: Connection,
    *,
    direction: Direction,
    other: Endpoint,
    address: EndAddress,
    results: tuple[PolicyResult, ...],
    recheck: Recheck,
) -> tuple[Hint, ...]:
    """Hints for a denied, isolated half: the checked candidates, cheapest first."""
    by_ref = {p.ref: p for p in cluster.policies}
    candidates: list[_Candidate] = []
    for result in results:
        policy = by_ref.get(result.policy)
        if policy is None:
            continue
        rules = {r.index: r for r in policy.rules(direction)}
        if not rules:
            noun = direction.value.lower()
            text = (
                f"the pod is selected by {policy.ref}" + (f" ({policy.provenance})" if policy.provenance else "")
                + f" which allows nothing for {direction.value}: add an {noun} rule"
            )
            allow_all = (Rule(direction, 0, provenance=policy.provenance),)
            if direction is Direction.INGRESS:
                opened = replace(policy, ingress=allow_all)
            else:
                opened = replace(policy, egress=allow_all)
            changed = replace(cluster, policies=tuple(opened if p.ref == policy.ref else p for p in cluster.policies))
            candidates.append(_Candidate(4, text, changed, connection, policy.provenance))
            continue
        for rule_result in result.rules:
            rule = rules[rule_result.index]
            if rule_result.port_matched and not rule_result.peer_matched:
                candidates.extend(
                    _peer_candidates(
                        cluster, connection, policy=policy, rule=rule, result=rule_result, other=other, address=address
                    )
                )
            elif rule_result.peer_matched and not rule_result.port_matched:
                added = PortMatch(connection.protocol, connection.port)
                text = f"add port {added} to {_where(rule_result, policy)}"
                changed = _replace_rule(cluster, policy, replace(rule, ports=(*rule.ports, added)))
                candidates.append(_Candidate(1, text, changed, connection, rule_result.provenance))
    hints: dict[str, Hint] = {}
    for candidate in sorted(candidates, key=lambda c: (c.cost, c.text)):
        if candidate.text not in hints and recheck(candidate.cluster, candidate.connection):
            hints[candidate.text] = Hint(candidate.text, candidate.provenance)
        if len(hints) == MAX_HINTS:
            break
    return tuple(hints.values())
