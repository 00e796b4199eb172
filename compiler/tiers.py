"""The cluster-scoped tiers in a local pod's chain: Admin rules, NetworkPolicy, Baseline rules.

The ClusterNetworkPolicy API orders evaluation per direction: "Admin tier ... NetworkPolicy
tier ... Baseline tier", the first matching rule of a tier decides ("Policies with lower
priority values have higher precedence"; within a policy, rules in the order written), ``Pass``
"skips all further ClusterNetworkPolicy rules in the current tier", "v1.NetworkPolicy always
makes a final decision for selected pods", and the default allow applies last. That order is
compiled into the pod's chain, one nft rule per cluster rule and family, so the kernel decides
without userspace:

* ``Accept`` is ``counter accept``: it ends this direction's base chain only, so the other
  direction (the next postrouting base chain) still decides, as "an egress Accept still leaves
  the destination's ingress to decide";
* ``Deny`` logs (rate-limited, the pod's prefix) and is ``counter drop`` (audit mode: log,
  count and return), as the NetworkPolicy stage denies;
* ``Pass`` is ``counter goto <pod chain>-pass``, the NetworkPolicy or Baseline stage without
  the rest of the Admin tier (``counter return`` when that stage is empty).

Peers and ports of a rule are one set lookup: a set per (policy, rule, family) holding the
peer addresses (pods its ``namespaces``/``pods`` peers select, ``networks`` CIDRs, the selected
nodes' addresses), or peer address . protocol . port when the rule has ports. Which pods and
nodes a peer selects is decided by :mod:`policy.tiers` and :mod:`policy.peers`, per pod
identity. A named port resolves on the destination pod: for ingress on the local pod (the set
is then per resolved port list), for egress on each peer pod. ``domainNames`` peers match
nothing (names are not resolved on the data path) and leave a counter-only rule saying so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from policyctl.policy.clustermodel import (
    Action,
    ClusterNetworkPolicy,
    ClusterRule,
    DomainNamesPeer,
    NodesPeer,
    Tier,
)
from policyctl.policy.ipblocks import end_address
from policyctl.policy.model import Direction, Family, IPBlockPeer, Pod, PodPeer
from policyctl.policy.cluster import Cluster
from policyctl.policy.peers import match_pod_peer
from policyctl.policy.tiers import (
    applying_policies,
    match_cluster_peer,
    match_nodes_peer,
)

from .elements import PROTOCOL_NUMBERS, disjoint_boxes, resolve_port
from .identities import Identity, IdentityIndex, identity_of
from .intervals import Interval, address_interval, block_intervals, normalise
from .ruleset import (
    Chain,
    Counter,
    Element,
    FieldType,
    Goto,
    Key,
    Lookup,
    Rule,
    Set,
    Statement,
    Verdict,
)

COMMENT_MAX_BYTES = 128


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _v(family: Family) -> str:
    return "4" if family is Family.IPV4 else "6"


def _prefix(direction: Direction) -> str:
    return "in" if direction is Direction.INGRESS else "out"


@dataclass(frozen=True, slots=True)
class Stages:
    """The cluster policies that apply to one local pod in one direction, by tier, in
    precedence order (:func:`policy.tiers.applying_policies`)."""

    admin: tuple[ClusterNetworkPolicy, ...]
    baseline: tuple[ClusterNetworkPolicy, ...]

    @property
    def empty(self) -> bool:
        return not self.admin and not self.baseline


@dataclass
class TierSets:
    """The peer sets of cluster rules on one node, built once per (policy, rule, family and,
    for ingress named ports, resolved ports) and shared by every local pod that uses them."""

    cluster: Cluster
    index: IdentityIndex
    sets: dict[str, Set] = field(default_factory=dict)
    _peers: dict[tuple[object, ...], tuple[Interval, ...]] = field(default_factory=dict)
    _stages: dict[tuple[Identity, Direction], Stages] = field(default_factory=dict)

    def stages(self, pod: Pod, direction: Direction) -> Stages:
        """Per pod identity: subject selection reads only namespace and pod labels."""
        identity = identity_of(pod)
        assert identity is not None
        key = (identity, direction)
        if key not in self._stages:
            self._stages[key] = Stages(
                applying_policies(self.cluster, Tier.ADMIN, pod, direction),
                applying_policies(self.cluster, Tier.BASELINE, pod, direction),
            )
        return self._stages[key]

    def peer_intervals(self, policy: ClusterNetworkPolicy, rule: ClusterRule, family: Family) -> tuple[Interval, ...]:
        """The addresses in ``family`` that some peer of ``rule`` matches."""
        key = (policy.ref, rule.direction, rule.index, family)
        if key not in self._peers:
            found: list[Interval] = []
            for peer in rule.peers:
                found.extend(self._peer(peer, family))
            self._peers[key] = normalise(found)
        return self._peers[key]

    def _peer(self, peer: object, family: Family) -> Iterable[Interval]:
        if isinstance(peer, PodPeer):
            for members in self.index.members.values():
                if match_pod_peer(self.cluster, peer, other=members[0]).matched:
                    yield from (address_interval(ip) for m in members if (ip := m.ip(family)) is not None)
        elif isinstance(peer, IPBlockPeer):
            if Family.of(peer.cidr) is family:
                yield from block_intervals(peer.cidr, peer.excepts)
        elif isinstance(peer, NodesPeer):
            for node in self.cluster.nodes:
                address = end_address(self.cluster, node, family)
                if address.address is None:
                    continue
                if match_nodes_peer(self.cluster, peer, other=node, address=address).matched:
                    yield from (address_interval(a) for a in node.addresses if Family.of(a) is family)
            for pod in self.cluster.pods:
                address = end_address(self.cluster, pod, family)
                if not pod.host_network or address.address is None:
                    continue
                if match_nodes_peer(self.cluster, peer, other=pod, address=address).matched:
                    yield address_interval(address.address)
        # A DomainNamesPeer matches nothing: names are not resolved on the data path.

    def _egress_named(self, rule: ClusterRule, family: Family) -> list[tuple[Interval, int, Interval]]:
        """Boxes of an egress rule's named ports, resolved on every pod some peer matches."""
        named = [m for m in rule.ports if isinstance(m.port, str)]
        boxes: list[tuple[Interval, int, Interval]] = []
        if not named:
            return boxes
        for pod in self.cluster.pods:
            if pod.host_network:
                continue
            address = end_address(self.cluster, pod, family)
            if address.address is None:
                continue
            matched = (
                match_cluster_peer(self.cluster, p, other=pod, address=address, family=family).matched
                for p in rule.peers
            )
            if not any(matched):
                continue
            for match in named:
                for iv in resolve_port(match, pod):
                    boxes.append((address_interval(address.address), PROTOCOL_NUMBERS[match.protocol], iv))
        return boxes

    def rule_set(self, policy: ClusterNetworkPolicy, rule: ClusterRule, family: Family, local: Pod) -> str | None:
        """The name of the set ``rule`` is looked up in for ``local`` (made on first use), or
        None when the rule matches nothing in ``family``."""
        peers = self.peer_intervals(policy, rule, family)
        source = f"{policy.ref} {_label(rule)}" + (f" {rule.provenance}" if rule.provenance else "")
        prefix = f"{_prefix(rule.direction)}-tier"
        address = FieldType.address(family)
        if not rule.ports:
            if not peers:
                return None
            name = f"{prefix}-{_digest(repr((policy.ref, rule.direction, rule.index)))}-v{_v(family)}"
            if name not in self.sets:
                self.sets[name] = _set(name, (address,), tuple((iv,) for iv in peers), source)
            return name
        ingress = rule.direction is Direction.INGRESS
        static = [
            (PROTOCOL_NUMBERS[m.protocol], iv)
            for m in rule.ports if ingress or not isinstance(m.port, str)
            for iv in resolve_port(m, local if ingress else None)
        ]  # fmt: skip
        static = sorted(set(static), key=lambda item: (item[0], item[1]))
        name = f"{prefix}-{_digest(repr((policy.ref, rule.direction, rule.index, static)))}-ports-v{_v(family)}"
        if name not in self.sets:
            boxes = [(peer, proto, iv) for peer in peers for proto, iv in static]
            if not ingress:
                boxes += self._egress_named(rule, family)
            if not boxes:
                self.sets[name] = _set(name, (), (), source)
            else:
                elements = disjoint_boxes(boxes)
                self.sets[name] = _set(name, (address, FieldType.PROTO, FieldType.SERVICE), elements, source)
        return name if self.sets[name].elements else None

    def used(self) -> tuple[Set, ...]:
        return tuple(s for _, s in sorted(self.sets.items()) if s.elements)


