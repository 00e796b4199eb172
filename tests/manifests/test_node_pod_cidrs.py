"""A Node's ``spec.podCIDRs`` (and the older ``spec.podCIDR``), read as the API server validates them."""

from __future__ import annotations

import ipaddress
import textwrap

import pytest

from policyctl.manifests.loader import load_documents
from policyctl.manifests.yamlsource import read_documents


def load_node(spec: str):
    text = "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\nspec:\n" + textwrap.indent(spec, "  ")
    documents, reading = read_documents(text, source="n.yaml")
    result = load_documents(documents, default_namespace="default")
    diagnostics = sorted(reading + list(result.diagnostics))
    return result.cluster.nodes, [(d.line, d.code, d.field) for d in diagnostics]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("podCIDRs: [10.244.1.0/24]\n", ("10.244.1.0/24",)),
        ("podCIDRs: [10.244.1.0/24, 'fd00:10:244:1::/64']\n", ("10.244.1.0/24", "fd00:10:244:1::/64")),
        ("podCIDR: 10.244.1.0/24\n", ("10.244.1.0/24",)),
        ("podCIDR: 10.244.1.0/24\npodCIDRs: [10.244.1.0/24, 'fd00::/64']\n", ("10.244.1.0/24", "fd00::/64")),
        ("podCIDRs: [10.244.1.7/24]\n", ("10.244.1.0/24",)),
        ("podCIDR: ''\n", ()),
        ("unschedulable: true\n", ()),
    ],
    ids=["one", "dual-stack", "single-field", "both-fields-agree", "host-bits-masked", "empty-single", "none"],
)
def test_pod_cidrs_are_read_in_order_with_host_bits_masked(spec: str, expected: tuple[str, ...]) -> None:
    nodes, diagnostics = load_node(spec)
    assert diagnostics == []
    (node,) = nodes
    assert node.pod_cidrs == tuple(ipaddress.ip_network(c) for c in expected)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("podCIDRs: [10.244.1.0/33]\n", [(5, "invalid-cidr", "spec.podCIDRs[0]")]),
        ("podCIDRs:\n- 10.244.1.0/24\n- nonsense\n", [(7, "invalid-cidr", "spec.podCIDRs[1]")]),
        ("podCIDRs: [10.244.1.0/24, 10.244.2.0/24]\n", [(5, "pod-cidr-family", "spec.podCIDRs[1]")]),
        ("podCIDR: 10.0.0.0/8\npodCIDRs: [10.244.1.0/24]\n", [(5, "pod-cidr-mismatch", "spec.podCIDR")]),
        ("podCIDR: 10.0.0/8\n", [(5, "invalid-cidr", "spec.podCIDR")]),
        ("podCIDRs: 10.244.1.0/24\n", [(5, "invalid-type", "spec.podCIDRs")]),
    ],
    ids=["prefix-too-long", "not-a-cidr", "two-of-one-family", "single-field-disagrees", "bad-single", "not-a-list"],
)
def test_bad_pod_cidrs_refuse_the_node_at_their_line_and_field(spec: str, expected: list[tuple[int, str, str]]) -> None:
    nodes, diagnostics = load_node(spec)
    assert nodes == ()
    assert diagnostics == expected
