"""Resolving what a user types for a connection end."""

from __future__ import annotations

import ipaddress

import pytest

from policyctl.policy.endpoints import EndpointError, resolve_endpoint, workload_label
from tests.builders import cluster, node, pod

CLUSTER = cluster(
    pod("shop/frontend", {"app": "frontend"}, workload="deploy/frontend"),
    pod("shop/postgres", {"app": "postgres"}, workload="sts/postgres"),
    pod("shop/web-7d9f", {"app": "web"}, ips=["10.0.1.5"], node="n1"),
    pod("monitoring/exporter", {"app": "exporter"}, ips=["192.168.0.1"], host_network=True, workload="ds/exporter"),
    pod("other/frontend", {"app": "frontend"}, workload="deploy/frontend"),
    node("n1", "192.168.0.1"),
    node("n2", "192.168.0.2"),
)


@pytest.mark.parametrize(
    ("text", "namespace", "kind", "expected"),
    [
        pytest.param("shop/web-7d9f", "default", "pod", "shop/web-7d9f", id="namespace/name"),
        pytest.param("web-7d9f", "shop", "pod", "shop/web-7d9f", id="name-with-namespace-flag"),
        pytest.param("deploy/frontend", "shop", "pod", "shop/frontend", id="kind/name"),
        pytest.param("deployment/frontend", "other", "pod", "other/frontend", id="long-kind-name"),
        pytest.param("shop/sts/postgres", "default", "pod", "shop/postgres", id="namespace/kind/name"),
        pytest.param("pod/web-7d9f", "shop", "pod", "shop/web-7d9f", id="pod/name"),
        pytest.param("node/n2", "default", "node", "n2", id="node"),
        pytest.param("10.0.1.5", "default", "pod", "shop/web-7d9f", id="ip-of-a-pod"),
        pytest.param("192.168.0.2", "default", "node", "n2", id="ip-of-a-node"),
        pytest.param("192.168.0.1", "default", "pod", "monitoring/exporter", id="ip-of-a-hostnetwork-pod"),
        pytest.param("203.0.113.7", "default", "address", "203.0.113.7", id="external-ip"),
        pytest.param("2001:db8::1", "default", "address", "2001:db8::1", id="external-ipv6"),
        pytest.param("203.0.113.7/32", "default", "address", "203.0.113.7", id="full-length-prefix-is-an-address"),
        pytest.param("203.0.113.0/24", "default", "network", "203.0.113.0/24", id="cidr"),
    ],
)
def test_resolves(text: str, namespace: str, kind: str, expected: str) -> None:
    resolved = resolve_endpoint(text, CLUSTER, namespace=namespace)
    assert resolved.kind == kind
    found = resolved.network or resolved.endpoint
    name = getattr(found, "key", None) or getattr(found, "name", None) or str(found)
    assert name == expected


@pytest.mark.parametrize(
    ("text", "namespace", "message", "suggestions"),
    [
        pytest.param("shop/fronted", "default", "no pod or workload 'shop/fronted'", ("shop/frontend",), id="typo"),
        pytest.param("node/n3", "default", "no node 'n3'", ("n1", "n2"), id="unknown-node"),
        pytest.param("shop/svc/frontend", "default", "'svc' is not a workload kind", (), id="unknown-kind"),
        pytest.param("sts/frontend", "shop", "no pod or workload 'sts/frontend'", None, id="wrong-kind"),
    ],
)
def test_unknown_names_raise_with_close_matches(text, namespace, message, suggestions) -> None:
    with pytest.raises(EndpointError) as caught:
        resolve_endpoint(text, CLUSTER, namespace=namespace)
    assert message in str(caught.value)
    if suggestions is not None:
        assert set(suggestions) <= set(caught.value.suggestions)


def test_workload_label_names_the_kind() -> None:
    assert workload_label(CLUSTER.pod_by_key["shop/postgres"]) == "shop/sts/postgres"
    assert workload_label(CLUSTER.pod_by_key["shop/web-7d9f"]) == "shop/web-7d9f"


def test_a_cidr_keeps_its_network() -> None:
    assert resolve_endpoint("10.1.2.3/16", CLUSTER).network == ipaddress.ip_network("10.1.0.0/16")