def _label(rule: ClusterRule) -> str:
    """``egress[1] name``: nft's text syntax takes no quote inside a comment."""
    return rule.label.replace('"', "")


def _set(name: str, types: tuple[FieldType, ...], elements: tuple[Element, ...], source: str) -> Set:
    interval = any(not iv.is_single for e in elements for iv in e)
    return Set(name, types, tuple(sorted(elements)), interval, source[:COMMENT_MAX_BYTES], (source,))


def _comment(policy: ClusterNetworkPolicy, rule: ClusterRule, family: Family) -> str:
    """The policy first (``enforcer.stats`` counts a rule for the ``Kind/name`` it names)."""
    where = f" {rule.provenance}" if rule.provenance else ""
    text = (
        f"{policy.ref} {_label(rule)} {rule.action.value.lower()}, {policy.tier.value} tier priority "
        f"{policy.priority}, {family.value}{where}"
    )
    return text[:COMMENT_MAX_BYTES]


@dataclass(frozen=True, slots=True)
class Denial:
    """What a Deny does, as the NetworkPolicy stage does it: ``log`` (rate-limited) in one
    rule, then ``counter`` and ``final`` (drop; audit mode: return) in the next."""

    log: tuple[Statement, ...]
    final: Verdict


def tier_rules(
    sets: TierSets,
    policies: Iterable[ClusterNetworkPolicy],
    direction: Direction,
    local: Pod,
    *,
    denial: Denial,
    passed: Statement,
) -> list[Rule]:
    """The nft rules of one tier for ``local``, in precedence order: per cluster rule and
    family the local pod has an address in, one lookup with the rule's verdict (a Deny: a
    logging lookup, then the counting one, so its counter names the policy)."""
    rules: list[Rule] = []
    peer_is_source = direction is Direction.INGRESS
    families = [f for f in (Family.IPV4, Family.IPV6) if local.ip(f) is not None]
    for policy in policies:
        for rule in policy.rules(direction):
            verdict: Statement = {Action.ACCEPT: Verdict.ACCEPT, Action.DENY: denial.final}.get(rule.action, passed)
            domains = [p for p in rule.peers if isinstance(p, DomainNamesPeer)]
            if domains:
                names = ",".join(n for p in domains for n in p.names)
                note = f"{policy.ref} {_label(rule)}: domainNames {names} not enforced: names are not resolved"
                rules.append(Rule((Counter(),), note[:COMMENT_MAX_BYTES]))
            for family in families:
                name = sets.rule_set(policy, rule, family, local)
                if name is None:
                    continue
                peer = Key.address(family, source=peer_is_source)
                lookup = Lookup((peer, Key.L4PROTO, Key.TH_DPORT) if rule.ports else (peer,), name)
                if rule.action is Action.DENY:
                    rules.append(Rule((lookup, *denial.log)))
                rules.append(Rule((lookup, Counter(), verdict), _comment(policy, rule, family)))
    return rules


