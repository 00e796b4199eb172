"""The cluster generator: reproducible, exactly the size asked for, valid to the loader, and
using the policy features the benchmarks are meant to exercise."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.bench.gen import SCALES, ClusterShape, ShapeError, generate
from policyctl.policy.diagnostics import Severity
from policyctl.manifests.loader import load_documents
from policyctl.manifests.yamlsource import read_documents


def _load(manifests: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests})
    documents, diagnostics = read_documents(text, source="gen.json")
    assert diagnostics == []
    return load_documents(documents)


SHAPES = {
    "tiny preset": SCALES["tiny"],
    "one app namespace": ClusterShape(pods=7, namespaces=3, nodes=1, policies=4),
    "more policies than apps": ClusterShape(pods=40, namespaces=4, nodes=3, policies=60),
    "no policies": ClusterShape(pods=30, namespaces=5, nodes=2, policies=0),
    "dual-stack": ClusterShape(pods=50, namespaces=4, nodes=3, policies=20, dual_stack=True),
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_generated_cluster_loads_without_errors_at_exactly_the_requested_size(shape: ClusterShape) -> None:
    result = _load(generate(shape))
    assert [d for d in result.diagnostics if d.severity is Severity.ERROR] == []
    cluster = result.cluster
    assert (len(cluster.pods), len(cluster.namespaces), len(cluster.nodes), len(cluster.policies)) == (
        shape.pods, shape.namespaces, shape.nodes, shape.policies)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_every_pod_has_a_unique_address_per_family_inside_its_nodes_pod_cidr(shape: ClusterShape) -> None:
    manifests = generate(shape)
    cidrs = {m["metadata"]["name"]: [ipaddress.ip_network(c) for c in m["spec"]["podCIDRs"]]
             for m in manifests if m["kind"] == "Node"}
    seen: set[str] = set()
    for pod in (m for m in manifests if m["kind"] == "Pod"):
        ips = [entry["ip"] for entry in pod["status"]["podIPs"]]
        assert len(ips) == (2 if shape.dual_stack else 1)
        for ip in ips:
            assert any(ipaddress.ip_address(ip) in net for net in cidrs[pod["spec"]["nodeName"]]), (pod["metadata"], ip)
        assert seen.isdisjoint(ips)
        seen.update(ips)


def test_same_shape_gives_identical_manifests_and_another_seed_does_not() -> None:
    shape = SCALES["tiny"]
    assert generate(shape) == generate(shape)
    assert generate(shape) != generate(dataclasses.replace(shape, seed=shape.seed + 1))


def _walk(value: Any) -> list[tuple[str, Any]]:
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((key, item))
            found.extend(_walk(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_walk(item))
    return found


FEATURES = {
    "ipBlock with except": lambda k, v: k == "ipBlock" and bool(v.get("except")),
    "port range": lambda k, v: k == "endPort",
    "named port": lambda k, v: k == "port" and isinstance(v, str),
    "namespace selector": lambda k, v: k == "namespaceSelector",
    "matchExpressions": lambda k, v: k == "matchExpressions",
    "default deny of both directions": lambda k, v: k == "spec" and v.get("podSelector") == {}
    and v.get("policyTypes") == ["Ingress", "Egress"] and "ingress" not in v and "egress" not in v,
}


@pytest.mark.parametrize("feature", FEATURES.values(), ids=FEATURES.keys())
def test_small_preset_uses_each_policy_feature(feature: Any) -> None:
    policies = [m for m in generate(SCALES["small"]) if m["kind"] == "NetworkPolicy"]
    assert any(feature(k, v) for p in policies for k, v in _walk(p))


def test_pods_carry_the_four_label_keys_with_few_identities_per_app() -> None:
    pods = [
        m
        for m in generate(SCALES["small"])
        if m["kind"] == "Pod" and m["metadata"]["namespace"] not in ("kube-system", "monitoring")
    ]
    assert all({"app", "tier", "team", "version"} <= set(p["metadata"]["labels"]) for p in pods)
    identities = {(p["metadata"]["namespace"], tuple(sorted(p["metadata"]["labels"].items()))) for p in pods}
    apps = {(p["metadata"]["namespace"], p["metadata"]["labels"]["app"]) for p in pods}
    assert len(apps) <= len(identities) <= 2 * len(apps)
    assert len(identities) < len(pods) / 4


BAD = {
    "too few namespaces": (ClusterShape(pods=10, namespaces=2), "namespaces"),
    "no nodes": (ClusterShape(pods=10, namespaces=3, nodes=0), "nodes"),
    "fewer pods than namespaces": (ClusterShape(pods=5, namespaces=8), "pods"),
    "negative policies": (ClusterShape(policies=-1), "policies"),
}


@pytest.mark.parametrize(("shape", "field"), BAD.values(), ids=BAD.keys())
def test_impossible_shape_is_refused_naming_the_field(shape: ClusterShape, field: str) -> None:
    with pytest.raises(ShapeError, match=f"^{field}:|; {field}:"):
        generate(shape)


@settings(max_examples=25, deadline=None)
@given(
    pods=st.integers(3, 120),
    namespaces=st.integers(3, 8),
    nodes=st.integers(1, 6),
    policies=st.integers(0, 40),
    dual_stack=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_any_valid_shape_loads_at_its_size(
    pods: int, namespaces: int, nodes: int, policies: int, dual_stack: bool, seed: int
) -> None:
    shape = ClusterShape(pods=max(pods, namespaces), namespaces=namespaces, nodes=nodes, policies=policies,
                         dual_stack=dual_stack, seed=seed)
    cluster = _load(generate(shape)).cluster
    assert (len(cluster.pods), len(cluster.nodes), len(cluster.namespaces)) == (shape.pods, nodes, namespaces)
    assert len(cluster.policies) == policies
