"""The Kubernetes objects policyctl reasons about, as frozen, validated values.

Everything past the loader (``manifests.loader``) sees only these types: API defaults are already
applied, nil-versus-empty distinctions are already turned into explicit variants, and every
object carries the place it came from. The reference semantics (``policy.semantics``), the
compiler and the verifier all read the same values.

Variants that the API spells with nil/empty/missing fields and that mean different things:

* a peer's namespaces: ``namespaceSelector`` absent -> :class:`OwnNamespace` (the policy's
  namespace); present (even empty ``{}``) -> :class:`SelectedNamespaces` (empty selects all).
* a rule's ``from``/``to`` and ``ports``: the API says "If this field is empty or missing, this
  rule matches all sources/destinations/ports", so both normalise to an empty tuple and
  :attr:`Rule.any_peer` / :attr:`Rule.any_port` say so.
* ``spec.ingress``/``spec.egress`` absent or empty: no rules (nothing allowed for an isolated
  direction); isolation comes only from ``policy_types``.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

#: The label the API server sets on every namespace (immutable, equal to the name).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def undefined_namespace_labels(name: str) -> Labels:
    """The labels of a namespace that is referenced but not defined: only the name label, which
    the API server always sets."""
    return Labels({NAMESPACE_NAME_LABEL: name})


class Protocol(str, enum.Enum):
    """``NetworkPolicyPort.protocol``: "TCP, UDP, or SCTP ... If not specified, defaults to TCP"."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class Family(str, enum.Enum):
    """An IP family. Dual-stack policy is evaluated for each family on its own."""

    IPV4 = "IPv4"
    IPV6 = "IPv6"

    @classmethod
    def of(cls, address: IPAddress | IPNetwork) -> Family:
        return cls.IPV4 if address.version == 4 else cls.IPV6


class Direction(str, enum.Enum):
    """``spec.policyTypes`` values; also the two halves of every verdict."""

    INGRESS = "Ingress"
    EGRESS = "Egress"