def tier_chains(
    sets: TierSets,
    stages: Stages,
    direction: Direction,
    local: Pod,
    *,
    name: str,
    network_policy: tuple[Rule, ...] | None,
    denial: Denial,
    comment: str,
) -> tuple[Chain, ...]:
    """The pod chain ``name`` (Admin rules, then the lower stage) and, when an Admin rule
    passes to a non-empty lower stage, ``name-pass`` (the lower stage alone). The lower stage
    is the NetworkPolicy stage when ``network_policy`` is given (the pod is isolated: allow
    lookups, log, drop), else the Baseline rules; falling off the end returns, and the base
    chain accepts (the default allow)."""
    lower: list[Rule]
    if network_policy is not None:
        lower = list(network_policy)
    else:
        lower = tier_rules(sets, stages.baseline, direction, local, denial=denial, passed=Verdict.RETURN)
    pass_name = f"{name}-pass"
    passed: Statement = Goto(pass_name) if lower else Verdict.RETURN
    admin = tier_rules(sets, stages.admin, direction, local, denial=denial, passed=passed)
    chains = [Chain(name, tuple(admin + lower), comment=comment)]
    if any(isinstance(s, Goto) and s.target == pass_name for r in admin for s in r.statements):
        chains.append(Chain(pass_name, tuple(lower), comment=f"{comment}, after an Admin Pass"))
    return tuple(chains)
