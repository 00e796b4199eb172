"""Hypothesis strategies for random clusters and connections.

Used by the semantics' property tests and by differential tests that compare other engines
with ``policy.semantics.evaluate``. The value spaces are deliberately small so that random
objects collide: a few label keys and values shared by pods and namespaces, a few port
numbers and port names reused across pods with different numbers and protocols, ipBlocks cut
from the addresses that pods and nodes really have. That is what makes policies select,
match and miss in interesting ways.

Public functions (signatures are kept stable):

* :func:`clusters` -> ``Cluster``: namespaces x/y/z (some), nodes, pods, policies.
* :func:`connections` (given a cluster) -> ``Connection`` between pods, nodes and external
  addresses, on ports and addresses at the edges of what the policies name.
* :func:`policies`, :func:`selectors`, :func:`port_matches`, :func:`ip_blocks`: the parts, for
  tests that build the rest themselves.
* :func:`cluster_events` (given a cluster) -> the next snapshot after one event, sharing every
  object the event did not touch; :func:`cluster_histories` -> a cluster and the snapshots
  after it, for incremental consumers of snapshot streams.

Addresses are deterministic from positions: node ``node-<n>`` has ``192.168.0.<n>`` and
``fd00:192::<n>``; pod number ``i`` on node ``n`` has ``10.0.<n>.<10+i>`` and
``fd00:10:<n>::<10+i>``; a hostNetwork pod has its node's addresses.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence

from hypothesis import strategies as st

from policyctl.policy.model import (
    NAMESPACE_NAME_LABEL,
    ContainerPort,
    Direction,
    Family,
    IPAddress,
    IPBlockPeer,
    IPNetwork,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Operator,
    OwnNamespace,
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

NAMESPACE_NAMES = ("x", "y", "z")
POD_LABEL_KEYS = ("app", "tier")
NAMESPACE_LABEL_KEYS = ("ns", "env")
LABEL_VALUES = ("a", "b", "x", "y")
PORT_NUMBERS = (53, 80, 81, 443, 8080)
PORT_NAMES = ("http", "dns", "metrics")
EXTERNAL_ADDRESSES = (ipaddress.ip_address("203.0.113.9"), ipaddress.ip_address("2001:db8::9"))
_PREFIXES = {4: (0, 8, 16, 24, 30, 32), 6: (0, 32, 64, 120, 128)}
STACKS: tuple[tuple[Family, ...], ...] = ((Family.IPV4,), (Family.IPV6,), (Family.IPV4, Family.IPV6))


def node_address(index: int, family: Family) -> IPAddress:
    return ipaddress.ip_address(f"192.168.0.{index}" if family is Family.IPV4 else f"fd00:192::{index}")


def pod_address(index: int, node_index: int, family: Family) -> IPAddress:
    host = 10 + index
    return ipaddress.ip_address(
        f"10.0.{node_index}.{host}" if family is Family.IPV4 else f"fd00:10:{node_index}::{host}"
    )


def requirements(keys: Sequence[str]) -> st.SearchStrategy[Requirement]:
    """One selector requirement over ``keys``: a matchLabels pair or any operator."""
    key = st.sampled_from(keys)
    values = st.lists(st.sampled_from(LABEL_VALUES), min_size=1, max_size=2, unique=True).map(
        lambda v: tuple(sorted(v))
    )
    return st.one_of(
        st.builds(lambda k, v: Requirement(k, Operator.IN, (v,), True), key, st.sampled_from(LABEL_VALUES)),
        st.builds(lambda k, op, v: Requirement(k, op, v), key, st.sampled_from([Operator.IN, Operator.NOT_IN]), values),
        st.builds(lambda k, op: Requirement(k, op), key, st.sampled_from([Operator.EXISTS, Operator.DOES_NOT_EXIST])),
    )


def selectors(keys: Sequence[str] = POD_LABEL_KEYS) -> st.SearchStrategy[LabelSelector]:
    """Label selectors with 0-2 requirements (empty = select all) over ``keys``."""
    return st.lists(requirements(keys), max_size=2).map(LabelSelector.of)


def labels(keys: Sequence[str] = POD_LABEL_KEYS) -> st.SearchStrategy[Labels]:
    return st.dictionaries(st.sampled_from(keys), st.sampled_from(LABEL_VALUES), max_size=len(keys)).map(Labels)


def port_matches(names: Sequence[str] = PORT_NAMES) -> st.SearchStrategy[PortMatch]:
    """``NetworkPolicyPort``s: all ports of a protocol, a number, a name, or a range
    ``port..endPort`` (endPort >= port, inclusive)."""
    protocol = st.sampled_from(list(Protocol))
    number = st.sampled_from(PORT_NUMBERS)
    return st.one_of(
        st.builds(PortMatch, protocol),
        st.builds(PortMatch, protocol, number),
        st.builds(PortMatch, protocol, st.sampled_from(names)),
        st.builds(lambda p, n, w: PortMatch(p, n, n + w), protocol, number, st.sampled_from([0, 1, 9, 400])),
    )


@st.composite
def ip_blocks(draw: st.DrawFn, pool: Sequence[IPAddress]) -> IPBlockPeer:
    """An ipBlock around an address of ``pool`` (so it overlaps pods and nodes), with up to
    two excepts strictly inside it, also cut around pool addresses when they fall inside."""
    anchor = draw(st.sampled_from(sorted(pool, key=lambda a: (a.version, a))))
    prefix = draw(st.sampled_from(_PREFIXES[anchor.version]))
    cidr: IPNetwork = ipaddress.ip_network(f"{anchor}/{prefix}", strict=False)
    excepts: list[IPNetwork] = []
    inside = sorted((a for a in pool if a.version == anchor.version and a in cidr), key=lambda a: (a.version, a))
    if cidr.prefixlen < cidr.max_prefixlen and inside:
        for _ in range(draw(st.integers(0, 2))):
            around = draw(st.sampled_from(inside))
            longer = draw(st.integers(cidr.prefixlen + 1, cidr.max_prefixlen))
            excepts.append(ipaddress.ip_network(f"{around}/{longer}", strict=False))
    return IPBlockPeer(cidr, tuple(sorted(set(excepts), key=str)), written=str(cidr))


@st.composite
def _peers(draw: st.DrawFn, namespace: str, pool: Sequence[IPAddress]) -> PodPeer | IPBlockPeer:
    kind = draw(st.sampled_from(["pods", "namespaces", "both", "ipblock"]))
    if kind == "ipblock":
        return draw(ip_blocks(pool))
    if kind == "pods":
        return PodPeer(OwnNamespace(namespace), draw(selectors()))
    scope = SelectedNamespaces(draw(selectors(NAMESPACE_LABEL_KEYS)))
    pods = draw(selectors()) if kind == "both" else LabelSelector()
    return PodPeer(scope, pods)


@st.composite
def _rules(
    draw: st.DrawFn, direction: Direction, namespace: str, pool: Sequence[IPAddress], file: str
) -> tuple[Rule, ...]:
    count = draw(st.integers(0, 2))
    return tuple(
        Rule(
            direction,
            index,
            tuple(draw(st.lists(_peers(namespace, pool), max_size=3))),
            tuple(draw(st.lists(port_matches(), max_size=2))),
            Provenance(file, 10 * (index + 1) + (0 if direction is Direction.INGRESS else 5)),
        )
        for index in range(count)
    )


@st.composite
def policies(
    draw: st.DrawFn,
    *,
    namespaces: Sequence[str] = NAMESPACE_NAMES,
    pool: Sequence[IPAddress] = EXTERNAL_ADDRESSES,
    name: str = "p",
) -> NetworkPolicy:
    """A NetworkPolicy in one of ``namespaces`` with any policyTypes, 0-2 rules per direction
    (rules of a direction not in policyTypes included: they must be ignored), peers of every
    kind (podSelector, namespaceSelector, both, ipBlock cut around ``pool``) and every kind of
    port."""
    namespace = draw(st.sampled_from(list(namespaces)))
    file = f"{namespace}-{name}.yaml"
    types = draw(st.sampled_from([{Direction.INGRESS}, {Direction.EGRESS}, {Direction.INGRESS, Direction.EGRESS}]))
    return NetworkPolicy(
        namespace=namespace,
        name=name,
        pod_selector=draw(selectors()),
        policy_types=frozenset(types),
        ingress=draw(_rules(Direction.INGRESS, namespace, pool, file)),
        egress=draw(_rules(Direction.EGRESS, namespace, pool, file)),
        provenance=Provenance(file, 1),
    )


_container_ports = st.lists(
    st.builds(
        ContainerPort, st.sampled_from(PORT_NUMBERS), st.sampled_from(list(Protocol)), st.sampled_from(PORT_NAMES)
    ),
    max_size=3,
    unique_by=lambda c: c.name,
)


@st.composite
def clusters(
    draw: st.DrawFn,
    max_pods: int = 6,
    families: Sequence[Family] | None = None,
    *,
    max_policies: int = 4,
    min_policies: int = 1,
    min_pods: int = 2,
    max_nodes: int = 3,
    host_network: bool = True,
    addressless: bool = False,
) -> Cluster:
    """A random cluster.

    ``families`` is the cluster's IP stack (``(IPv4,)``, ``(IPv6,)`` or both); ``None`` draws
    one. Every pod and node has one address per family of the stack, except hostNetwork pods
    (``host_network=True`` allows them), which have their node's, and, with
    ``addressless=True``, pods that stand for workload templates and have none. 1-3 of the
    namespaces x, y, z with overlapping labels (``ns``, ``env``), 1-``max_nodes`` nodes, ``min_pods``-
    ``max_pods`` pods with overlapping labels and named container ports, ``min_policies``-
    ``max_policies`` policies named p0, p1, ..."""
    stack = tuple(families) if families is not None else draw(st.sampled_from(STACKS))
    ns_names = draw(st.lists(st.sampled_from(NAMESPACE_NAMES), min_size=1, max_size=3, unique=True))
    namespaces = []
    for name in sorted(ns_names):
        extra = draw(labels(NAMESPACE_LABEL_KEYS))
        namespaces.append(Namespace(name, Labels({**extra, NAMESPACE_NAME_LABEL: name})))
    node_count = draw(st.integers(1, max_nodes))
    nodes = tuple(Node(f"node-{n}", tuple(node_address(n, f) for f in stack)) for n in range(1, node_count + 1))
    pods = []
    for index in range(draw(st.integers(min(min_pods, max_pods), max_pods))):
        node_index = draw(st.integers(1, node_count))
        is_host = host_network and draw(st.integers(0, 7)) == 7
        if is_host:
            ips = nodes[node_index - 1].addresses
        elif addressless and draw(st.booleans()):
            ips = ()
        else:
            ips = tuple(pod_address(index, node_index, f) for f in stack)
        pods.append(
            Pod(
                namespace=draw(st.sampled_from(sorted(ns_names))),
                name=f"p{index}",
                labels=draw(labels()),
                node=f"node-{node_index}",
                ips=ips,
                host_network=is_host,
                ports=tuple(draw(_container_ports)),
            )
        )
    pool = [a for p in pods for a in p.ips] + [a for n in nodes for a in n.addresses]
    pool += [a for a in EXTERNAL_ADDRESSES if Family.of(a) in stack]
    drawn = [
        draw(policies(namespaces=sorted(ns_names), pool=pool, name=f"p{i}"))
        for i in range(draw(st.integers(min_policies, max_policies)))
    ]
    return Cluster(
        namespaces=tuple(namespaces),
        pods=tuple(sorted(pods, key=lambda p: p.key)),
        nodes=nodes,
        policies=tuple(sorted(drawn, key=lambda p: (p.namespace, p.name))),
    )


def cluster_families(cluster: Cluster) -> tuple[Family, ...]:
    """The families any pod or node of ``cluster`` has an address in (IPv4 when none has)."""
    found = {Family.of(a) for p in cluster.pods for a in p.ips} | {
        Family.of(a) for n in cluster.nodes for a in n.addresses
    }
    return tuple(f for f in Family if f in found) or (Family.IPV4,)


def edge_ports(cluster: Cluster) -> tuple[int, ...]:
    """Ports at the edges of what the policies and pods name: each policy port, one below it,
    each range's end and one past it, every container port (the numbers named ports resolve
    to), and 80."""
    found = {80}
    for p in (*cluster.policies, *cluster.cluster_policies):
        for r in p.ingress + p.egress:
            for m in r.ports:
                if isinstance(m.port, int):
                    found |= {m.port, m.port - 1, m.port + 1}
                if m.end_port is not None:
                    found |= {m.end_port, m.end_port + 1}
    found |= {c.port for p in cluster.pods for c in p.ports}
    return tuple(sorted(n for n in found if 1 <= n <= 65535))


def edge_addresses(cluster: Cluster, family: Family) -> tuple[IPAddress, ...]:
    """External addresses at the edges of every ipBlock and except in ``family``: the first
    and last address of each network and the ones just outside it, plus a fixed external
    address; addresses that belong to pods or nodes are left out (those ends are pods/nodes)."""
    taken = {a for p in cluster.pods for a in p.ips} | {a for n in cluster.nodes for a in n.addresses}
    found = {a for a in EXTERNAL_ADDRESSES if Family.of(a) is family}
    for p in (*cluster.policies, *cluster.cluster_policies):
        for r in p.ingress + p.egress:
            for peer in r.peers:
                if isinstance(peer, IPBlockPeer):
                    for net in (peer.cidr, *peer.excepts):
                        if Family.of(net) is not family:
                            continue
                        first, last = net.network_address, net.broadcast_address
                        found |= {first, last}
                        if int(first) > 0:
                            found.add(first - 1)
                        if int(last) < (2**net.max_prefixlen) - 1:
                            found.add(last + 1)
    return tuple(sorted(found - taken))


@st.composite
def connections(
    draw: st.DrawFn, cluster: Cluster, *, families: Sequence[Family] | None = None, possible_only: bool = True
) -> Connection:
    """A new connection in ``cluster``: between pods (mostly), nodes and external addresses at
    ipBlock edges, a pod to itself, via a Service or not, on an edge port (:func:`edge_ports`)
    and any protocol. With ``possible_only`` (the default) every pod or node end has an
    address in the connection's family or none at all, so the connection can exist."""
    family = draw(st.sampled_from(list(families or cluster_families(cluster))))

    def usable(p: Pod | Node) -> bool:
        addresses = p.ips if isinstance(p, Pod) else p.addresses
        return not possible_only or not addresses or any(Family.of(a) is family for a in addresses)

    pods = [p for p in cluster.pods if usable(p)]
    nodes = [n for n in cluster.nodes if usable(n)]
    others: list[Endpoint] = [*nodes, *edge_addresses(cluster, family)]
    ends = (
        st.one_of(st.sampled_from(pods), st.sampled_from(pods), st.sampled_from(others))
        if pods
        else st.sampled_from(others)
    )
    source = draw(ends)
    rest = [p for p in pods if p != source]
    if isinstance(source, Pod) and draw(st.integers(0, 5)) == 5:
        destination: Endpoint = source
    elif rest:
        destination = draw(st.one_of(st.sampled_from(rest), st.sampled_from(rest), st.sampled_from(others)))
    else:
        destination = draw(st.sampled_from(others))
    via_service = isinstance(destination, Pod) and draw(st.booleans())
    return Connection(
        source=source,
        destination=destination,
        protocol=draw(st.sampled_from(list(Protocol))),
        port=draw(st.sampled_from(edge_ports(cluster))),
        family=family,
        via_service=via_service,
    )


