"""Seeded, reproducible clusters of any size, as the manifests a real cluster would hold.

The shape follows what production clusters look like, so the benchmarks measure the cases that
matter rather than a uniform random graph:

* namespaces owned by teams (``team``, ``env`` labels), plus ``kube-system`` with the DNS pods
  and ``monitoring`` with Prometheus, which most policies name;
* apps of a tier (``web``, ``api``, ``worker``, ``db``, ``cache``) with replicas; pods carry
  ``app``, ``tier``, ``team`` and ``version`` (a fifth of the apps run a ``v2`` canary beside
  ``v1``), so there are a few identities per app, not one per pod;
* container ports with names (``http``, ``grpc``, ``metrics``, ``postgres``, ``redis``) that
  policies refer to by name;
* per app namespace: a default deny of both directions, an allow-DNS egress policy, then one
  allow policy per app in the style of its tier: same-namespace app-to-app allows, namespace
  selectors (cross-namespace callers of one team, Prometheus scraping), ipBlocks with
  ``except`` (public ingress, egress to a partner network), numeric port ranges (``endPort``);
* pods are scheduled on nodes at random; every node has a pod CIDR sized for its pods and the
  pods get consecutive addresses from it (``status.podIPs``, and IPv6 too when dual-stack).

Invariants: the same :class:`ClusterShape` (seed included) always gives byte-identical
manifests; object order is namespaces, nodes, pods, policies, each sorted by name; exactly
``shape.pods`` pods and ``shape.policies`` policies are generated (when there are enough app
namespaces to hold them).
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Manifest = dict[str, Any]

#: Container ports of each tier: (name, number, protocol).
TIER_PORTS: dict[str, tuple[tuple[str, int, str], ...]] = {
    "web": (("http", 8080, "TCP"), ("metrics", 9100, "TCP")),
    "api": (("http", 8080, "TCP"), ("grpc", 9090, "TCP"), ("metrics", 9100, "TCP")),
    "worker": (("metrics", 9100, "TCP"),),
    "db": (("postgres", 5432, "TCP"), ("metrics", 9187, "TCP")),
    "cache": (("redis", 6379, "TCP"),),
}
#: The tier of the i-th app of a namespace, cycling: most namespaces hold several APIs.
TIER_CYCLE = ("web", "api", "db", "api", "worker", "cache", "api", "worker")
TEAMS = ("payments", "search", "identity", "catalog", "checkout", "growth", "ml", "platform")
ENVS = ("prod", "staging", "dev")
REPLICAS_PER_APP = 10
CANARY_EVERY = 5
POD_NETWORK_V4 = ipaddress.IPv4Network("10.0.0.0/8")
POD_NETWORK_V6 = ipaddress.IPv6Network("fd00:10::/48")
NODE_NETWORK_V4 = ipaddress.ip_network("172.16.0.0/16")
NODE_NETWORK_V6 = ipaddress.ip_network("fd00:ff::/64")
PARTNER_V4 = "203.0.113.0/24"
PARTNER_EXCEPT_V4 = "203.0.113.128/25"
SYSTEM_NAMESPACES = ("kube-system", "monitoring")


class ShapeError(ValueError):
    """A shape that cannot be generated; the message names the field."""


@dataclass(frozen=True, slots=True)
class ClusterShape:
    """How big a cluster to generate. ``namespaces`` counts the two system namespaces, so
    ``namespaces - 2`` app namespaces share the pods and the policies."""

    pods: int = 1000
    namespaces: int = 10
    nodes: int = 5
    policies: int = 100
    dual_stack: bool = False
    seed: int = 1

    def problems(self) -> list[str]:
        """Every reason the shape cannot be generated (empty when it can)."""
        found = []
        if self.namespaces < 3:
            found.append("namespaces: at least 3 (kube-system, monitoring and one app namespace)")
        if self.nodes < 1:
            found.append("nodes: at least 1")
        if self.pods < max(self.namespaces, 3):
            found.append("pods: at least one per namespace")
        if self.policies < 0:
            found.append("policies: not negative")
        if self.nodes > NODE_NETWORK_V4.num_addresses - 2:
            found.append(f"nodes: at most {NODE_NETWORK_V4.num_addresses - 2}")
        return found

    @property
    def app_namespaces(self) -> int:
        return self.namespaces - len(SYSTEM_NAMESPACES)


#: Named scales of the suite. ``full`` is the issue's target size.
SCALES: dict[str, ClusterShape] = {
    "tiny": ClusterShape(pods=60, namespaces=4, nodes=2, policies=16),
    "small": ClusterShape(pods=1_000, namespaces=10, nodes=5, policies=100),
    "full": ClusterShape(pods=10_000, namespaces=100, nodes=50, policies=1_000),
    "huge": ClusterShape(pods=100_000, namespaces=1_000, nodes=500, policies=10_000),
}


@dataclass(frozen=True, slots=True)
class App:
    namespace: str
    name: str
    tier: str
    team: str


@dataclass(slots=True)
class _Plan:
    shape: ClusterShape
    rng: random.Random
    namespaces: list[Manifest] = field(default_factory=list)
    apps: dict[str, list[App]] = field(default_factory=dict)
    teams: dict[str, str] = field(default_factory=dict)
    pod_counts: dict[str, int] = field(default_factory=dict)


def generate(shape: ClusterShape) -> list[Manifest]:
    """The manifests of a cluster of this shape: Namespaces, Nodes, Pods, NetworkPolicies."""
    problems = shape.problems()
    if problems:
        raise ShapeError("; ".join(problems))
    plan = _Plan(shape, random.Random(shape.seed))
    _plan_namespaces(plan)
    pods = _pods(plan)
    nodes, pods = _schedule(plan, pods)
    policies = _policies(plan)
    return plan.namespaces + nodes + pods + policies


def _plan_namespaces(plan: _Plan) -> None:
    shape = plan.shape
    width = len(str(shape.app_namespaces))
    for name in SYSTEM_NAMESPACES:
        plan.namespaces.append(_namespace(name, {"team": "platform", "env": "prod"}))
        plan.teams[name] = "platform"
    per_ns = _spread(shape.pods - len(SYSTEM_NAMESPACES), shape.app_namespaces)
    for i in range(shape.app_namespaces):
        team = TEAMS[i % len(TEAMS)]
        name = f"{team}-{i:0{width}d}"
        env = ENVS[plan.rng.randrange(len(ENVS))]
        plan.namespaces.append(_namespace(name, {"team": team, "env": env}))
        plan.teams[name] = team
        plan.pod_counts[name] = per_ns[i]
        count = max(1, math.ceil(per_ns[i] / REPLICAS_PER_APP))
        plan.apps[name] = [
            App(name, f"{TIER_CYCLE[k % len(TIER_CYCLE)]}-{k}", TIER_CYCLE[k % len(TIER_CYCLE)], team)
            for k in range(count)
        ]
    plan.namespaces.sort(key=lambda m: m["metadata"]["name"])


def _spread(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal whole numbers (earlier parts take the rest)."""
    base, rest = divmod(total, parts)
    return [base + (1 if i < rest else 0) for i in range(parts)]


