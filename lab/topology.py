"""The lab plan: which namespaces, links, addresses and routes stand for a cluster.

Pure: a :class:`~policyctl.policy.cluster.Cluster` and a prefix go in, a :class:`LabPlan` comes
out; ``lab.netns`` makes it real. Invariants the rest of the lab relies on:

* every namespace and link name starts with the lab's prefix (``pcl-<6 hex>-``), so a later
  ``lab down`` finds leftovers by prefix and nothing outside the lab is ever touched;
* names derive from pod keys and node names, never from list positions, so the plan of the next
  step keeps unchanged pods unchanged (reconciling recreates only what differs);
* pod addresses given in the cluster (``status.podIPs``, pinned by probe cases) are kept as they
  are, whatever they are; pods without one get the next free host of their node's pod CIDR;
* nodes have host addresses (``/32``, ``/128``) on the underlay and host routes to each other,
  so no subnet of the lab's own can swallow a pinned pod address: a node's address is its
  ``Node``'s where the cluster gives one (probe cases do), else the address of a hostNetwork
  pod on it, else the next host of ``100.64.0.0/24`` (``fd00:64::/64``) that no pod has;
* a hostNetwork pod is no namespace of its own: it is its node's namespace, with its node's
  addresses, as on a real node;
* there is no NAT between pods: a pod's packets leave with its own address, as the API's
  pod-to-pod model requires, so the node's ruleset sees real pod addresses on both ends.

Two CNI styles, as real clusters have them:

* ``bridged`` (the bridge plugin, flannel): pods of a node share a Linux bridge and a subnet, so
  same-node traffic is bridged, not routed; it reaches the inet hooks only because the node
  namespace enables ``net.bridge.bridge-nf-call-iptables``/``ip6tables``.
* ``routed`` (Calico-like): every pod has a /32 (/128) behind its own veth, with a default route
  via the link-local gateway ``169.254.1.1`` (``fe80::1``); all traffic is routed by the node.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from policyctl.policy.model import Family, IPAddress, IPNetwork, Node
from policyctl.policy.cluster import Cluster

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

#: Where node addresses come from when the cluster gives none (hosts no pod has).
UNDERLAY = {
    Family.IPV4: ipaddress.ip_network("100.64.0.0/24"),
    Family.IPV6: ipaddress.ip_network("fd00:64::/64"),
}
#: Candidate Service ranges (kube-proxy's default first); a plan takes the first that holds no
#: pod or node address of its cluster.
SERVICE_NETWORKS = {
    Family.IPV4: tuple(ipaddress.ip_network(n) for n in ("10.96.0.0/16", "198.18.0.0/16", "172.30.0.0/16")),
    Family.IPV6: tuple(ipaddress.ip_network(n) for n in ("fd00:10:96::/112", "fd00:198:18::/112", "fd00:172:30::/112")),
}
#: The routed CNI's gateway as pods see it (Calico uses 169.254.1.1 and a link-local one).
ROUTED_GATEWAY = {
    Family.IPV4: ipaddress.ip_address("169.254.1.1"),
    Family.IPV6: ipaddress.ip_address("fe80::1"),
}
#: Interface names are limited to 15 bytes (IFNAMSIZ - 1).
MAX_LINK_NAME = 15
#: The default nodes when a cluster has none.
DEFAULT_NODES = ("node-1", "node-2")


class Cni(str, enum.Enum):
    """How pods are attached to their node."""

    BRIDGED = "bridged"
    ROUTED = "routed"


class PlanError(ValueError):
    """A cluster the lab cannot lay out (e.g. two nodes claiming one pinned address)."""


@dataclass(frozen=True, slots=True, order=True)
class Route:
    """``ip route replace DESTINATION [via GATEWAY] dev DEVICE [src SOURCE] [onlink]``."""

    destination: str
    device: str
    via: str | None = None
    source: str | None = None
    onlink: bool = False

    def command(self) -> str:
        words = ["route", "replace", self.destination]
        if self.via:
            words += ["via", self.via]
        words += ["dev", self.device]
        if self.source:
            words += ["src", self.source]
        if self.onlink:
            words.append("onlink")
        return " ".join(words)


@dataclass(frozen=True, slots=True)
class PodPlan:
    """One pod: its namespace, the veth pair (``link`` inside the pod, ``host_link`` on the
    node), its addresses with prefix length, and its routes. A hostNetwork pod has its
    node's namespace and addresses, and no links or routes."""

    key: str
    node: str
    netns: str
    link: str
    host_link: str
    addresses: tuple[str, ...]
    routes: tuple[Route, ...]
    host_network: bool = False
    """The pod shares its node's namespace (``netns`` is the node's; no links of its own)."""

    def address(self, family: Family) -> IPAddress | None:
        for text in self.addresses:
            address = ipaddress.ip_interface(text).ip
            if Family.of(address) is family:
                return address
        return None


