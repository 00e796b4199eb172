"""Cluster-scoped policies (``policy.networking.k8s.io``) as frozen, validated values.

One model serves the three kinds users write, because they express the same semantics:

* **ClusterNetworkPolicy** (``v1alpha2``, and ``v1beta1`` with the same schema): ``spec.tier``
  is ``Admin`` or ``Baseline``, ``spec.priority`` 0-1000, actions ``Accept``/``Deny``/``Pass``.
* **AdminNetworkPolicy** (``v1alpha1``): the Admin tier, ``Allow`` read as ``Accept``.
* **BaselineAdminNetworkPolicy** (``v1alpha1``, a singleton named ``default``): the Baseline
  tier, ``Allow``/``Deny``, no priority (:data:`BASELINE_ADMIN_PRIORITY`).

Peers and ports reuse the NetworkPolicy model's values wherever the API means the same thing,
so the oracle, the compiler and the verifier match them with the functions they already use
for NetworkPolicy:

* a ``namespaces`` peer or subject is a :class:`~policy.model.PodPeer` over
  :class:`~policy.model.SelectedNamespaces` with the empty pod selector; a ``pods`` peer or
  subject is the same with its ``podSelector`` ("selects a set of pods in a set of
  namespaces"; "host-networked pods are not included");
* ``networks`` CIDRs are :class:`~policy.model.IPBlockPeer` values without ``except``
  ("cluster-internal traffic will be checked against the rule as well");
* ports are :class:`~policy.model.PortMatch` values: ``destinationPort.number`` is a single
  port, ``range`` is ``start..end``; a ``destinationNamedPort`` (which names a container port
  whatever its protocol) is one named :class:`~policy.model.PortMatch` per protocol, which
  matches exactly the container ports with that name on the destination pod.

Only two peers are new: :class:`NodesPeer` (the addresses of the selected nodes) and
:class:`DomainNamesPeer`, which an nftables data path cannot enforce (names are not
resolved) and which every command reports instead of ignoring.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union

from policyctl.policy.model import (
    Direction,
    IPBlockPeer,
    LabelSelector,
    PodPeer,
    PortMatch,
    Provenance,
)

#: The priority a BaselineAdminNetworkPolicy sorts at among Baseline-tier policies: it has
#: none, and as the lowest precedence (1000) it behaves as the singleton "default" it is.
BASELINE_ADMIN_PRIORITY = 1000


class Tier(str, enum.Enum):
    """``spec.tier``: "Admin tier ... NetworkPolicy tier ... Baseline tier", in that order."""

    ADMIN = "Admin"
    BASELINE = "Baseline"


class Action(str, enum.Enum):
    """``ClusterNetworkPolicyRuleAction``. ``Accept`` ends the evaluation of this direction
    with an allow; ``Deny`` with a drop; ``Pass`` "skips all further ClusterNetworkPolicy rules
    in the current tier ... and passes evaluation to the next tier"."""

    ACCEPT = "Accept"
    DENY = "Deny"
    PASS = "Pass"


class SourceKind(str, enum.Enum):
    """The kind a cluster policy was written as; conversion and output keep it."""

    CLUSTER_NETWORK_POLICY = "ClusterNetworkPolicy"
    ADMIN_NETWORK_POLICY = "AdminNetworkPolicy"
    BASELINE_ADMIN_NETWORK_POLICY = "BaselineAdminNetworkPolicy"


@dataclass(frozen=True, slots=True)
class NodesPeer:
    """An egress ``nodes`` peer: "selects the nodeIPs ... present in the node.Status.Addresses
    field"; an empty selector selects every node."""

    selector: LabelSelector

    def __str__(self) -> str:
        return f"nodes {self.selector}"


@dataclass(frozen=True, slots=True)
class DomainNamesPeer:
    """An egress ``domainNames`` peer (Accept rules only). Matching it needs DNS answers the
    data path does not see, so it matches nothing here and is reported wherever it appears."""

    names: tuple[str, ...]

    def __str__(self) -> str:
        return "domainNames " + ",".join(self.names)


ClusterPeer = Union[PodPeer, IPBlockPeer, NodesPeer, DomainNamesPeer]


@dataclass(frozen=True, slots=True)
class ClusterRule:
    """One ingress or egress rule: traffic matches when some peer matches AND (no protocols,
    or some port matches); then ``action`` applies. ``index`` is the rule's place in its list,
    which is its precedence within the policy."""

    direction: Direction
    index: int
    action: Action
    peers: tuple[ClusterPeer, ...]
    ports: tuple[PortMatch, ...] = ()
    name: str = ""
    provenance: Provenance | None = field(default=None, compare=False)

    @property
    def any_port(self) -> bool:
        return not self.ports

    @property
    def label(self) -> str:
        """``ingress[2] "deny-from-x"`` (the name when the author gave one)."""
        field_name = "ingress" if self.direction is Direction.INGRESS else "egress"
        return f'{field_name}[{self.index}]' + (f' "{self.name}"' if self.name else "")


@dataclass(frozen=True, slots=True, order=True)
class ClusterPolicyRef:
    """A cluster policy's identity: its kind and name (cluster-scoped, so no namespace)."""

    kind: SourceKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value}/{self.name}"


@dataclass(frozen=True, slots=True)
class ClusterNetworkPolicy:
    """A cluster-scoped policy after validation. ``subject`` selects the pods it applies to
    (never hostNetwork pods); rules of a direction apply in order. A policy "with no ingress
    rules does not affect ingress traffic"."""

    name: str
    tier: Tier
    priority: int
    subject: PodPeer
    ingress: tuple[ClusterRule, ...] = ()
    egress: tuple[ClusterRule, ...] = ()
    kind: SourceKind = SourceKind.CLUSTER_NETWORK_POLICY
    api_version: str = "policy.networking.k8s.io/v1alpha2"
    provenance: Provenance | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def ref(self) -> ClusterPolicyRef:
        return ClusterPolicyRef(self.kind, self.name)

    @property
    def order(self) -> tuple[int, str, str]:
        """Precedence within the tier: lower priority first. Equal priorities are ordered by
        kind and name so every engine breaks the (undefined) tie the same way; the tie itself
        is reported (:func:`policy.tiers.same_priority_overlaps`)."""
        return (self.priority, self.kind.value, self.name)

    def rules(self, direction: Direction) -> tuple[ClusterRule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress

    def __str__(self) -> str:
        return f"{self.kind.value} {self.name}"
