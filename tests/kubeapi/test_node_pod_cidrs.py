"""A Node read from the API keeps its ``spec.podCIDRs``, validated as in manifests."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from policyctl.kubeapi.projections import project
from policyctl.kubeapi.resources import Resource

from .objects import node


def with_spec(spec: dict[str, Any]) -> dict[str, Any]:
    raw = node("node-a", "192.168.0.10")
    raw["spec"] = spec
    return raw


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:1::/64"]}, ("10.244.1.0/24", "fd00:1::/64")),
        ({"podCIDR": "10.244.1.0/24"}, ("10.244.1.0/24",)),
        ({"providerID": "kind://node-a"}, ()),
    ],
    ids=["dual-stack", "single-field", "none"],
)
def test_a_live_node_keeps_its_pod_cidrs(spec: dict[str, Any], expected: tuple[str, ...]) -> None:
    found, diagnostics = project(Resource.NODES, with_spec(spec))
    assert diagnostics == []
    assert found is not None
    assert found.value.pod_cidrs == tuple(ipaddress.ip_network(c) for c in expected)  # type: ignore[union-attr]


def test_a_live_node_with_a_bad_pod_cidr_is_refused_with_the_field_named() -> None:
    found, diagnostics = project(Resource.NODES, with_spec({"podCIDRs": ["10.244.1.0/24", "10.1.0.0/16"]}))
    assert found is None
    assert [(d.code, d.field) for d in diagnostics] == [("pod-cidr-family", "spec.podCIDRs[1]")]
