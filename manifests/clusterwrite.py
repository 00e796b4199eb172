"""Cluster-scoped policies written back as ``ClusterNetworkPolicy`` manifests (``v1alpha2``).

The inverse of :mod:`manifests.clusterparse` for the ClusterNetworkPolicy schema: a manifest this
module writes reads back (``manifests.loader``) to a policy equal to the one written, whatever
kind it was read from. That is what migrating from AdminNetworkPolicy and
BaselineAdminNetworkPolicy needs (``policyctl convert``), field by field as the API renamed
them:

* ``action: Allow`` -> ``Accept`` (the model already holds :attr:`Action.ACCEPT`);
* ``ports`` -> ``protocols``: ``portNumber {protocol, port}`` -> ``<protocol>: {destinationPort:
  {number}}``, ``portRange {protocol, start, end}`` -> ``<protocol>: {destinationPort: {range:
  {start, end}}}``, ``namedPort`` -> ``destinationNamedPort`` (the model holds one named
  :class:`~policy.model.PortMatch` per protocol for it, written back as one entry);
* a ``subject`` or peer with an empty pod selector is written as ``namespaces`` (it selects
  every pod of the selected namespaces, as ``pods`` with ``podSelector: {}`` would);
* the ``networks`` CIDRs of a rule, which the model holds as one peer each, are written as one
  ``networks`` peer of at most 25 CIDRs (the CRD's ``maxItems``).

What ``v1alpha2`` cannot say raises :class:`UnwritableError` instead of being dropped: a port
without a number (all ports of one protocol), a named port not given for every protocol, an
``except`` in a CIDR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from policyctl.policy.clustermodel import (
    BASELINE_ADMIN_PRIORITY,
    ClusterNetworkPolicy,
    ClusterPeer,
    ClusterRule,
    DomainNamesPeer,
    NodesPeer,
    SourceKind,
    Tier,
)
from policyctl.policy.model import (
    Direction,
    IPBlockPeer,
    LabelSelector,
    PodPeer,
    PortMatch,
    Protocol,
    SelectedNamespaces,
)
from policyctl.manifests.scalars import resolve_plain

API_VERSION = "policy.networking.k8s.io/v1alpha2"
_MAX_CIDRS = 25
_PROTOCOL_KEYS = {Protocol.TCP: "tcp", Protocol.UDP: "udp", Protocol.SCTP: "sctp"}
_PEERS_KEY = {Direction.INGRESS: "from", Direction.EGRESS: "to"}


class UnwritableError(ValueError):
    """A policy holds something the ClusterNetworkPolicy schema cannot express."""


def selector_manifest(selector: LabelSelector) -> dict[str, Any]:
    """``matchLabels`` for requirements written as labels, ``matchExpressions`` for the rest
    (and for a second label requirement on one key, which a map cannot hold: ``k In (v)`` is
    the same requirement); ``{}`` for the empty selector (it selects everything)."""
    labels: dict[str, str] = {}
    expressions = []
    for r in selector.requirements:
        if r.from_match_labels and r.key not in labels:
            labels[r.key] = r.values[0]
            continue
        expression: dict[str, Any] = {"key": r.key, "operator": r.operator.value}
        if r.values:
            expression["values"] = list(r.values)
        expressions.append(expression)
    found: dict[str, Any] = {}
    if labels:
        found["matchLabels"] = labels
    if expressions:
        found["matchExpressions"] = expressions
    return found


def _pods(peer: PodPeer) -> dict[str, Any]:
    if not isinstance(peer.namespaces, SelectedNamespaces):
        raise UnwritableError("a cluster-scoped peer selects namespaces by label, never the policy's own namespace")
    if peer.pods.is_empty:
        return {"namespaces": selector_manifest(peer.namespaces.selector)}
    return {
        "pods": {
            "namespaceSelector": selector_manifest(peer.namespaces.selector),
            "podSelector": selector_manifest(peer.pods),
        }
    }


def _peers(peers: Iterable[ClusterPeer]) -> list[dict[str, Any]]:
    """Peers in the order written; the CIDRs of a rule gathered into ``networks`` entries at
    the place of the first."""
    found: list[dict[str, Any]] = []
    cidrs: list[str] = []
    networks_at: int | None = None
    for peer in peers:
        if isinstance(peer, IPBlockPeer):
            if peer.excepts:
                raise UnwritableError(f"networks cannot express except ({peer})")
            if networks_at is None:
                networks_at = len(found)
            cidrs.append(str(peer.cidr))
        elif isinstance(peer, PodPeer):
            found.append(_pods(peer))
        elif isinstance(peer, NodesPeer):
            found.append({"nodes": selector_manifest(peer.selector)})
        elif isinstance(peer, DomainNamesPeer):
            found.append({"domainNames": list(peer.names)})
    if networks_at is not None:
        chunks = [{"networks": cidrs[i : i + _MAX_CIDRS]} for i in range(0, len(cidrs), _MAX_CIDRS)]
        found[networks_at:networks_at] = chunks
    return found


def _protocols(ports: Iterable[PortMatch]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    named: dict[str, set[Protocol]] = {}
    for port in ports:
        if isinstance(port.port, str):
            if port.port not in named:
                found.append({"destinationNamedPort": port.port})
            named.setdefault(port.port, set()).add(port.protocol)
            continue
        if port.port is None:
            raise UnwritableError(f"protocols cannot express every port of one protocol ({port})")
        if port.end_port is None or port.end_port == port.port:
            destination: dict[str, Any] = {"number": port.port}
        else:
            destination = {"range": {"start": port.port, "end": port.end_port}}
        found.append({_PROTOCOL_KEYS[port.protocol]: {"destinationPort": destination}})
    for name, protocols in named.items():
        if protocols != set(Protocol):
            raise UnwritableError(f'destinationNamedPort "{name}" matches every protocol; this port is only '
                                  f"{', '.join(sorted(p.value for p in protocols))}")  # fmt: skip
    return found


def rule_manifest(rule: ClusterRule) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if rule.name:
        found["name"] = rule.name
    found["action"] = rule.action.value
    found[_PEERS_KEY[rule.direction]] = _peers(rule.peers)
    if rule.ports:
        found["protocols"] = _protocols(rule.ports)
    return found


def cluster_network_policy_manifest(
    policy: ClusterNetworkPolicy, *, name: str | None = None, priority: int | None = None
) -> dict[str, Any]:
    """``policy`` as a ClusterNetworkPolicy manifest (plain data, ready for YAML or JSON);
    ``name``/``priority`` replace the policy's own."""
    spec: dict[str, Any] = {
        "tier": policy.tier.value,
        "priority": policy.priority if priority is None else priority,
        "subject": _pods(policy.subject),
    }
    if policy.ingress:
        spec["ingress"] = [rule_manifest(r) for r in policy.ingress]
    if policy.egress:
        spec["egress"] = [rule_manifest(r) for r in policy.egress]
    return {
        "apiVersion": API_VERSION,
        "kind": SourceKind.CLUSTER_NETWORK_POLICY.value,
        "metadata": {"name": policy.name if name is None else name},
        "spec": spec,
    }