class Operator(str, enum.Enum):
    """``LabelSelectorRequirement.operator``."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True, order=True)
class Provenance:
    """Where an object was read: file (``<stdin>`` for standard input), 1-based line and the
    0-based index of the YAML document in that file."""

    file: str
    line: int
    document: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Labels(Mapping[str, str]):
    """An immutable, hashable label map; iteration is in key order so output is stable."""

    __slots__ = ("_items", "_map")

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        pairs = tuple(sorted((items or {}).items()))
        self._items: tuple[tuple[str, str], ...] = pairs
        self._map: dict[str, str] = dict(pairs)

    def __getitem__(self, key: str) -> str:
        return self._map[key]

    def __iter__(self) -> Iterator[str]:
        return iter(k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Labels):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._map == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Labels({self._map!r})"

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self._items) or "<none>"

    def with_label(self, key: str, value: str) -> Labels:
        return Labels({**self._map, key: value})


@dataclass(frozen=True, slots=True, order=True)
class Requirement:
    """One requirement of a label selector. A ``matchLabels`` entry ``k: v`` is the
    requirement ``k In (v)`` (API: "equivalent to an element of matchExpressions, whose key
    field is "key", the operator is "In", and the values array contains only "value"")."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()
    from_match_labels: bool = field(default=False, compare=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """API semantics of each operator; a missing key is not an empty value, so ``NotIn``
        and ``DoesNotExist`` match a pod that lacks the key and ``In`` never does."""
        present = self.key in labels
        if self.operator is Operator.IN:
            return present and labels[self.key] in self.values
        if self.operator is Operator.NOT_IN:
            return not present or labels[self.key] not in self.values
        if self.operator is Operator.EXISTS:
            return present
        return not present

    def __str__(self) -> str:
        if self.from_match_labels:
            return f"{self.key}={self.values[0]}"
        if self.operator is Operator.EXISTS:
            return f"{self.key} exists"
        if self.operator is Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        op = "in" if self.operator is Operator.IN else "notin"
        return f"{self.key} {op} ({','.join(self.values)})"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A label selector in canonical form: requirements sorted and deduplicated, so two
    selectors that select the same way compare (and hash) equal. "The requirements are ANDed";
    an empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def of(cls, requirements: tuple[Requirement, ...] | list[Requirement]) -> LabelSelector:
        unique: dict[tuple[str, Operator, tuple[str, ...]], Requirement] = {}
        for r in requirements:
            unique.setdefault((r.key, r.operator, r.values), r)
        return cls(tuple(sorted(unique.values())))

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> LabelSelector:
        return cls.of([Requirement(k, Operator.IN, (v,), True) for k, v in labels.items()])

    @property
    def is_empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def failing(self, labels: Mapping[str, str]) -> tuple[Requirement, ...]:
        """The requirements these labels do not meet (empty when the selector matches)."""
        return tuple(r for r in self.requirements if not r.matches(labels))

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements) or "<all>"


@dataclass(frozen=True, slots=True)
class OwnNamespace:
    """A pod peer without ``namespaceSelector``: "selects particular Pods in the same
    namespace as the NetworkPolicy"."""

    name: str


@dataclass(frozen=True, slots=True)
class SelectedNamespaces:
    """A pod peer with ``namespaceSelector`` (``{}`` selects all namespaces)."""

    selector: LabelSelector


NamespaceScope = Union[OwnNamespace, SelectedNamespaces]


@dataclass(frozen=True, slots=True)
class PodPeer:
    """A ``NetworkPolicyPeer`` with podSelector and/or namespaceSelector. When both are set
    the peer "selects particular Pods within particular Namespaces" (AND); a missing
    podSelector with a namespaceSelector selects all pods of those namespaces (the loader
    turns it into the empty selector)."""

    namespaces: NamespaceScope
    pods: LabelSelector


@dataclass(frozen=True, slots=True)
class IPBlockPeer:
    """A ``NetworkPolicyPeer`` with ``ipBlock``. ``cidr`` is the network of what was written
    (``10.0.0.7/4`` is accepted by the API server and means ``0.0.0.0/4``); ``excepts`` are
    "CIDRs that should not be included within an IPBlock"."""

    cidr: IPNetwork
    excepts: tuple[IPNetwork, ...] = ()
    written: str = field(default="", compare=False)

    def contains(self, address: IPAddress) -> bool:
        return (
            address.version == self.cidr.version
            and address in self.cidr
            and not any(address in e for e in self.excepts)
        )

    def __str__(self) -> str:
        text = str(self.cidr)
        if self.excepts:
            text += " except " + ",".join(str(e) for e in self.excepts)
        return text


Peer = Union[PodPeer, IPBlockPeer]


@dataclass(frozen=True, slots=True)
class PortMatch:
    """A ``NetworkPolicyPort`` after defaulting. ``port`` is ``None`` (all ports of the
    protocol), a number, or a named port resolved against the destination pod's container
    ports; ``end_port`` makes ``port..end_port`` an inclusive range (numeric ports only)."""

    protocol: Protocol
    port: int | str | None = None
    end_port: int | None = None

    def __str__(self) -> str:
        if self.port is None:
            return f"{self.protocol.value} (all ports)"
        if self.end_port is not None:
            return f"{self.port}-{self.end_port}/{self.protocol.value}"
        return f"{self.port}/{self.protocol.value}"


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``NetworkPolicyIngressRule`` or ``NetworkPolicyEgressRule``. Traffic matches the
    rule when it matches at least one peer AND at least one port."""

    direction: Direction
    index: int
    peers: tuple[Peer, ...] = ()
    ports: tuple[PortMatch, ...] = ()
    provenance: Provenance | None = field(default=None, compare=False)

    @property
    def any_peer(self) -> bool:
        return not self.peers

    @property
    def any_port(self) -> bool:
        return not self.ports


@dataclass(frozen=True, slots=True, order=True)
class PolicyRef:
    """A policy's identity, for provenance in verdicts, graphs, rulesets and logs."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """A ``networking.k8s.io/v1`` NetworkPolicy after API defaulting and validation.
    ``defaults_applied`` lists, in words with field paths, every default the loader filled in
    so outputs can say so; ``warnings`` what the API server accepts but a user likely did not
    mean (e.g. host bits in a CIDR)."""

    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: frozenset[Direction]
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    provenance: Provenance | None = field(default=None, compare=False)
    defaults_applied: tuple[str, ...] = field(default=(), compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def ref(self) -> PolicyRef:
        return PolicyRef(self.namespace, self.name)

    def rules(self, direction: Direction) -> tuple[Rule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress

    def isolates(self, direction: Direction) -> bool:
        return direction in self.policy_types


@dataclass(frozen=True, slots=True)
class ContainerPort:
    """A container port: gives a port its name, for named ports in policies."""

    port: int
    protocol: Protocol = Protocol.TCP
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Namespace:
    """A namespace. ``labels`` always include ``kubernetes.io/metadata.name``; a namespace
    that is referenced but not defined has only that label and no provenance."""

    name: str
    labels: Labels
    provenance: Provenance | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod (or the one pod a workload template stands for: ``workload`` is then e.g.
    ``deploy/web``). ``ips`` are ``status.podIPs`` only, at most one per family."""

    namespace: str
    name: str
    labels: Labels
    node: str | None = None
    ips: tuple[IPAddress, ...] = ()
    host_network: bool = False
    ports: tuple[ContainerPort, ...] = ()
    workload: str | None = None
    provenance: Provenance | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def ip(self, family: Family) -> IPAddress | None:
        return next((a for a in self.ips if Family.of(a) is family), None)

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class Node:
    """A node and its ``status.addresses`` that are IPs (InternalIP, ExternalIP); ``labels``
    for the ``nodes`` peers of cluster-scoped policies; ``pod_cidrs``, its ``spec.podCIDRs``
    ("the IP ranges assigned to the node for usage by Pods on that node", at most one per
    family), which tell an address a pod on this node may get before the pod is known."""

    name: str
    addresses: tuple[IPAddress, ...] = ()
    provenance: Provenance | None = field(default=None, compare=False)
    labels: Labels = field(default_factory=Labels)
    pod_cidrs: tuple[IPNetwork, ...] = ()

    def ip(self, family: Family) -> IPAddress | None:
        return next((a for a in self.addresses if Family.of(a) is family), None)