def _namespace(name: str, labels: dict[str, str]) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(sorted(labels.items()))}}


def _pods(plan: _Plan) -> list[Manifest]:
    """Pods without node or addresses yet; replicas round-robin over the namespace's apps."""
    pods = [
        _pod(
            "kube-system",
            "coredns-0",
            {"k8s-app": "kube-dns", "team": "platform"},
            (("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")),
        ),
        _pod("monitoring", "prometheus-0", {"app": "prometheus", "team": "platform"}, (("web", 9090, "TCP"),)),
    ]
    for namespace in sorted(plan.apps):
        count = plan.pod_counts[namespace]
        apps = plan.apps[namespace]
        for k in range(count):
            app = apps[k % len(apps)]
            replica = k // len(apps)
            canary = apps.index(app) % CANARY_EVERY == 0 and replica % 4 == 3
            labels = {"app": app.name, "tier": app.tier, "team": app.team, "version": "v2" if canary else "v1"}
            suffix = "".join(plan.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
            pods.append(_pod(namespace, f"{app.name}-{replica}-{suffix}", labels, TIER_PORTS[app.tier]))
    return pods


def _pod(namespace: str, name: str, labels: dict[str, str], ports: tuple[tuple[str, int, str], ...]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(sorted(labels.items()))},
        "spec": {
            "containers": [
                {"name": "main", "image": "registry.example/app:1", "ports": [
                    {"name": n, "containerPort": p, "protocol": proto} for n, p, proto in ports
                ]}
            ]
        },
    }


