"""Compile a cluster snapshot into the nftables ruleset one node must enforce.

Where each half of a verdict is enforced: egress "for the source pod" on the source pod's node,
ingress "for the destination pod" on the destination pod's node, so a connection between nodes
is checked once on each, and a same-node connection both ways on the one node.

Layout (``docs/ruleset.md`` has the why; names and set kinds are in :mod:`layout`, peer
identities in :mod:`peeridentity`, set elements in :mod:`elements`, chains and maps in
:mod:`chains`): base chains ``egress`` (postrouting, srcnat - 5), ``ingress`` (postrouting,
srcnat - 4) and ``input`` (input, 101, egress of pods to the node itself). Each starts with
``ct state established,related accept`` (replies of allowed connections are allowed) and lets
ICMPv6 neighbour discovery through, then dispatches through a verdict map from local pod address
to that pod's chain. A pod chain jumps to the shared allow chain of its direction and family,
then logs (rate-limited) and drops, or in audit mode logs, counts and returns. Traffic from the
node's own addresses to its pods is accepted before ingress
dispatch ("agents on a node ... can communicate with all pods on that node").

The allow chain is a two-level lookup: a verdict map from peer pod address to the chain of the
peer's identity (:class:`PeerIdentity`), whose sets hold local pod address x protocol x port;
then ipBlock sets (peer range x local address [x protocol x port]) and sets for rules without
peers. Every element carries the local pod's address, so shared chains decide per local pod.

A local pod some cluster policy applies to (ClusterNetworkPolicy and the kinds mapped to its
tiers) gets a chain that runs its Admin-tier rules first, then the stage above (when
NetworkPolicy isolates it) or its Baseline-tier rules, then returns to the default allow
(:mod:`tiers`).

Per-packet work is independent of the number of pods and of NetworkPolicies. Elements: peer addresses
once per direction and family, plus local pods x distinct peer identities x port ranges, plus
local pods x ipBlock ranges x port ranges; never pods squared.
"""

from __future__ import annotations

from policyctl.policy.ipblocks import end_address
from policyctl.policy.model import Direction, Family, IPAddress, Pod
from policyctl.policy.cluster import Cluster

from .chains import (
    Layout,
    base_chains,
    direction_layout,
    dispatch_map,
    final_verdict,
    isolating_sources,
    network_policy_rules,
    node_set,
    pod_chain,
    policed_set,
    tiered_chain_name,
)
from .droplog import LOG_RATE, log_prefix
from .elements import GatheredSets, collect
from .graph import PolicyGraph, RuleView
from .identities import identity_of
from .layout import FAMILIES
from .markedpeers import IdentityMark, marked
from .newpods import NewPodWindow, new_pod_sets, window_families
from .peeridentity import Context, PeerIdentity, by_ports, peers
from .ruleset import Chain, Jump, Log, Mode, Ruleset
from .tiers import Denial, Stages, TierSets, tier_chains


def cluster_families(cluster: Cluster) -> tuple[Family, ...]:
    """Families any pod or node has an address in."""
    found = {Family.of(a) for p in cluster.pods for a in p.ips} | {
        Family.of(a) for n in cluster.nodes for a in n.addresses
    }
    return tuple(f for f in FAMILIES if f in found)


def node_addresses(cluster: Cluster, node: str, family: Family) -> tuple[IPAddress, ...]:
    """The source addresses of "agents on a node": the node's own addresses and those its
    hostNetwork pods use (the node's, or their own podIPs when the node has none)."""
    found: set[IPAddress] = set()
    this = cluster.node_by_name.get(node)
    if this is not None:
        found.update(a for a in this.addresses if Family.of(a) is family)
    for pod in cluster.pods:
        if pod.host_network and pod.node == node:
            address = end_address(cluster, pod, family).address
            if address is not None:
                found.add(address)
    return tuple(sorted(found))


def local_pods(cluster: Cluster, node: str) -> tuple[Pod, ...]:
    """Pods this node enforces for: scheduled here, not hostNetwork (never selected)."""
    return tuple(sorted((p for p in cluster.pods if p.node == node and not p.host_network), key=lambda p: p.key))


