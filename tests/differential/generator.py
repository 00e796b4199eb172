"""Small random clusters as raw manifests, from a seed: what both policyctl and NCA read.

Three namespaces (x, w, z) with a few shared label keys and values (one key sometimes
missing, so selectors on absent keys are exercised), two pods each with addresses in
10.0.0.0/24 and container ports reusing names across numbers and protocols, and one to three
policies built from every kind of peer, port and selector operator.

The manifests avoid what NCA refuses outright although the API accepts it (see
``docs/nca-differences.md``): ``policyTypes`` is always written in the order Ingress, Egress,
and rules are written only for the directions ``policyTypes`` names. Both rewrites leave the
API meaning unchanged.
"""

from __future__ import annotations

import random
from typing import Any

NAMESPACES = ("x", "w", "z")  # not "y": an unquoted y is YAML 1.1 true
VALUES = ("a", "b")
CONTAINER_PORTS = (
    {"containerPort": 80, "name": "http", "protocol": "TCP"},
    {"containerPort": 8080, "name": "http", "protocol": "TCP"},
    {"containerPort": 53, "name": "dns", "protocol": "UDP"},
    {"containerPort": 9090, "name": "metrics", "protocol": "TCP"},
)


def _selector(rng: random.Random, key: str) -> dict[str, Any]:
    shape = rng.choice(("empty", "labels", "expression", "expression"))
    if shape == "empty":
        return {}
    if shape == "labels":
        return {"matchLabels": {key: rng.choice(VALUES)}}
    operator = rng.choice(("In", "NotIn", "Exists", "DoesNotExist"))
    requirement: dict[str, Any] = {"key": key, "operator": operator}
    if operator in ("In", "NotIn"):
        requirement["values"] = sorted(rng.sample(VALUES, rng.randint(1, 2)))
    return {"matchExpressions": [requirement]}


def _peer(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(("pods", "namespaces", "both", "ipblock"))
    if kind == "ipblock":
        block: dict[str, Any] = {"cidr": rng.choice(("10.0.0.0/24", "10.0.0.0/28", "192.168.0.0/16"))}
        if block["cidr"] == "10.0.0.0/24" and rng.random() < 0.5:
            block["except"] = ["10.0.0.8/29"]
        return {"ipBlock": block}
    peer: dict[str, Any] = {}
    if kind in ("pods", "both"):
        peer["podSelector"] = _selector(rng, "app")
    if kind in ("namespaces", "both"):
        peer["namespaceSelector"] = _selector(rng, "team")
    return peer


def _port(rng: random.Random) -> dict[str, Any]:
    shape = rng.choice(("number", "name", "range", "protocol"))
    protocol = rng.choice(("TCP", "TCP", "UDP"))
    if shape == "number":
        return {"port": rng.choice((53, 80, 8080)), "protocol": protocol}
    if shape == "name":
        return {"port": rng.choice(("http", "dns", "metrics")), "protocol": protocol}
    if shape == "range":
        return {"port": 80, "endPort": rng.choice((90, 8080)), "protocol": protocol}
    return {"protocol": protocol}


def _rules(rng: random.Random, peers_key: str) -> list[dict[str, Any]]:
    rules = []
    for _ in range(rng.randint(0, 2)):
        rule: dict[str, Any] = {}
        if rng.random() < 0.8:
            rule[peers_key] = [_peer(rng) for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.7:
            rule["ports"] = [_port(rng) for _ in range(rng.randint(1, 2))]
        rules.append(rule)
    return rules


def _policy(rng: random.Random, index: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": _selector(rng, "app")}
    types = rng.choice(((), ("Ingress",), ("Egress",), ("Ingress", "Egress")))
    if types:
        spec["policyTypes"] = list(types)
    if not types or "Ingress" in types:
        spec["ingress"] = _rules(rng, "from")
    if "Egress" in types:
        spec["egress"] = _rules(rng, "to")
    elif not types and rng.random() < 0.5:
        spec["egress"] = _rules(rng, "to")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"p{index}", "namespace": rng.choice(NAMESPACES)},
        "spec": spec,
    }


def manifests(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(namespaces, pods, policies) of one random cluster."""
    rng = random.Random(seed)
    namespaces = []
    for name in NAMESPACES:
        labels = {"kubernetes.io/metadata.name": name}
        if rng.random() < 0.7:
            labels["team"] = rng.choice(VALUES)
        namespaces.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    pods = []
    for n, namespace in enumerate(NAMESPACES):
        for i in range(2):
            labels = {"app": rng.choice(VALUES)} if rng.random() < 0.85 else {}
            chosen = [dict(p) for p in CONTAINER_PORTS if rng.random() < 0.4]
            chosen = [p for k, p in enumerate(chosen) if all(q["name"] != p["name"] for q in chosen[:k])]
            address = f"10.0.0.{2 + 2 * n + i + (6 if rng.random() < 0.3 else 0)}"
            pods.append({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"pod{i}", "namespace": namespace, "labels": labels},
                "spec": {"containers": [{"name": "c", "image": "i", "ports": chosen}]},
                "status": {"podIP": address, "podIPs": [{"ip": address}]},
            })  # fmt: skip
    policies = [_policy(rng, i) for i in range(rng.randint(1, 3))]
    return namespaces, pods, policies