def _prefix_for(count: int, *, bits: int) -> int:
    """The longest prefix whose network holds ``count`` pods plus network and gateway."""
    needed = max(count + 2, 4)
    return min(bits - 2, bits - math.ceil(math.log2(needed)))


def _schedule(plan: _Plan, pods: list[Manifest]) -> tuple[list[Manifest], list[Manifest]]:
    """Place pods on nodes at random and give them consecutive addresses from their node's
    pod CIDR (the first host is the node's gateway)."""
    shape = plan.shape
    width = len(str(shape.nodes))
    names = [f"node-{i:0{width}d}" for i in range(shape.nodes)]
    placed: dict[str, list[Manifest]] = {n: [] for n in names}
    for pod in pods:
        placed[names[plan.rng.randrange(len(names))]].append(pod)
    longest = max(len(v) for v in placed.values())
    v4_prefix = _prefix_for(longest, bits=32)
    v4_cidrs = POD_NETWORK_V4.subnets(new_prefix=v4_prefix)
    v6_cidrs = POD_NETWORK_V6.subnets(new_prefix=64)
    nodes = []
    node_hosts = NODE_NETWORK_V4.hosts()
    node_hosts6 = NODE_NETWORK_V6.hosts()
    for name in names:
        v4 = next(v4_cidrs)
        v6 = next(v6_cidrs)
        addresses = [{"type": "InternalIP", "address": str(next(node_hosts))}]
        cidrs = [str(v4)]
        if shape.dual_stack:
            addresses.append({"type": "InternalIP", "address": str(next(node_hosts6))})
            cidrs.append(str(v6))
        nodes.append({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name},
            "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs},
            "status": {"addresses": addresses},
        })
        for offset, pod in enumerate(placed[name], start=2):
            ips = [str(v4.network_address + offset)]
            if shape.dual_stack:
                ips.append(str(v6.network_address + offset))
            pod["spec"]["nodeName"] = name
            pod["status"] = {"phase": "Running", "podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips]}
    pods.sort(key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    return nodes, pods


def _policies(plan: _Plan) -> list[Manifest]:
    shape = plan.shape
    out: list[Manifest] = []
    namespaces = sorted(plan.apps)
    for namespace, budget in zip(namespaces, _spread(shape.policies, len(namespaces))):
        out.extend(_take(_namespace_policies(plan, namespace), budget))
    out.sort(key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    return out


def _take(items: Iterator[Manifest], count: int) -> list[Manifest]:
    return [item for _, item in zip(range(count), items)]


def _policy(namespace: str, name: str, selector: dict[str, Any], spec: dict[str, Any]) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": selector, **spec},
    }


def _ports(*ports: tuple[Any, str] | tuple[int, str, int]) -> list[dict[str, Any]]:
    out = []
    for item in ports:
        entry: dict[str, Any] = {"protocol": item[1], "port": item[0]}
        if len(item) == 3:
            entry["endPort"] = item[2]
        out.append(entry)
    return out


def _namespace_policies(plan: _Plan, namespace: str) -> Iterator[Manifest]:
    """A namespace's policies, most important first, without end: after one allow policy per
    app come canary policies (``version: v2``) with port ranges, then per-app metrics allows."""
    team = plan.teams[namespace]
    apps = plan.apps[namespace]
    yield _policy(namespace, "default-deny", {}, {"policyTypes": ["Ingress", "Egress"]})
    yield _policy(namespace, "allow-dns", {}, {
        "policyTypes": ["Egress"],
        "egress": [{
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": _ports((53, "UDP"), (53, "TCP")),
        }],
    })
    yield _policy(namespace, "allow-monitoring", {}, {
        "ingress": [{
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                      "podSelector": {"matchLabels": {"app": "prometheus"}}}],
            "ports": _ports(("metrics", "TCP")),
        }],
    })
    by_tier: dict[str, list[App]] = {}
    for app in apps:
        by_tier.setdefault(app.tier, []).append(app)
    for app in apps:
        yield _policy(
            namespace, f"allow-{app.name}", {"matchLabels": {"app": app.name}}, _app_spec(plan, app, by_tier, team)
        )
    for app in apps[::CANARY_EVERY]:
        yield _policy(
            namespace,
            f"canary-{app.name}",
            {"matchLabels": {"app": app.name, "version": "v2"}},
            {
                "ingress": [
                    {
                        "from": [
                            {
                                "podSelector": {
                                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]
                                }
                            }
                        ],
                        "ports": _ports((8080, "TCP", 8089)),
                    }
                ],
            },
        )
    n = 0
    while True:
        for app in apps:
            n += 1
            yield _policy(
                namespace,
                f"extra-{n}-{app.name}",
                {"matchLabels": {"app": app.name}},
                {
                    "ingress": [
                        {
                            "from": [
                                {
                                    "namespaceSelector": {"matchLabels": {"team": team}},
                                    "podSelector": {
                                        "matchExpressions": [{"key": "version", "operator": "NotIn", "values": ["v0"]}]
                                    },
                                }
                            ],
                            "ports": _ports((9000 + n % 100, "TCP", 9000 + n % 100 + 9)),
                        }
                    ],
                },
            )


