"""Lint rules about cluster-scoped tiers: rules that never decide, ties, passes to nowhere.

The API rules they rest on (``policy.networking.k8s.io`` ClusterNetworkPolicy, see
:mod:`policy.tiers`): within a tier the first matching rule by (priority, rule order) decides;
"If two (or more) policies in the same tier with the same priority could match a connection,
then the implementation can apply any of the matching policies"; ``Pass`` "skips all further
ClusterNetworkPolicy rules in the current tier"; "v1.NetworkPolicy always makes a final
decision for selected pods", so the Baseline tier is only consulted for pods no NetworkPolicy
isolates in that direction; ``domainNames`` need DNS answers, which policyctl does not see.

Each rule is decided over the existing ends by class (:mod:`verifier.index`): the pods a
subject selects grouped by view, and as the other end every pod class, every outside address
class and every node, in every family the cluster uses; per pair the tier walk of
:class:`~verifier.decisions.Decider` says which ports each rule decides. A finding therefore
speaks of the manifests' pods; without pods the class rules stay silent (like the other lint
rules that need pods), and ``domain-names-not-enforced`` still fires.

What each rule checks, precisely:

* ``cluster-rule-shadowed``: a rule whose subject selects some pod and whose peers and ports
  match some traffic, but which decides no port for any (subject pod, other end) pair because
  earlier rules of its tier (or, for a Baseline rule, the Admin tier) decided all of it. An
  Admin Deny whose traffic a higher-precedence Accept takes is the case the name says.
* ``same-priority-overlap``: two policies of one tier with the same priority whose rules both
  match some connection that reaches that priority, with different actions (the order between
  them is undefined by the API; policyctl takes the first by kind and name).
* ``pass-to-nowhere``: a Baseline Pass (there is no lower tier: it acts as the default allow,
  i.e. as Accept), or an Admin Pass that passes some traffic and all of it reaches only pods
  that no NetworkPolicy isolates in that direction and that no Baseline rule matches: it then
  acts as Accept too.
* ``baseline-unreachable``: a Baseline rule whose subject selects some pods, every one of them
  isolated by NetworkPolicy in the rule's direction, so the rule never applies.
* ``domain-names-not-enforced``: every ``domainNames`` peer (it matches no traffic here), for
  policies the loader did not already report (it warns with the same code when it reads a
  file).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from policyctl.policy.clustermodel import (
    Action,
    ClusterNetworkPolicy,
    ClusterRule,
    DomainNamesPeer,
    Tier,
)
from policyctl.policy.diagnostics import Diagnostic, Severity, format_path
from policyctl.policy.model import Direction, Family, Pod
from policyctl.policy.cluster import Cluster
from policyctl.verifier.decisions import Decider
from policyctl.verifier.index import EndKind, IndexedClusterRule, PolicyIndex, View
from policyctl.verifier.lint_context import Check, LintContext, LintRule, pod_list
from policyctl.verifier.portsets import ALL, NONE, PortSet
from policyctl.verifier.relation import Relation

SHADOWED = LintRule(
    "cluster-rule-shadowed",
    Severity.WARNING,
    "cluster rule decides nothing: earlier rules decide all the traffic it matches",
    "Within a tier the first matching rule decides (priority, then rule order): a rule whose "
    "traffic higher-precedence rules always take never applies, e.g. a Deny under an Accept.",
)
SAME_PRIORITY = LintRule(
    "same-priority-overlap",
    Severity.WARNING,
    "two policies of one tier with the same priority decide the same traffic differently",
    "The API leaves the order of equal priorities undefined (implementations may apply either); "
    "policyctl applies the first by kind and name. Give them different priorities.",
)
PASS_TO_NOWHERE = LintRule(
    "pass-to-nowhere",
    Severity.WARNING,
    "Pass reaches no lower tier: the traffic it passes is allowed by default",
    "Pass hands traffic to the next tier; after the Baseline tier, or where no NetworkPolicy "
    "isolates the pods and no Baseline rule matches, it is allowed: write Accept if meant.",
)
BASELINE_UNREACHABLE = LintRule(
    "baseline-unreachable",
    Severity.WARNING,
    "Baseline rule reaches no pod: NetworkPolicy isolates every pod its subject selects",
    "NetworkPolicy decides finally for the pods it isolates, before the Baseline tier: a "
    "Baseline rule for such pods never applies.",
)
DOMAIN_NAMES = LintRule(
    "domain-names-not-enforced",
    Severity.WARNING,
    "domainNames peer is not enforced: names are not resolved",
    "Matching domainNames needs the DNS answers the pod received, which an nftables data path "
    "does not see: policyctl matches no traffic with this peer. Use networks CIDRs instead.",
)

_PEERS_KEY = {Direction.INGRESS: ("ingress", "from"), Direction.EGRESS: ("egress", "to")}
_PRECEDENCE = {Tier.ADMIN: 0, Tier.BASELINE: 1}


def _rule_path(rule: ClusterRule) -> tuple[str | int, ...]:
    return ("spec", _PEERS_KEY[rule.direction][0], rule.index)


def _finding(rule: LintRule, policy: ClusterNetworkPolicy, cluster_rule: ClusterRule | None, message: str, *,
             hint: str, path: tuple[str | int, ...] | None = None) -> Diagnostic:  # fmt: skip
    place = (cluster_rule.provenance if cluster_rule is not None else None) or policy.provenance
    where = path if path is not None else (_rule_path(cluster_rule) if cluster_rule is not None else ("spec",))
    return Diagnostic(
        place.file if place else "", place.line if place else 0, rule.severity, rule.code, message,
        field=format_path(where), object=str(policy), hint=hint,
    )  # fmt: skip


def _where(policy: ClusterNetworkPolicy) -> str:
    return f"{policy} ({policy.provenance})" if policy.provenance else str(policy)


@dataclass(frozen=True, slots=True)
class End:
    """One class of ends: its view and a name for messages."""

    view: View
    name: str
    pods: tuple[Pod, ...] = ()


@dataclass(frozen=True, slots=True)
class Walk:
    """Per rule id, the ports it decided for one (pod, other end) pair, and what reached the
    Baseline tier."""

    hits: dict[int, PortSet]
    matched: dict[int, PortSet]
    to_baseline: PortSet
    network_policy: bool


@dataclass
class TierLint:
    """The cluster's ends by class and the tier walk over them (see the module docstring)."""

    context: LintContext
    relation: Relation = field(init=False)

    _walks: dict[tuple[object, ...], Walk] = field(init=False, default_factory=dict)
    _others: dict[tuple[object, ...], tuple[End, ...]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.relation = Relation(self.context.cluster)

    @property
    def index(self) -> PolicyIndex:
        return self.relation.index

    @property
    def decider(self) -> Decider:
        return self.relation.decider

    @cached_property
    def ends(self) -> dict[Family, tuple[tuple[End, ...], tuple[End, ...]]]:
        """Per family: (pod classes a subject can select, every other-end class)."""
        found = {}
        for family in self.relation.families:
            grouped: dict[View, list[Pod]] = {}
            for pod in self.relation.pods:
                grouped.setdefault(self.index.view_of_pod(pod, family), []).append(pod)
            pods = tuple(End(v, members[0].key, tuple(members)) for v, members in grouped.items() if not v.impossible)
            subjects = tuple(e for e in pods if e.view.kind is EndKind.POD)
            outside = tuple(End(c.view, str(c.witness)) for c in self.relation.external(family))
            nodes = tuple(End(self.index.view_of_node(n, family), f"node {n.name}") for n in self.context.cluster.nodes)
            others = pods + outside + tuple(e for e in nodes if not e.view.impossible)
            found[family] = (subjects, others)
        return found

    def pairs(self, subject: int, direction: Direction) -> Iterator[tuple[End, End]]:
        """(pod class the subject selects, other-end class), in every family; of the other
        ends only one per distinct thing the rules applying to the pod can see of them (the
        walk depends on nothing else, so every answer about "some pair" is unchanged)."""
        for family, (subjects, others) in self.ends.items():
            for pod in subjects:
                if subject in pod.view.selectors:
                    for other in self._distinct(family, direction, pod.view.selectors, others):
                        yield pod, other

    def _distinct(self, family: Family, direction: Direction, selectors: frozenset[int],
                  others: tuple[End, ...]) -> tuple[End, ...]:  # fmt: skip
        mentioned = self.decider.mentioned(direction, selectors)
        key = (family, direction, mentioned)
        found = self._others.get(key)
        if found is None:
            chosen: dict[tuple[object, ...], End] = {}
            for other in others:
                chosen.setdefault(self.decider.seen(direction, selectors, other.view), other)
            found = self._others[key] = tuple(chosen.values())
        return found

    def walk(self, pod: View, other: View, direction: Direction) -> Walk:
        """The tiers for one pair, recording what each rule decides (``hits``) and what it
        matches whatever came before (``matched``); memoised on what the rules applying to the
        pod can see of ``other`` (:meth:`Decider.seen`)."""
        named = pod.named if direction is Direction.INGRESS else ()
        key = (direction, pod.selectors, named, self.decider.seen(direction, pod.selectors, other))
        found = self._walks.get(key)
        if found is None:
            found = self._walk(pod, other, direction)
            self._walks[key] = found
        return found

    def _walk(self, pod: View, other: View, direction: Direction) -> Walk:
        tiers = self.index.tiered(pod.selectors, direction)
        destination = other if direction is Direction.EGRESS else pod
        hits: dict[int, PortSet] = {}
        matched: dict[int, PortSet] = {}

        def run(rule_ids: tuple[int, ...], undecided: PortSet) -> tuple[PortSet, PortSet]:
            passed = NONE
            for rule_id in rule_ids:
                rule = self.index.cluster_rules[rule_id]
                if not self.decider.cluster_peer_matches(rule, other):
                    continue
                ports = self.decider.rule_ports(rule, destination)
                matched[rule_id] = ports
                hits[rule_id] = undecided & ports
                if rule.action is Action.PASS:
                    passed = passed | (undecided & ports)
                undecided = undecided - ports
            return passed, undecided

        passed, undecided = run(tiers.admin, ALL)
        isolated = self.decider.network_policy(direction, pod, other) is not None
        to_baseline = NONE if isolated else passed | undecided
        run(tiers.baseline, to_baseline)
        return Walk(hits, matched, to_baseline, isolated)

    def policies(self) -> Iterator[tuple[ClusterNetworkPolicy, int, Direction, tuple[int, ...]]]:
        for indexed in self.index.cluster_policies:
            for direction in (Direction.INGRESS, Direction.EGRESS):
                if indexed.rules[direction]:
                    yield indexed.policy, indexed.subject, direction, indexed.rules[direction]


_LAST: list[tuple[Cluster, TierLint]] = []


def _tiers(context: LintContext) -> TierLint | None:
    """The tier walk of the context's cluster, shared by the rules of one lint run; None when
    the cluster has no cluster-scoped policy (nothing to build)."""
    cluster = context.cluster
    if not cluster.cluster_policies:
        return None
    if _LAST and _LAST[0][0] is cluster:
        return _LAST[0][1]
    found = TierLint(context)
    _LAST[:] = [(cluster, found)]
    return found


def _rule_of(index: PolicyIndex, rule_id: int) -> IndexedClusterRule:
    return index.cluster_rules[rule_id]


def shadowed_rules(context: LintContext) -> Iterator[Diagnostic]:
    tiers = _tiers(context)
    if tiers is None:
        return
    index = tiers.index
    for policy, subject, direction, rule_ids in tiers.policies():
        decided = {r: False for r in rule_ids}
        matches = {r: False for r in rule_ids}
        takers: dict[int, dict[int, None]] = {r: {} for r in rule_ids}
        for pod, other in tiers.pairs(subject, direction):
            walk = tiers.walk(pod.view, other.view, direction)
            for rule_id in rule_ids:
                ports = walk.matched.get(rule_id, NONE)
                if not ports:
                    continue
                if walk.hits.get(rule_id):
                    decided[rule_id] = True
                    continue
                if policy.tier is Tier.BASELINE and walk.network_policy:
                    continue
                matches[rule_id] = True
                for earlier, hit in walk.hits.items():
                    if earlier != rule_id and hit & ports:
                        takers[rule_id].setdefault(earlier)
                if policy.tier is Tier.BASELINE and not (walk.to_baseline & ports):
                    takers[rule_id].setdefault(-1)
        for rule_id in rule_ids:
            if decided[rule_id] or not matches[rule_id]:
                continue
            rule = _rule_of(index, rule_id).rule
            names = []
            for taker in takers[rule_id]:
                if taker < 0:
                    names.append("the Admin tier")
                    continue
                taken = _rule_of(index, taker)
                owner = next(p.policy for p in index.cluster_policies if p.policy.ref == taken.policy)
                where = f" ({taken.rule.provenance})" if taken.rule.provenance else ""
                names.append(f"{taken.action.value} {owner} {taken.rule.label}{where}")
            accept_over_deny = rule.action is Action.DENY and any(
                t >= 0 and _rule_of(index, t).action is Action.ACCEPT for t in takers[rule_id]
            )
            what = f"{policy.tier.value} {rule.action.value}" + (" shadowed by a higher-precedence Accept" if
                                                                accept_over_deny else " shadowed")  # fmt: skip
            yield _finding(
                SHADOWED, policy, rule,
                f"{what}: {policy} {rule.label} matches traffic, but all of it is decided before it by "
                f"{'; '.join(names) or 'earlier rules'}",
                hint="remove the rule, or move it (or its policy, by a lower priority) before the rules named",
            )  # fmt: skip


def same_priority_overlaps(context: LintContext) -> Iterator[Diagnostic]:
    tiers = _tiers(context)
    if tiers is None:
        return
    index = tiers.index
    by_key: dict[tuple[Tier, int], list[int]] = {}
    for i, indexed in enumerate(index.cluster_policies):
        by_key.setdefault((indexed.policy.tier, indexed.policy.priority), []).append(i)
    for positions in by_key.values():
        for a_at, first in enumerate(positions):
            for second in positions[a_at + 1:]:
                yield from _overlap(tiers, first, second)


def _overlap(tiers: TierLint, first: int, second: int) -> Iterator[Diagnostic]:
    index, decider = tiers.index, tiers.decider
    a, b = index.cluster_policies[first], index.cluster_policies[second]
    for direction in (Direction.INGRESS, Direction.EGRESS):
        if not (a.rules[direction] and b.rules[direction]):
            continue
        for pod, other in tiers.pairs(a.subject, direction):
            if b.subject not in pod.view.selectors:
                continue
            reaching = _reaching(tiers, pod.view, other.view, direction, a.policy)
            if not reaching:
                continue
            destination = other.view if direction is Direction.EGRESS else pod.view
            split_a = decider.tier(a.rules[direction], reaching, other.view, destination)
            split_b = decider.tier(b.rules[direction], reaching, other.view, destination)
            conflict = (
                (split_a.accepted & (split_b.denied | split_b.passed))
                | (split_a.denied & (split_b.accepted | split_b.passed))
                | (split_a.passed & (split_b.accepted | split_b.denied))
            )
            if not conflict:
                continue
            protocol, port = conflict.first()  # type: ignore[misc]
            source, target = (other.name, pod.name) if direction is Direction.INGRESS else (pod.name, other.name)
            policy = a.policy
            yield _finding(
                SAME_PRIORITY, policy, None,
                f"{_where(a.policy)} and {_where(b.policy)} are both {policy.tier.value} tier priority "
                f"{policy.priority} and decide {direction.value.lower()} traffic differently, e.g. {source} -> "
                f"{target} on {port}/{protocol.value}: their order is undefined by the API (policyctl applies "
                f"{a.policy} first, by kind and name)",
                hint=f"give {a.policy.name} and {b.policy.name} different priorities", path=("spec", "priority"),
            )  # fmt: skip
            break


def _reaching(tiers: TierLint, pod: View, other: View, direction: Direction, policy: ClusterNetworkPolicy) -> PortSet:
    """Ports of a pair that reach ``policy``'s priority in its tier: earlier priorities, and for
    the Baseline tier the Admin tier and NetworkPolicy, decided the rest."""
    index, decider = tiers.index, tiers.decider
    tier_rules = index.tiered(pod.selectors, direction)
    destination = other if direction is Direction.EGRESS else pod
    undecided = ALL
    if policy.tier is Tier.BASELINE:
        admin = decider.tier(tier_rules.admin, ALL, other, destination)
        if decider.network_policy(direction, pod, other) is not None:
            return NONE
        undecided = admin.passed | admin.undecided
    chosen = tier_rules.admin if policy.tier is Tier.ADMIN else tier_rules.baseline
    earlier = tuple(r for r in chosen if _precedes(index, r, policy))
    split = decider.tier(earlier, undecided, other, destination)
    return split.undecided


def _precedes(index: PolicyIndex, rule_id: int, policy: ClusterNetworkPolicy) -> bool:
    owner = next(p.policy for p in index.cluster_policies if p.policy.ref == index.cluster_rules[rule_id].policy)
    return owner.priority < policy.priority


def passes_to_nowhere(context: LintContext) -> Iterator[Diagnostic]:
    tiers = _tiers(context)
    if tiers is None:
        return
    for policy, subject, direction, rule_ids in tiers.policies():
        for rule_id in rule_ids:
            rule = tiers.index.cluster_rules[rule_id]
            if rule.action is not Action.PASS:
                continue
            if policy.tier is Tier.BASELINE:
                yield _finding(
                    PASS_TO_NOWHERE, policy, rule.rule,
                    f"Baseline Pass: {policy} {rule.rule.label} has no lower tier to pass to; the traffic it "
                    "matches is allowed by default (as with Accept)",
                    hint="write Accept if the traffic is meant to be allowed",
                )  # fmt: skip
                continue
            passed_any = reaches_lower = False
            for pod, other in tiers.pairs(subject, direction):
                walk = tiers.walk(pod.view, other.view, direction)
                hit = walk.hits.get(rule_id, NONE)
                if not hit:
                    continue
                passed_any = True
                if walk.network_policy or _baseline_matches(tiers, pod.view, other.view, direction, hit):
                    reaches_lower = True
                    break
            if passed_any and not reaches_lower:
                yield _finding(
                    PASS_TO_NOWHERE, policy, rule.rule,
                    f"Admin Pass: every connection {policy} {rule.rule.label} passes goes to pods that no "
                    f"NetworkPolicy isolates for {direction.value.lower()} and that no Baseline rule matches, so "
                    "it is allowed by default (as with Accept)",
                    hint="write Accept if that is meant, or add the NetworkPolicy or Baseline rule that should decide",
                )  # fmt: skip


def _baseline_matches(tiers: TierLint, pod: View, other: View, direction: Direction, ports: PortSet) -> bool:
    destination = other if direction is Direction.EGRESS else pod
    for rule_id in tiers.index.tiered(pod.selectors, direction).baseline:
        rule = tiers.index.cluster_rules[rule_id]
        if tiers.decider.cluster_peer_matches(rule, other) and tiers.decider.rule_ports(rule, destination) & ports:
            return True
    return False


def unreachable_baseline_rules(context: LintContext) -> Iterator[Diagnostic]:
    tiers = _tiers(context)
    if tiers is None:
        return
    for policy, subject, direction, rule_ids in tiers.policies():
        if policy.tier is not Tier.BASELINE:
            continue
        selected: dict[str, Pod] = {}
        isolated = True
        for subjects, _ in tiers.ends.values():
            for pod in subjects:
                if subject not in pod.view.selectors:
                    continue
                selected.update((p.key, p) for p in pod.pods)
                isolated = isolated and tiers.index.applying(pod.view.selectors, direction)[0]
        if not selected or not isolated:
            continue
        for rule_id in rule_ids:
            rule = tiers.index.cluster_rules[rule_id].rule
            yield _finding(
                BASELINE_UNREACHABLE, policy, rule,
                f"{policy} {rule.label} never applies: NetworkPolicy isolates every pod its subject selects "
                f"for {direction.value.lower()} ({pod_list(selected.values())}) and decides before the Baseline tier",
                hint="move the rule to the Admin tier, or allow the traffic in the NetworkPolicies that isolate "
                "these pods",
            )  # fmt: skip


def unenforced_domain_names(context: LintContext) -> Iterator[Diagnostic]:
    """Policies read from the documents lint was given were already reported by the loader,
    with this code, at the peer (``manifests.clusterparse``); the others (a cluster read from the
    API, or built in code) are reported here."""
    read = {d.source for d in context.manifests.documents}
    for policy in context.cluster.cluster_policies:
        if policy.provenance is not None and policy.provenance.file in read:
            continue
        for rule in policy.egress:
            for i, peer in enumerate(rule.peers):
                if isinstance(peer, DomainNamesPeer):
                    yield _finding(
                        DOMAIN_NAMES, policy, rule,
                        f"not enforced: names are not resolved: {policy} {rule.label} domainNames "
                        f"{', '.join(peer.names)} matches no traffic in policyctl",
                        hint="use networks with the CIDRs these names resolve to, or enforce the rule with a "
                        "DNS-aware data path",
                        path=(*_rule_path(rule), "to"),
                    )  # fmt: skip


CHECKS: tuple[tuple[LintRule, Check], ...] = (
    (SHADOWED, shadowed_rules),
    (SAME_PRIORITY, same_priority_overlaps),
    (PASS_TO_NOWHERE, passes_to_nowhere),
    (BASELINE_UNREACHABLE, unreachable_baseline_rules),
    (DOMAIN_NAMES, unenforced_domain_names),
)