@dataclass(frozen=True, slots=True)
class Converted:
    """One AdminNetworkPolicy or BaselineAdminNetworkPolicy and its ClusterNetworkPolicy."""

    original: ClusterNetworkPolicy
    priority: int
    manifest: dict[str, Any] = field(compare=False)


def _baseline_priority(others: Iterable[ClusterNetworkPolicy]) -> int:
    """A BaselineAdminNetworkPolicy sorts at :data:`BASELINE_ADMIN_PRIORITY` (1000) before
    Baseline-tier ClusterNetworkPolicies of that priority (its kind sorts first) and after the
    others. Keep 1000 when no other Baseline policy has it; else one above the highest lower
    priority, when that is free."""
    taken = {p.priority for p in others if p.tier is Tier.BASELINE}
    if BASELINE_ADMIN_PRIORITY not in taken:
        return BASELINE_ADMIN_PRIORITY
    below = max((p for p in taken if p < BASELINE_ADMIN_PRIORITY), default=-1) + 1
    return min(BASELINE_ADMIN_PRIORITY, below)


def convert_policies(policies: Iterable[ClusterNetworkPolicy]) -> tuple[Converted, ...]:
    """Every AdminNetworkPolicy (Admin tier, same priority) and BaselineAdminNetworkPolicy
    (Baseline tier, priority from :func:`_baseline_priority`) of ``policies`` as a
    ClusterNetworkPolicy manifest; names, rule names and rule order are kept. ClusterNetworkPolicy
    objects are left as they are. Raises :class:`UnwritableError` for what v1alpha2 cannot say."""
    policies = tuple(policies)
    kept = [p for p in policies if p.kind is SourceKind.CLUSTER_NETWORK_POLICY]
    found = []
    for policy in sorted(policies, key=lambda p: (p.tier is not Tier.ADMIN, p.order)):
        if policy.kind is SourceKind.ADMIN_NETWORK_POLICY:
            priority = policy.priority
        elif policy.kind is SourceKind.BASELINE_ADMIN_NETWORK_POLICY:
            priority = _baseline_priority(kept)
        else:
            continue
        found.append(Converted(policy, priority, cluster_network_policy_manifest(policy, priority=priority)))
    return tuple(found)


class _Dumper(yaml.SafeDumper):
    """Quotes every string a Kubernetes reader (go-yaml, YAML 1.1) would not read back as that
    string: ``y``, ``on``, ``0x1F``, ``1e3``, ``~`` (:func:`manifests.scalars.resolve_plain`)."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    ambiguous = not value or resolve_plain(value) != value or not isinstance(resolve_plain(value), str)
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if ambiguous else None)


_Dumper.add_representer(str, _string)


def manifests_yaml(manifests: Iterable[Mapping[str, Any]]) -> str:
    """One YAML stream, a ``---`` before each document, fields in the order given (the API's)."""
    return "".join(
        "---\n" + yaml.dump(dict(m), Dumper=_Dumper, sort_keys=False, default_flow_style=False) for m in manifests
    )