@dataclass(frozen=True, slots=True)
class NodePlan:
    """One node: its namespace, its underlay link and addresses, its bridge (bridged CNI) with
    gateway addresses, and its routes: remote pods via their node, local pods via their veth."""

    name: str
    netns: str
    underlay_link: str
    underlay_peer: str
    underlay_addresses: tuple[str, ...]
    bridge: str | None
    gateways: tuple[str, ...]
    routes: tuple[Route, ...]

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        """The node's own addresses, for the ``Node`` the compiler is given: kubelet-style
        traffic from the node leaves with one of these."""
        return tuple(ipaddress.ip_interface(a).ip for a in self.underlay_addresses + self.gateways)


@dataclass(frozen=True, slots=True)
class LabPlan:
    """Everything the lab creates, all names under ``prefix``."""

    prefix: str
    cni: Cni
    families: tuple[Family, ...]
    underlay_netns: str
    underlay_bridge: str
    nodes: tuple[NodePlan, ...]
    pods: tuple[PodPlan, ...]
    service_networks: tuple[str, ...] = ()
    """Where the lab's Services get their ClusterIPs, one range per family (``lab.services``)."""

    @property
    def node_by_name(self) -> Mapping[str, NodePlan]:
        return {n.name: n for n in self.nodes}

    @property
    def pod_by_key(self) -> Mapping[str, PodPlan]:
        return {p.key: p for p in self.pods}