def _public_peers(shape: ClusterShape) -> list[dict[str, Any]]:
    peers = [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [str(POD_NETWORK_V4), str(NODE_NETWORK_V4)]}}]
    if shape.dual_stack:
        peers.append({"ipBlock": {"cidr": "::/0", "except": ["fd00::/8"]}})
    return peers


def _app_spec(plan: _Plan, app: App, by_tier: dict[str, list[App]], team: str) -> dict[str, Any]:
    """An app's allow policy, in the style of its tier."""
    shape = plan.shape

    def same_ns(tier: str) -> list[dict[str, Any]]:
        return [{"podSelector": {"matchLabels": {"app": a.name}}} for a in by_tier.get(tier, [])][:3]

    if app.tier == "web":
        return {
            "ingress": [{"from": _public_peers(shape), "ports": _ports(("http", "TCP"))}],
            "egress": [
                {
                    "to": [{"podSelector": {"matchLabels": {"tier": "api"}}}],
                    "ports": _ports(("http", "TCP"), ("grpc", "TCP")),
                }
            ],
        }
    if app.tier == "api":
        return {
            "ingress": [
                {"from": [*same_ns("web"), {"namespaceSelector": {"matchLabels": {"team": team}},
                                            "podSelector": {"matchLabels": {"tier": "api"}}}],
                 "ports": _ports(("http", "TCP"), (9090, "TCP"))},
            ],
            "egress": [
                {"to": [{"podSelector": {"matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["db", "cache"]}]}}],
                 "ports": _ports(("postgres", "TCP"), ("redis", "TCP"))},
                {"to": [{"namespaceSelector": {"matchLabels": {"team": team}},
                         "podSelector": {"matchLabels": {"tier": "api"}}}],
                 "ports": _ports((8080, "TCP"), (9090, "TCP"))},
            ],
        }
    if app.tier == "db":
        return {
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["api", "worker"]}]
                            }
                        }
                    ],
                    "ports": _ports(("postgres", "TCP")),
                }
            ],
        }
    if app.tier == "cache":
        return {
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": "api"}}}], "ports": _ports((6379, "TCP"))}],
        }
    return {
        "policyTypes": ["Egress"],
        "egress": [
            {"to": [{"ipBlock": {"cidr": PARTNER_V4, "except": [PARTNER_EXCEPT_V4]}}], "ports": _ports((443, "TCP"))},
            {"to": [{"ipBlock": {"cidr": str(NODE_NETWORK_V4)}}], "ports": _ports((30000, "TCP", 32767))},
            {"to": same_ns("db"), "ports": _ports(("postgres", "TCP"))},
        ],
    }