def compile_node(
    cluster: Cluster,
    node: str,
    *,
    table: str = "policyctl",
    mode: Mode = Mode.ENFORCE,
    graph: PolicyGraph | None = None,
    new_pods: NewPodWindow = NewPodWindow.ALLOW,
    identity_mark: IdentityMark | None = None,
) -> Ruleset:
    """The ruleset ``node`` must enforce for ``cluster``. Pure and deterministic: equal input
    gives an equal (and identically rendered) ruleset. ``new_pods``: what unknown addresses of
    the node's pod range meet (:mod:`newpods`); ``identity_mark``: the mark bits of the
    marked peer layout (:mod:`markedpeers`), None for peer maps that jump."""
    graph = graph if graph is not None else PolicyGraph(cluster)
    tier_sets = TierSets(cluster, graph.index) if cluster.cluster_policies else None
    isolated: list[tuple[Pod, Direction, tuple[RuleView, ...]]] = []
    enforced: list[tuple[Pod, Direction, bool, Stages | None]] = []
    for pod in local_pods(cluster, node):
        identity = identity_of(pod)
        assert identity is not None
        for direction in (Direction.EGRESS, Direction.INGRESS):
            is_isolated = graph.isolated(identity, direction)
            stages = tier_sets.stages(pod, direction) if tier_sets is not None else None
            if stages is not None and stages.empty:
                stages = None
            if is_isolated:
                isolated.append((pod, direction, tuple(graph.rules_for(identity, direction))))
            if is_isolated or stages is not None:
                enforced.append((pod, direction, is_isolated, stages))
    groups = by_ports(graph)
    ctx = Context(
        groups,
        [p for p in cluster.pods if identity_of(p) is not None],
        {
            d: peers(groups, (v for _, direction, views in isolated if direction is d for v in views))
            for d in Direction
        },
    )
    gathered: dict[Direction, tuple[GatheredSets, set[PeerIdentity]]] = {
        d: (GatheredSets(), set()) for d in (Direction.EGRESS, Direction.INGRESS)
    }
    for pod, direction, views in isolated:
        sets, admitted = gathered[direction]
        collect(ctx, pod, direction, views, sets, admitted)
    layout = Layout()
    for direction, (sets, admitted) in gathered.items():
        direction_layout(layout, direction, sets, admitted, ctx.peers[direction])
    pod_chains: dict[str, Chain] = {}
    map_elements: dict[tuple[Direction, Family], list[tuple[IPAddress, Jump]]] = {
        (d, f): [] for d in (Direction.EGRESS, Direction.INGRESS) for f in FAMILIES
    }
    for pod, direction, is_isolated, stages in enforced:
        families = [f for f in FAMILIES if pod.ip(f) is not None]
        allows = tuple(layout.allow[(direction, f)] for f in families if (direction, f) in layout.allow)
        identity = identity_of(pod)
        assert identity is not None
        sources = isolating_sources(graph.selecting(identity), direction)
        if stages is None:
            chain = pod_chain(mode, direction, allows, sources)
            pod_chains[chain.name] = chain
        else:
            assert tier_sets is not None
            name = tiered_chain_name(mode, pod, direction, allows if is_isolated else None)
            log = Log(log_prefix(mode, direction, pod))
            stage = network_policy_rules(mode, allows, sources, log) if is_isolated else None
            denial = Denial((LOG_RATE, log), final_verdict(mode))
            chains = tier_chains(tier_sets, stages, direction, pod, name=name, network_policy=stage, denial=denial,
                                 comment=f"{direction.value.lower()} of {pod.key}")
            pod_chains.update((c.name, c) for c in chains)
            chain = chains[0]
        for family in families:
            ip = pod.ip(family)
            assert ip is not None
            map_elements[(direction, family)].append((ip, Jump(chain.name)))
    dispatch = tuple(dispatch_map(d, f, elements) for (d, f), elements in map_elements.items())
    node_sets = tuple(node_set(node, f, node_addresses(cluster, node, f)) for f in FAMILIES)
    policed = tuple(policed_set(d, f, (ip for ip, _ in elements)) for (d, f), elements in map_elements.items())
    tier_used = tier_sets.used() if tier_sets is not None else ()
    window = window_families(cluster, node, new_pods)
    unknown = new_pod_sets(cluster, node, window)
    ruleset = Ruleset(
        table=table,
        node=node,
        mode=mode,
        sets=tuple(sorted(node_sets + policed + unknown + tuple(layout.sets) + tier_used, key=lambda s: s.name)),
        maps=tuple(sorted(dispatch + tuple(layout.maps), key=lambda m: m.name)),
        chains=base_chains(mode, window)
        + tuple(sorted(tuple(layout.chains) + tuple(pod_chains.values()), key=lambda c: c.name)),
    )
    return ruleset if identity_mark is None else marked(ruleset, identity_mark)