def short_id(text: str, length: int = 4) -> str:
    """A stable short hex name for ``text`` (pod keys and node names do not fit IFNAMSIZ)."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def netns_name(prefix: str, kind: str, name: str) -> str:
    """A readable namespace name: ``pcl-1a2b3c-pod-x.a``; hashed when too long for a file."""
    cleaned = "".join(c if c.isalnum() or c in "-." else "." for c in name)
    text = f"{prefix}{kind}-{cleaned}"
    return text if len(text) <= 64 else f"{prefix}{kind}-{short_id(name, 12)}"


def cluster_families(cluster: Cluster) -> tuple[Family, ...]:
    """The families the cluster's pods have addresses in, in first-seen order; IPv4 when no
    pod has an address yet."""
    seen: list[Family] = []
    for pod in cluster.pods:
        for address in pod.ips:
            family = Family.of(address)
            if family not in seen:
                seen.append(family)
    return tuple(seen) or (Family.IPV4,)


def node_names(cluster: Cluster) -> tuple[str, ...]:
    """Nodes of the cluster, those pods name included; two default nodes when there are none."""
    names = {n.name for n in cluster.nodes} | {p.node for p in cluster.pods if p.node}
    return tuple(sorted(names)) or DEFAULT_NODES


def place_pods(cluster: Cluster) -> dict[str, str]:
    """Pod key -> node. Pods without ``spec.nodeName`` go round-robin over the nodes, in the
    order the cluster lists them (the standard model alternates x/a, x/b, ... this way)."""
    nodes = node_names(cluster)
    placement: dict[str, str] = {}
    turn = 0
    for pod in cluster.pods:
        if pod.node:
            placement[pod.key] = pod.node
        else:
            placement[pod.key] = nodes[turn % len(nodes)]
            turn += 1
    return placement


def _default_cidr(family: Family, index: int) -> IPNetwork:
    if family is Family.IPV4:
        return ipaddress.ip_network(f"10.244.{index}.0/24")
    return ipaddress.ip_network(f"fd00:10:244:{index:x}::/64")


def _subnet_of(address: IPAddress) -> IPNetwork:
    return ipaddress.ip_network(f"{address}/{24 if address.version == 4 else 64}", strict=False)


def service_networks(taken: Iterable[IPAddress], families: Iterable[Family]) -> tuple[IPNetwork, ...]:
    """Per family, the first of :data:`SERVICE_NETWORKS` that holds none of ``taken``."""
    used = set(taken)
    chosen = []
    for family in families:
        found = next((n for n in SERVICE_NETWORKS[family] if not any(a in n for a in used)), None)
        if found is None:
            raise PlanError(f"every candidate {family.value} Service range holds a pod or node address")
        chosen.append(found)
    return tuple(chosen)


def _check_pinned(cluster: Cluster, placement: Mapping[str, str]) -> None:
    owners: dict[IPAddress, str] = {}
    for pod in cluster.pods:
        if placement[pod.key] not in node_names(cluster):
            raise PlanError(f"pod {pod.key}: node {placement[pod.key]} is unknown")
        if pod.host_network:
            continue
        for address in pod.ips:
            if address in owners:
                raise PlanError(f"pods {owners[address]} and {pod.key} both have address {address}")
            if address == ROUTED_GATEWAY[Family.of(address)]:
                raise PlanError(f"pod {pod.key}: address {address} is the lab's gateway for every pod")
            owners[address] = pod.key


def node_addresses(cluster: Cluster, *, families: Iterable[Family]) -> dict[str, tuple[IPAddress, ...]]:
    """Node -> its addresses, one per family: the ``Node``'s own, else a hostNetwork pod's on
    it (the pod *is* the node's network), else the next host of :data:`UNDERLAY` that no pod
    or other node has. Raises :class:`PlanError` when an ordinary pod has a node's address
    (the node would answer for it) or two nodes have one address."""
    placement = place_pods(cluster)
    given = {n.name: n.addresses for n in cluster.nodes}
    pod_owned = {a: p.key for p in cluster.pods if not p.host_network for a in p.ips}
    host_pods: dict[tuple[str, Family], IPAddress] = {}
    for pod in sorted(cluster.pods, key=lambda p: p.key):
        if pod.host_network:
            for ip in pod.ips:
                host_pods.setdefault((placement[pod.key], Family.of(ip)), ip)
    taken = set(pod_owned) | {a for addrs in given.values() for a in addrs} | {a for a in host_pods.values()}
    result: dict[str, tuple[IPAddress, ...]] = {}
    owners: dict[IPAddress, str] = {}
    cursor = {f: 1 for f in Family}
    for name in node_names(cluster):
        chosen: list[IPAddress] = []
        for family in families:
            address = next((a for a in given.get(name, ()) if Family.of(a) is family), None)
            if address is None:
                address = host_pods.get((name, family))
            if address is None:
                network = UNDERLAY[family]
                while network[cursor[family]] in taken:
                    cursor[family] += 1
                address = network[cursor[family]]
                taken.add(address)
            if address in pod_owned:
                raise PlanError(f"pod {pod_owned[address]}: address {address} is node {name}'s")
            if address in owners:
                raise PlanError(f"nodes {owners[address]} and {name} both have address {address}")
            owners[address] = name
            chosen.append(address)
        result[name] = tuple(chosen)
    return result


def assign_addresses(cluster: Cluster, *, families: Iterable[Family]) -> dict[str, tuple[IPAddress, ...]]:
    """Pod key -> addresses, one per family: the cluster's own where it has one, else the
    next free host of the node's default pod CIDR (``10.244.<n>.0/24``,
    ``fd00:10:244:<n>::/64``, ``.1`` kept for the gateway). Assigned in pod-key order, so the
    same cluster always gets the same addresses."""
    placement = place_pods(cluster)
    nodes = node_names(cluster)
    taken = {a for p in cluster.pods for a in p.ips} | {a for n in cluster.nodes for a in n.addresses}
    result: dict[str, tuple[IPAddress, ...]] = {}
    cursors: dict[tuple[str, Family], int] = {}
    for pod in sorted(cluster.pods, key=lambda p: p.key):
        if pod.host_network:
            continue
        addresses = list(pod.ips)
        for family in families:
            if pod.ip(family) is not None:
                continue
            node = placement[pod.key]
            cidr = _default_cidr(family, nodes.index(node) + 1)
            offset = cursors.get((node, family), 2)
            while cidr[offset] in taken:
                offset += 1
            taken.add(cidr[offset])
            cursors[(node, family)] = offset + 1
            addresses.append(cidr[offset])
        result[pod.key] = tuple(addresses)
    return result


def plan_lab(cluster: Cluster, *, prefix: str, cni: Cni, families: Iterable[Family] | None = None) -> LabPlan:
    """Lay the cluster out as namespaces. Raises :class:`PlanError` for clusters the lab cannot
    build (an address claimed twice, a pod with a node's address, unknown nodes)."""
    fams = tuple(families) if families is not None else cluster_families(cluster)
    placement = place_pods(cluster)
    _check_pinned(cluster, placement)
    nodes = node_names(cluster)
    addresses = assign_addresses(cluster, families=fams)
    underlay_of = node_addresses(cluster, families=fams)
    taken = {a for addrs in addresses.values() for a in addrs} | {a for addrs in underlay_of.values() for a in addrs}
    services = service_networks(taken, fams)

    subnet_owners: dict[IPNetwork, set[str]] = {}
    for key, addrs in addresses.items():
        for address in addrs:
            subnet_owners.setdefault(_subnet_of(address), set()).add(placement[key])
    node_plans: list[NodePlan] = []
    pod_plans: list[PodPlan] = []
    host_links: set[str] = set()

    # A node's exclusive subnets are routed to it as a whole; addresses in a subnet two
    # nodes share are routed one by one.
    exclusive: dict[str, list[IPNetwork]] = {n: [] for n in nodes}
    for subnet, owners in subnet_owners.items():
        if len(owners) == 1:
            exclusive[next(iter(owners))].append(subnet)
    for index, name in enumerate(nodes):
        for family in fams:
            default = _default_cidr(family, index + 1)
            if default not in exclusive[name] and default not in subnet_owners:
                exclusive[name].append(default)

    for index, name in enumerate(nodes):
        node_netns = netns_name(prefix, "node", name)
        local = sorted((k for k in addresses if placement[k] == name))
        gateways: dict[IPNetwork, IPInterface] = {}
        if cni is Cni.BRIDGED:
            for subnet in sorted(exclusive[name], key=lambda s: (s.version, s)):
                host = next(h for h in subnet.hosts() if h not in taken)
                gateways[subnet] = ipaddress.ip_interface(f"{host}/{subnet.prefixlen}")
        underlay = underlay_of[name]
        source = {Family.of(a): str(a) for a in underlay}
        routes: list[Route] = []
        link_of_node = f"{prefix}{short_id('node:' + name)}"
        for other in nodes:
            if other == name:
                continue
            for address in underlay_of[other]:
                routes.append(Route(f"{address}/{address.max_prefixlen}", "eth-ul", source=source[Family.of(address)]))
        # Processes on the node (hostNetwork pods) need a route to a ClusterIP before the
        # output hook's DNAT can turn it into a pod address.
        for network in services:
            routes.append(Route(str(network), "eth-ul", source=source[Family.of(network)]))
        for other in nodes:
            if other == name:
                continue
            via = {Family.of(a): str(a) for a in underlay_of[other]}
            for subnet in exclusive[other]:
                routes.append(Route(str(subnet), "eth-ul", via[Family.of(subnet)], onlink=True))
            for key in sorted(k for k in addresses if placement[k] == other):
                for address in addresses[key]:
                    if len(subnet_owners[_subnet_of(address)]) > 1:
                        routes.append(Route(f"{address}/{address.max_prefixlen}", "eth-ul", via[Family.of(address)],
                                            onlink=True))
        bridge = f"{prefix}br" if cni is Cni.BRIDGED else None
        extra_gateways: set[IPInterface] = set()
        for key in local:
            host_link = f"{prefix}{short_id(key)}"
            while host_link in host_links:
                host_link = f"{prefix}{short_id(host_link)}"
            host_links.add(host_link)
            pod_routes: list[Route] = []
            pod_addresses: list[str] = []
            for address in addresses[key]:
                family = Family.of(address)
                subnet = _subnet_of(address)
                host_route = f"{address}/{address.max_prefixlen}"
                if cni is Cni.ROUTED:
                    pod_addresses.append(host_route)
                    pod_routes.append(Route("default", "eth0", str(ROUTED_GATEWAY[family]), onlink=True))
                    routes.append(Route(host_route, host_link, source=source[family]))
                elif subnet in gateways:
                    pod_addresses.append(f"{address}/{subnet.prefixlen}")
                    pod_routes.append(Route("default", "eth0", str(gateways[subnet].ip)))
                else:
                    # A subnet shared with other nodes: a host route on the bridge, and the
                    # node's default-CIDR gateway, or the link-local one when another node
                    # has that CIDR too.
                    gateway = gateways.get(_default_cidr(family, index + 1))
                    if gateway is None:
                        gateway = ipaddress.ip_interface(
                            f"{ROUTED_GATEWAY[family]}/{64 if family is Family.IPV6 else 32}"
                        )
                        extra_gateways.add(gateway)
                    pod_addresses.append(host_route)
                    pod_routes.append(Route("default", "eth0", str(gateway.ip), onlink=True))
                    routes.append(Route(host_route, bridge or "", source=source[family]))
            pod_plans.append(
                PodPlan(
                    key=key,
                    node=name,
                    netns=netns_name(prefix, "pod", key.replace("/", ".")),
                    link=f"{prefix}eth",
                    host_link=host_link,
                    addresses=tuple(pod_addresses),
                    routes=tuple(sorted(set(pod_routes))),
                )
            )
        node_plans.append(
            NodePlan(
                name=name,
                netns=node_netns,
                underlay_link=f"{prefix}ul",
                underlay_peer=link_of_node,
                underlay_addresses=tuple(f"{a}/{a.max_prefixlen}" for a in underlay),
                bridge=bridge,
                gateways=tuple(
                    str(g) for g in sorted({*gateways.values(), *extra_gateways}, key=lambda g: (g.version, g))
                ),
                routes=tuple(sorted(set(routes))),
            )
        )
        for pod in sorted(cluster.pods, key=lambda p: p.key):
            if pod.host_network and placement[pod.key] == name:
                pod_plans.append(
                    PodPlan(key=pod.key, node=name, netns=node_netns, link="", host_link="",
                            addresses=tuple(f"{a}/{a.max_prefixlen}" for a in underlay), routes=(),
                            host_network=True)
                )
    plan = LabPlan(
        prefix=prefix,
        cni=cni,
        families=fams,
        underlay_netns=f"{prefix}underlay",
        underlay_bridge=f"{prefix}ul",
        nodes=tuple(node_plans),
        pods=tuple(sorted(pod_plans, key=lambda p: p.key)),
        service_networks=tuple(str(n) for n in services),
    )
    return _rename_devices(plan)


def _rename_devices(plan: LabPlan) -> LabPlan:
    """Routes above name devices by role (``eth0`` in a pod, ``eth-ul`` on a node); give them
    the prefixed link names the lab really creates."""
    names = {"eth0": f"{plan.prefix}eth", "eth-ul": f"{plan.prefix}ul"}

    def fix(routes: tuple[Route, ...]) -> tuple[Route, ...]:
        return tuple(sorted(replace(r, device=names.get(r.device, r.device)) for r in routes))

    return replace(
        plan,
        nodes=tuple(replace(n, routes=fix(n.routes)) for n in plan.nodes),
        pods=tuple(replace(p, routes=fix(p.routes)) for p in plan.pods),
    )


def lab_cluster(cluster: Cluster, plan: LabPlan) -> Cluster:
    """The cluster as the lab runs it: every pod on its node with its lab addresses, every
    node with the lab's node addresses (the ``Node``'s own where the cluster pins them, see
    :func:`node_addresses`) and its labels, which ``nodes`` peers of cluster policies select.
    This is what the compiler is given, so the ruleset names the addresses real packets carry."""
    pods = plan.pod_by_key
    given = {n.name: n for n in cluster.nodes}
    return replace(
        cluster,
        pods=tuple(
            replace(
                p,
                node=pods[p.key].node,
                ips=tuple(ipaddress.ip_interface(a).ip for a in pods[p.key].addresses),
            )
            for p in cluster.pods
        ),
        nodes=tuple(
            replace(given[n.name], addresses=n.addresses) if n.name in given else Node(n.name, n.addresses)
            for n in plan.nodes
        ),
    )
