"""Small builders that make model objects directly, for tests that do not go through the loader.

They apply the same API defaults the loader does, so a test reads like the manifest it stands
for: ``policy("x/allow-a", {"pod": "a"}, ingress=[rule(pod_peer({"pod": "b"}))])``.

* ``pod_peer(...)`` without ``namespaces`` is the API's "no namespaceSelector" (the policy's own
  namespace); :func:`policy` fills the namespace in, so peers can be built before the policy.
* :func:`policy` without ``types`` defaults ``policyTypes`` as the API server does: Ingress
  always, Egress when ``egress`` is non-empty. Rules get their direction and index from their
  place in the policy.
* :func:`cluster` adds every namespace a pod or policy names but that was not given (with only
  the ``kubernetes.io/metadata.name`` label, as the API server sets it) and sorts everything.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Union

from policyctl.policy.model import (
    NAMESPACE_NAME_LABEL,
    ContainerPort,
    Direction,
    Family,
    IPAddress,
    IPBlockPeer,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Operator,
    OwnNamespace,
    Peer,
    Pod,
    PodPeer,
    PortMatch,
    Protocol,
    Provenance,
    Requirement,
    Rule,
    SelectedNamespaces,
)
from policyctl.policy.cluster import Cluster
from policyctl.policy.verdicts import Connection, Endpoint

SelectorLike = Union[LabelSelector, Mapping[str, str], None]

#: Placeholder scope of a pod peer without namespaceSelector, replaced by :func:`policy`.
_OWN = OwnNamespace("")


def selector(labels: SelectorLike = None, *expressions: Requirement) -> LabelSelector:
    """A selector from ``matchLabels`` (a mapping) plus ``matchExpressions``; ``None`` and
    ``{}`` are the empty selector (selects everything)."""
    if isinstance(labels, LabelSelector):
        return LabelSelector.of(list(labels.requirements) + list(expressions))
    base = LabelSelector.from_labels(labels or {})
    return LabelSelector.of(list(base.requirements) + list(expressions))


def requirement(key: str, operator: Operator | str, *values: str) -> Requirement:
    """One ``matchExpressions`` entry, e.g. ``requirement("env", "NotIn", "prod")``."""
    return Requirement(key, Operator(operator), tuple(sorted(values)))


def namespace(name: str, labels: Mapping[str, str] | None = None, **more: str) -> Namespace:
    """A namespace; the ``kubernetes.io/metadata.name`` label is always added."""
    return Namespace(name, Labels({**(labels or {}), **more, NAMESPACE_NAME_LABEL: name}))


def container_port(port: int, protocol: Protocol | str = "TCP", name: str | None = None) -> ContainerPort:
    return ContainerPort(port, Protocol(protocol), name)


def pod(
    key: str,
    labels: Mapping[str, str] | None = None,
    *,
    node: str | None = None,
    ips: Iterable[str | IPAddress] = (),
    host_network: bool = False,
    ports: Iterable[ContainerPort] = (),
    workload: str | None = None,
) -> Pod:
    """A pod named ``namespace/name``; ``ips`` are its ``status.podIPs``."""
    ns, name = key.split("/", 1)
    return Pod(
        namespace=ns,
        name=name,
        labels=Labels(labels or {}),
        node=node,
        ips=tuple(ipaddress.ip_address(a) for a in ips),
        host_network=host_network,
        ports=tuple(ports),
        workload=workload,
    )


def node(name: str, *addresses: str | IPAddress) -> Node:
    return Node(name, tuple(ipaddress.ip_address(a) for a in addresses))


def pod_peer(pods: SelectorLike = None, namespaces: SelectorLike | OwnNamespace = _OWN) -> Peer:
    """A pod peer. ``pods=None`` or ``{}`` is "all pods"; ``namespaces`` left out is the
    policy's own namespace (no namespaceSelector), ``namespaces={}`` (or ``None``) is every
    namespace."""
    if isinstance(namespaces, OwnNamespace):
        scope: OwnNamespace | SelectedNamespaces = namespaces
    else:
        scope = SelectedNamespaces(selector(namespaces))
    return PodPeer(scope, selector(pods))


def ip_block(cidr: str, *excepts: str) -> IPBlockPeer:
    return IPBlockPeer(
        ipaddress.ip_network(cidr, strict=False),
        tuple(ipaddress.ip_network(e, strict=False) for e in excepts),
        written=cidr,
    )


def port(number: int | str | None = None, protocol: Protocol | str = "TCP", end_port: int | None = None) -> PortMatch:
    """A ``NetworkPolicyPort``: a number, a name, or ``None`` for all ports of ``protocol``."""
    return PortMatch(Protocol(protocol), number, end_port)


def rule(*peers: Peer, ports: Iterable[PortMatch] = ()) -> Rule:
    """A rule; direction and index are set by :func:`policy`. No peers = all peers, no ports
    = all ports."""
    return Rule(Direction.INGRESS, 0, tuple(peers), tuple(ports))


def _place(rules: Iterable[Rule] | None, direction: Direction, namespace_name: str, file: str) -> tuple[Rule, ...]:
    placed = []
    for index, r in enumerate(rules or ()):
        peers = tuple(
            replace(p, namespaces=OwnNamespace(namespace_name))
            if isinstance(p, PodPeer) and p.namespaces == _OWN
            else p
            for p in r.peers
        )
        placed.append(
            replace(
                r,
                direction=direction,
                index=index,
                peers=peers,
                provenance=r.provenance or Provenance(file, 10 + index),
            )
        )
    return tuple(placed)


def policy(
    key: str,
    select: SelectorLike = None,
    *,
    ingress: Iterable[Rule] | None = None,
    egress: Iterable[Rule] | None = None,
    types: Iterable[Direction | str] | None = None,
) -> NetworkPolicy:
    """A NetworkPolicy named ``namespace/name`` selecting ``select`` (``None``/``{}``: all
    pods of the namespace). Provenance is ``<namespace>-<name>.yaml`` line 1, its rules from
    line 10 on, so hints and reasons can be asserted on."""
    ns, name = key.split("/", 1)
    ingress_rules = tuple(ingress or ())
    egress_rules = tuple(egress or ())
    if types is None:
        policy_types = {Direction.INGRESS} | ({Direction.EGRESS} if egress_rules else set())
    else:
        policy_types = {Direction(t) for t in types}
    file = f"{ns}-{name}.yaml"
    return NetworkPolicy(
        namespace=ns,
        name=name,
        pod_selector=selector(select),
        policy_types=frozenset(policy_types),
        ingress=_place(ingress_rules, Direction.INGRESS, ns, file),
        egress=_place(egress_rules, Direction.EGRESS, ns, file),
        provenance=Provenance(file, 1),
    )


def cluster(*objects: Namespace | Pod | Node | NetworkPolicy) -> Cluster:
    """A cluster of the given objects, with the namespaces they name added and all sorted."""
    namespaces = {o.name: o for o in objects if isinstance(o, Namespace)}
    pods = [o for o in objects if isinstance(o, Pod)]
    policies = [o for o in objects if isinstance(o, NetworkPolicy)]
    for name in {p.namespace for p in pods} | {p.namespace for p in policies}:
        namespaces.setdefault(name, namespace(name))
    return Cluster(
        namespaces=tuple(sorted(namespaces.values(), key=lambda n: n.name)),
        pods=tuple(sorted(pods, key=lambda p: p.key)),
        nodes=tuple(sorted((o for o in objects if isinstance(o, Node)), key=lambda n: n.name)),
        policies=tuple(sorted(policies, key=lambda p: (p.namespace, p.name))),
    )


def with_policies(base: Cluster, *policies: NetworkPolicy) -> Cluster:
    """``base`` with ``policies`` added (replacing any of the same namespace/name)."""
    keep = {(p.namespace, p.name): p for p in base.policies}
    keep.update({(p.namespace, p.name): p for p in policies})
    return replace(base, policies=tuple(keep[k] for k in sorted(keep)))


STANDARD_PORTS = tuple(
    container_port(number, protocol, f"serve-{number}-{protocol.lower()}")
    for number in (80, 81)
    for protocol in ("TCP", "UDP", "SCTP")
)


def standard_cluster(*policies: NetworkPolicy) -> Cluster:
    """The probe cases' standard model: namespaces x, y, z labelled ``ns=<name>``, pods a, b, c
    in each labelled ``pod=<name>`` with ports 80/81 on TCP/UDP/SCTP named
    ``serve-<port>-<protocol>``; pods alternate over node-1 (192.168.0.1) and node-2
    (192.168.0.2) in the order x/a, x/b, ...; pod i on node n has 10.244.n.(10+i)."""
    objects: list[Namespace | Pod | Node | NetworkPolicy] = [
        node("node-1", "192.168.0.1"),
        node("node-2", "192.168.0.2"),
    ]
    index = 0
    for ns in ("x", "y", "z"):
        objects.append(namespace(ns, ns=ns))
        for name in ("a", "b", "c"):
            on = 1 + index % 2
            objects.append(
                pod(
                    f"{ns}/{name}",
                    {"pod": name},
                    node=f"node-{on}",
                    ips=[f"10.244.{on}.{10 + index}"],
                    ports=STANDARD_PORTS,
                )
            )
            index += 1
    return cluster(*objects, *policies)


def endpoint(base: Cluster, name: str | Endpoint) -> Endpoint:
    """``"x/a"`` -> that pod, ``"node:node-1"`` -> that node, ``"1.2.3.4"`` -> the address;
    model objects pass through."""
    if not isinstance(name, str):
        return name
    if name.startswith("node:"):
        return base.node_by_name[name[len("node:"):]]
    if "/" in name and name in base.pod_by_key:
        return base.pod_by_key[name]
    return ipaddress.ip_address(name)


def connect(
    base: Cluster,
    source: str | Endpoint,
    destination: str | Endpoint,
    port: int = 80,
    *,
    protocol: Protocol | str = "TCP",
    family: Family | str = "IPv4",
    via_service: bool = False,
) -> Connection:
    """A connection between two ends named as for :func:`endpoint`."""
    return Connection(
        endpoint(base, source), endpoint(base, destination), Protocol(protocol), port, Family(family), via_service
    )
