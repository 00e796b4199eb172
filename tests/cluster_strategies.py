"""Hypothesis strategies for clusters that mix cluster-scoped policies (ClusterNetworkPolicy,
AdminNetworkPolicy, BaselineAdminNetworkPolicy) with NetworkPolicy.

Built on :mod:`tests.strategies`: the same namespaces, pods, nodes and NetworkPolicies, plus
0-``max_cluster_policies`` cluster policies of both tiers whose priorities collide on purpose
(ties are part of the semantics: every engine breaks them by kind and name), with every action,
every peer kind (namespaces, pods, networks around cluster addresses, nodes by label,
domainNames) and every port form (number, range, named port). Nodes get labels so ``nodes``
peers select some and not others.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import replace

from hypothesis import strategies as st

from policyctl.policy.clustermodel import (
    BASELINE_ADMIN_PRIORITY,
    Action,
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
    IPAddress,
    IPBlockPeer,
    IPNetwork,
    Labels,
    LabelSelector,
    PodPeer,
    PortMatch,
    Protocol,
    Provenance,
    SelectedNamespaces,
)
from policyctl.policy.cluster import Cluster
from tests.strategies import NAMESPACE_LABEL_KEYS, PORT_NAMES, PORT_NUMBERS, clusters, selectors

NODE_LABEL_KEYS = ("role", "zone")
_NODE_LABELS = st.dictionaries(st.sampled_from(NODE_LABEL_KEYS), st.sampled_from(("a", "b")), max_size=2)
_PREFIXES = {4: (0, 16, 24, 32), 6: (0, 64, 128)}


def _scope(draw: st.DrawFn) -> PodPeer:
    """A subject or a namespaces/pods peer: namespaces alone, or namespaces AND pods."""
    namespaces = SelectedNamespaces(draw(selectors(NAMESPACE_LABEL_KEYS)))
    pods = draw(selectors()) if draw(st.booleans()) else LabelSelector()
    return PodPeer(namespaces, pods)


@st.composite
def _networks(draw: st.DrawFn, pool: Sequence[IPAddress]) -> IPBlockPeer:
    anchor = draw(st.sampled_from(sorted(pool, key=lambda a: (a.version, a))))
    prefix = draw(st.sampled_from(_PREFIXES[anchor.version]))
    cidr: IPNetwork = ipaddress.ip_network(f"{anchor}/{prefix}", strict=False)
    return IPBlockPeer(cidr, (), str(cidr))


@st.composite
def _peer(draw: st.DrawFn, direction: Direction, pool: Sequence[IPAddress]) -> ClusterPeer:
    kinds = ["scope"] if direction is Direction.INGRESS else ["scope", "scope", "networks", "nodes", "domains"]
    kind = draw(st.sampled_from(kinds))
    if kind == "networks":
        return draw(_networks(pool))
    if kind == "nodes":
        return NodesPeer(draw(selectors(NODE_LABEL_KEYS)))
    if kind == "domains":
        return DomainNamesPeer(("example.com",))
    return _scope(draw)


def _ports(draw: st.DrawFn, *, named: bool) -> tuple[PortMatch, ...]:
    found: list[PortMatch] = []
    for _ in range(draw(st.integers(0, 2))):
        form = draw(st.sampled_from(["number", "range", "named"] if named else ["number", "range"]))
        protocol = draw(st.sampled_from(list(Protocol)))
        number = draw(st.sampled_from(PORT_NUMBERS))
        if form == "number":
            found.append(PortMatch(protocol, number))
        elif form == "range":
            found.append(PortMatch(protocol, number, number + draw(st.sampled_from([1, 9, 400]))))
        else:
            name = draw(st.sampled_from(PORT_NAMES))
            found.extend(PortMatch(p, name) for p in Protocol)
    return tuple(dict.fromkeys(found))


@st.composite
def _rule(draw: st.DrawFn, direction: Direction, index: int, actions: Sequence[Action], pool: Sequence[IPAddress],
          file: str) -> ClusterRule:
    peers = tuple(dict.fromkeys(draw(st.lists(_peer(direction, pool), min_size=1, max_size=2))))
    action = draw(st.sampled_from(list(actions)))
    if any(isinstance(p, DomainNamesPeer) for p in peers):
        action = Action.ACCEPT
    only_pods = all(isinstance(p, PodPeer) for p in peers)
    ports = _ports(draw, named=only_pods)
    line = 100 * (index + 1) + (0 if direction is Direction.INGRESS else 50)
    return ClusterRule(direction, index, action, peers, ports, f"r{index}", Provenance(file, line))


@st.composite
def cluster_policies(draw: st.DrawFn, pool: Sequence[IPAddress], name: str) -> ClusterNetworkPolicy:
    """One cluster policy: a ClusterNetworkPolicy of either tier, or an AdminNetworkPolicy or
    BaselineAdminNetworkPolicy (named ``default``), with 0-2 rules per direction."""
    kind = draw(st.sampled_from(list(SourceKind)))
    if kind is SourceKind.CLUSTER_NETWORK_POLICY:
        tier = draw(st.sampled_from(list(Tier)))
    else:
        tier = Tier.ADMIN if kind is SourceKind.ADMIN_NETWORK_POLICY else Tier.BASELINE
    actions = [Action.ACCEPT, Action.DENY] if kind is SourceKind.BASELINE_ADMIN_NETWORK_POLICY else list(Action)
    priority = BASELINE_ADMIN_PRIORITY if kind is SourceKind.BASELINE_ADMIN_NETWORK_POLICY else draw(
        st.sampled_from([1, 5, 5, 1000])
    )
    file = f"{name}.yaml"
    rules = {
        d: tuple(draw(_rule(d, i, actions, pool, file)) for i in range(draw(st.integers(0, 2)))) for d in Direction
    }
    policy_name = "default" if kind is SourceKind.BASELINE_ADMIN_NETWORK_POLICY else name
    return ClusterNetworkPolicy(
        policy_name, tier, priority, _scope(draw), rules[Direction.INGRESS], rules[Direction.EGRESS], kind,
        provenance=Provenance(file, 1),
    )


@st.composite
def tiered_clusters(draw: st.DrawFn, max_cluster_policies: int = 3, **kwargs: object) -> Cluster:
    """A random cluster (:func:`tests.strategies.clusters`, same keyword arguments) with
    labelled nodes and 0-``max_cluster_policies`` cluster policies; ``min_policies`` defaults to
    0 here so some clusters have cluster policies alone."""
    kwargs.setdefault("min_policies", 0)
    cluster = draw(clusters(**kwargs))  # type: ignore[arg-type]
    nodes = tuple(replace(n, labels=Labels(draw(_NODE_LABELS))) for n in cluster.nodes)
    pool = [a for p in cluster.pods for a in p.ips] + [a for n in nodes for a in n.addresses]
    pool = pool or [ipaddress.ip_address("10.0.0.1")]
    drawn: dict[tuple[SourceKind, str], ClusterNetworkPolicy] = {}
    for i in range(draw(st.integers(0, max_cluster_policies))):
        policy = draw(cluster_policies(pool, f"c{i}"))
        drawn[(policy.kind, policy.name)] = policy
    ordered = tuple(sorted(drawn.values(), key=lambda p: (p.tier is not Tier.ADMIN, p.order)))
    return replace(cluster, nodes=nodes, cluster_policies=ordered)
