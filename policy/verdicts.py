"""A connection and the reference verdict on it, with every reason.

A verdict is two halves, as the API defines them: egress is decided for the source pod,
ingress for the destination pod, and "both the egress policy on the source pod and the
ingress policy on the destination pod need to allow the connection". Each half records
whether the pod is isolated in that direction, every policy that selects it, and for every
rule, peer and port whether it matched and why not, so ``explain`` can print it and tests can
assert on it. Replies of allowed connections are always allowed ("reply traffic for those
connections will also be allowed"), so a verdict is about a new connection only.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

from policyctl.policy.clustermodel import Action, ClusterPeer, ClusterPolicyRef, ClusterRule, Tier
from policyctl.policy.model import (
    Direction,
    Family,
    IPAddress,
    Node,
    Peer,
    Pod,
    PolicyRef,
    PortMatch,
    Protocol,
    Provenance,
)

Endpoint = Union[Pod, Node, IPAddress]
"""One end of a connection: a pod, a node (its host network, e.g. the kubelet), or an address
outside the cluster."""


@dataclass(frozen=True, slots=True)
class Connection:
    """A new connection attempt: ``protocol``/``port`` are the destination's, ``family`` picks
    which of a dual-stack pod's addresses are used on both ends."""

    source: Endpoint
    destination: Endpoint
    protocol: Protocol
    port: int
    family: Family = Family.IPV4
    via_service: bool = False
    """Sent to the destination's Service address and DNATed on the node: a pod reaching
    itself this way hairpins through the node, so policy applies as to any other pod."""


class Bypass(str, enum.Enum):
    """Why a half was decided without consulting policies: cases the API leaves to the
    implementation, decided in ``docs/semantics.md``."""

    NOT_A_POD = "not-a-pod"
    """This end is not a pod (an external address or a node): policies only select pods."""
    HOST_NETWORK = "host-network"
    """A hostNetwork pod is never selected by a policy: it is its node's network namespace."""
    SAME_POD = "same-pod"
    """A pod reaching its own address never leaves its network namespace."""
    FROM_OWN_NODE = "from-own-node"
    """"Agents on a node (e.g. system daemons, kubelet) can communicate with all pods on that
    node": traffic from the destination pod's own node is allowed."""


@dataclass(frozen=True, slots=True)
class PeerResult:
    """One peer of a rule against the other end of the connection. ``reasons`` say why it
    matched or not: the namespace and pod label requirements that failed, the except range
    that excluded the address, "not a pod", etc."""

    peer: Peer | ClusterPeer
    matched: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PortResult:
    """One port of a rule against the connection's protocol and port; for a named port,
    ``resolved`` is the number it resolved to on the destination pod (None if it did not)."""

    port: PortMatch
    matched: bool
    reason: str = ""
    resolved: int | None = None


@dataclass(frozen=True, slots=True)
class RuleResult:
    """A rule matches when some peer matches (or it has none: all peers) and some port matches
    (or it has none: all ports)."""

    direction: Direction
    index: int
    matched: bool
    peers: tuple[PeerResult, ...]
    ports: tuple[PortResult, ...]
    provenance: Provenance | None = None

    @property
    def peer_matched(self) -> bool:
        return not self.peers or any(p.matched for p in self.peers)

    @property
    def port_matched(self) -> bool:
        return not self.ports or any(p.matched for p in self.ports)


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """A policy that selects the pod and applies to this direction, with its rules."""

    policy: PolicyRef
    allows: bool
    rules: tuple[RuleResult, ...]
    provenance: Provenance | None = None
    defaults_applied: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterRuleResult:
    """One rule of a cluster-scoped policy: it matches when some peer matches and (no
    protocols, or some port matches); then its action applies."""

    rule: ClusterRule
    matched: bool
    peers: tuple[PeerResult, ...]
    ports: tuple[PortResult, ...]


@dataclass(frozen=True, slots=True)
class ClusterPolicyResult:
    """A cluster-scoped policy that selects the pod and has rules in this direction: its rules
    in order up to the first that matched, and that rule's action (``decision``) or None."""

    policy: ClusterPolicyRef
    tier: Tier
    priority: int
    rules: tuple[ClusterRuleResult, ...]
    decision: Action | None
    provenance: Provenance | None = None

    @property
    def deciding_rule(self) -> ClusterRuleResult | None:
        return self.rules[-1] if self.decision is not None and self.rules else None


@dataclass(frozen=True, slots=True)
class TierOutcome:
    """One tier's evaluation: the policies looked at, in precedence order, and the action of
    the first matching rule (None: no rule matched). ``ambiguous`` names tied policies (same
    priority) that would have decided otherwise."""

    tier: Tier
    policies: tuple[ClusterPolicyResult, ...]
    action: Action | None
    deciding: ClusterPolicyResult | None
    ambiguous: tuple[str, ...] = ()


class DecidedBy(str, enum.Enum):
    """Which stage of the evaluation order decided a half."""

    BYPASS = "bypass"
    ADMIN = "admin"
    NETWORK_POLICY = "network-policy"
    BASELINE = "baseline"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Hint:
    """The smallest change found that would flip a denial, in words, and where to make it."""

    text: str
    provenance: Provenance | None = None


@dataclass(frozen=True, slots=True)
class DirectionVerdict:
    """One half of a verdict. The stages run in the API's order (``decided_by``): the Admin
    tier of cluster-scoped policies (``admin``), NetworkPolicy (``policies``), the Baseline tier
    (``baseline``), then the default allow. ``pod`` is the pod whose policies decide it (the source for
    egress, the destination for ingress), None when that end is not a pod. ``isolated`` means
    some policy selecting the pod has this policy type; then only what some ``policies``
    entry allows gets through. ``selecting`` lists policies that select the pod but do not
    have this type (shown, never deciding)."""

    direction: Direction
    allowed: bool
    pod: Pod | None
    isolated: bool
    policies: tuple[PolicyResult, ...] = ()
    selecting: tuple[PolicyRef, ...] = ()
    bypass: Bypass | None = None
    hints: Sequence[Hint] = ()
    """Changes that would flip a denied half; for NetworkPolicy found when first read
    (:class:`policy.hints.LazyHints`)."""
    note: str = ""
    admin: TierOutcome | None = None
    baseline: TierOutcome | None = None
    decided_by: DecidedBy = DecidedBy.DEFAULT

    @property
    def allowing(self) -> tuple[PolicyResult, ...]:
        return tuple(p for p in self.policies if p.allows)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The reference verdict on a new connection: allowed iff both halves allow it.
    ``source_ip``/``destination_ip`` are the addresses used (None when an end has no address
    in ``connection.family``, which makes the connection impossible and ``note`` says so)."""

    connection: Connection
    allowed: bool
    egress: DirectionVerdict
    ingress: DirectionVerdict
    source_ip: IPAddress | None = None
    destination_ip: IPAddress | None = None
    note: str = ""