def _replace_pod(cluster: Cluster, old: Pod, new: Pod | None) -> Cluster:
    """``cluster`` with ``old`` replaced (or removed); every other object stays the same object,
    as in the snapshots an informer produces."""
    pods = tuple(p for p in cluster.pods if p is not old) + ((new,) if new is not None else ())
    return dataclasses.replace(cluster, pods=tuple(sorted(pods, key=lambda p: p.key)))


def _fresh_address(cluster: Cluster, node_index: int, family: Family) -> IPAddress:
    taken = {a for p in cluster.pods for a in p.ips}
    index = 40
    while pod_address(index, node_index, family) in taken:
        index += 1
    return pod_address(index, node_index, family)


@st.composite
def cluster_events(draw: st.DrawFn, cluster: Cluster) -> Cluster:
    """The next snapshot after one event: a pod added, deleted, relabelled, re-addressed (to a
    fresh address, to none, or to another pod's), given other container ports, moved to
    another node or toggled to or from hostNetwork; a policy added, deleted, rewritten or only
    moved in its file (new provenance); a namespace relabelled; a node's addresses changed; or
    nothing at all. Objects the event does not touch are kept as they are (same objects)."""
    stack = cluster_families(cluster)
    nodes = list(cluster.nodes)
    namespaces = sorted(n.name for n in cluster.namespaces) or ["x"]
    kinds = ["pod-add", "policy-add", "namespace-relabel", "node-addresses", "nothing"]
    if cluster.pods:
        kinds += ["pod-delete", "pod-relabel", "pod-readdress", "pod-ports", "pod-move", "pod-host-network"]
    if cluster.policies:
        kinds += ["policy-delete", "policy-modify", "policy-provenance"]
    kind = draw(st.sampled_from(kinds))
    pool = [a for p in cluster.pods for a in p.ips] + [a for n in nodes for a in n.addresses] or list(
        EXTERNAL_ADDRESSES
    )
    if kind == "nothing":
        return draw(st.sampled_from([cluster, dataclasses.replace(cluster)]))
    if kind == "pod-add":
        node_index = draw(st.integers(1, len(nodes)))
        name = f"q{len(cluster.pods)}-{draw(st.integers(0, 999))}"
        if any(p.name == name for p in cluster.pods):
            return cluster
        pod = Pod(
            namespace=draw(st.sampled_from(namespaces)),
            name=name,
            labels=draw(labels()),
            node=f"node-{node_index}",
            ips=tuple(_fresh_address(cluster, node_index, f) for f in stack),
            ports=tuple(draw(_container_ports)),
        )
        return dataclasses.replace(cluster, pods=tuple(sorted((*cluster.pods, pod), key=lambda p: p.key)))
    if kind.startswith("pod-"):
        pod = draw(st.sampled_from(cluster.pods))
        if kind == "pod-delete":
            return _replace_pod(cluster, pod, None)
        if kind == "pod-relabel":
            return _replace_pod(cluster, pod, dataclasses.replace(pod, labels=draw(labels())))
        if kind == "pod-ports":
            return _replace_pod(cluster, pod, dataclasses.replace(pod, ports=tuple(draw(_container_ports))))
        node_index = int((pod.node or "node-1").rsplit("-", 1)[1])
        if kind == "pod-readdress":
            choice = draw(st.sampled_from(["fresh", "none", "shared", "one-family"]))
            if choice == "fresh":
                ips = tuple(_fresh_address(cluster, node_index, f) for f in stack)
            elif choice == "none":
                ips = ()
            elif choice == "shared":
                other = draw(st.sampled_from(cluster.pods))
                ips = other.ips
            else:
                ips = pod.ips[:1]
            return _replace_pod(cluster, pod, dataclasses.replace(pod, ips=ips))
        if kind == "pod-move":
            target = draw(st.integers(1, len(nodes)))
            ips = (
                tuple(_fresh_address(cluster, target, f) for f in stack)
                if pod.ips and not pod.host_network
                else pod.ips
            )
            if pod.host_network:
                ips = nodes[target - 1].addresses
            return _replace_pod(cluster, pod, dataclasses.replace(pod, node=f"node-{target}", ips=ips))
        if pod.host_network:
            return _replace_pod(
                cluster,
                pod,
                dataclasses.replace(
                    pod, host_network=False, ips=tuple(_fresh_address(cluster, node_index, f) for f in stack)
                ),
            )
        return _replace_pod(
            cluster, pod, dataclasses.replace(pod, host_network=True, ips=nodes[node_index - 1].addresses)
        )
    if kind in ("policy-add", "policy-modify"):
        if kind == "policy-add":
            name = f"e{len(cluster.policies)}-{draw(st.integers(0, 999))}"
            kept = cluster.policies
        else:
            old = draw(st.sampled_from(cluster.policies))
            name = old.name
            kept = tuple(p for p in cluster.policies if p is not old)
        new = draw(policies(namespaces=namespaces if kind == "policy-add" else [old.namespace], pool=pool, name=name))
        if any(p.ref == new.ref for p in kept):
            return cluster
        return dataclasses.replace(cluster, policies=tuple(sorted((*kept, new), key=lambda p: (p.namespace, p.name))))
    if kind == "policy-delete":
        gone = draw(st.sampled_from(cluster.policies))
        return dataclasses.replace(cluster, policies=tuple(p for p in cluster.policies if p is not gone))
    if kind == "policy-provenance":
        old = draw(st.sampled_from(cluster.policies))
        shift = draw(st.integers(1, 50))

        def moved(r: Rule) -> Rule:
            where = r.provenance or Provenance(f"{old.namespace}-{old.name}.yaml", 1)
            return dataclasses.replace(r, provenance=Provenance(where.file, where.line + shift))

        new = dataclasses.replace(
            old,
            ingress=tuple(moved(r) for r in old.ingress),
            egress=tuple(moved(r) for r in old.egress),
            provenance=Provenance("moved.yaml", shift),
        )
        return dataclasses.replace(cluster, policies=tuple(new if p is old else p for p in cluster.policies))
    if kind == "namespace-relabel":
        if not cluster.namespaces:
            return cluster
        old_ns = draw(st.sampled_from(cluster.namespaces))
        extra = draw(labels(NAMESPACE_LABEL_KEYS))
        new_ns = Namespace(old_ns.name, Labels({**extra, NAMESPACE_NAME_LABEL: old_ns.name}))
        return dataclasses.replace(cluster, namespaces=tuple(new_ns if n is old_ns else n for n in cluster.namespaces))
    target = draw(st.sampled_from(nodes))
    index = int(target.name.rsplit("-", 1)[1])
    choice = draw(st.sampled_from(["renumber", "none", "restore"]))
    if choice == "renumber":
        addresses = tuple(node_address(index + 100, f) for f in stack)
    elif choice == "none":
        addresses = ()
    else:
        addresses = tuple(node_address(index, f) for f in stack)
    moved_node = Node(target.name, addresses)
    return dataclasses.replace(cluster, nodes=tuple(moved_node if n is target else n for n in cluster.nodes))


@st.composite
def cluster_histories(
    draw: st.DrawFn, *, steps: int = 6, max_pods: int = 6, max_policies: int = 4, max_nodes: int = 2
) -> list[Cluster]:
    """A random cluster followed by ``1..steps`` snapshots, each one event after the last
    (:func:`cluster_events`)."""
    current = draw(clusters(max_pods=max_pods, max_policies=max_policies, max_nodes=max_nodes, addressless=True))
    history = [current]
    for _ in range(draw(st.integers(1, steps))):
        current = draw(cluster_events(current))
        history.append(current)
    return history


def node_with_pods(history: list[Cluster]) -> str:
    """The node of the first pod-network pod of a history's first snapshot (else its first
    node): the node whose ruleset a history changes most."""
    return next((p.node for p in history[0].pods if not p.host_network and p.node), history[0].nodes[0].name)
