"""Raw API objects -> the slim model values a reader keeps."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from policyctl.kubeapi.projections import project
from policyctl.kubeapi.resources import Resource
from policyctl.policy.diagnostics import Severity
from policyctl.manifests.loader import load_documents
from policyctl.policy.model import (
    ContainerPort,
    Direction,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
    Protocol,
)
from policyctl.manifests.yamlsource import read_documents
from tests.kubeapi.objects import namespace, node, pod, policy


def _listed(obj: dict[str, Any]) -> dict[str, Any]:
    """As an item of a list response: no apiVersion and kind."""
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}


@pytest.mark.parametrize(
    ("raw", "expected_ips", "expected_phase"),
    [
        (pod("shop/web", {"app": "web"}, ip="10.0.0.5"), ("10.0.0.5",), "Running"),
        (pod("shop/web", {"app": "web"}, phase="Pending"), (), "Pending"),
        (pod("shop/web", {"app": "web"}, ip="10.0.0.5", phase="Succeeded"), (), "Succeeded"),
        (pod("shop/web", {"app": "web"}, ip="10.0.0.5", phase="Failed"), (), "Failed"),
    ],
    ids=["running", "pending-without-address-kept", "succeeded-address-released", "failed-address-released"],
)
def test_a_pod_keeps_its_labels_whatever_its_phase(raw: dict[str, Any], expected_ips: tuple[str, ...],
                                                   expected_phase: str) -> None:  # fmt: skip
    raw["metadata"]["uid"] = "u-1"
    projection, diagnostics = project(Resource.PODS, _listed(raw))
    assert diagnostics == []
    assert projection is not None
    assert (projection.key, projection.uid, projection.phase) == ("shop/web", "u-1", expected_phase)
    assert projection.value == Pod("shop", "web", Labels({"app": "web"}), node="node-a",
                                   ips=tuple(ipaddress.ip_address(a) for a in expected_ips))  # fmt: skip


def test_a_pod_keeps_named_ports_of_containers_and_sidecars_and_its_host_network() -> None:
    raw = pod("kube-system/agent", ports=[{"name": "metrics", "containerPort": 9100}])
    raw["spec"]["hostNetwork"] = True
    raw["spec"]["initContainers"] = [
        {
            "name": "proxy",
            "restartPolicy": "Always",
            "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"}],
        },
        {"name": "setup", "ports": [{"name": "gone", "containerPort": 1}]},
    ]
    projection, _ = project(Resource.PODS, raw)
    assert projection is not None and isinstance(projection.value, Pod)
    assert projection.value.host_network
    assert projection.value.ports == (
        ContainerPort(53, Protocol.UDP, "dns"),
        ContainerPort(9100, Protocol.TCP, "metrics"),
    )


def test_namespaces_and_nodes() -> None:
    ns, _ = project(Resource.NAMESPACES, namespace("shop", team="shop"))
    assert ns is not None and ns.key == "shop"
    assert ns.value == Namespace("shop", Labels({"team": "shop", "kubernetes.io/metadata.name": "shop"}))
    found, _ = project(Resource.NODES, node("node-a", "192.168.0.10"))
    assert found is not None and found.value == Node("node-a", (ipaddress.ip_address("192.168.0.10"),))


def test_a_live_policy_parses_as_the_same_manifest_does() -> None:
    spec = {"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": "pg"}]}]}  # fmt: skip
    raw = policy("shop/db", spec)
    raw["metadata"].update(uid="u-9", resourceVersion="77", creationTimestamp="2026-01-01T00:00:00Z",
                           managedFields=[{"manager": "kubectl"}])  # fmt: skip
    raw["status"] = {}
    projection, diagnostics = project(Resource.NETWORK_POLICIES, _listed(raw))
    manifest = ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: shop}\n"
                "spec:\n  podSelector: {matchLabels: {app: db}}\n  ingress:\n  - from: [{podSelector: {}}]\n"
                "    ports: [{port: pg}]\n")  # fmt: skip
    documents, _ = read_documents(manifest, source="db.yaml")
    (expected,) = load_documents(documents).cluster.policies
    assert [d for d in diagnostics if d.severity is Severity.ERROR] == []
    assert projection is not None and projection.value == expected
    assert projection.value.policy_types == frozenset({Direction.INGRESS})
    assert str(projection.value.provenance) == "cluster:networkpolicies/shop/db:1"


@pytest.mark.parametrize(
    ("spec", "selects", "types"),
    [
        pytest.param({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"ports": [{"port": 70000}]}]},
                     {"app": "db"}, {Direction.INGRESS}, id="readable-selector-ingress-by-default"),
        pytest.param({"podSelector": {"matchLabels": {"app": "db"}}, "egress": [{"ports": [{"port": 70000}]}]},
                     {"app": "db"}, {Direction.INGRESS, Direction.EGRESS}, id="an-egress-section-isolates-egress-too"),
        pytest.param({"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Egress"],
                      "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]},
                     {"app": "db"}, {Direction.EGRESS}, id="readable-policy-types-kept"),
        pytest.param({"podSelector": {"matchLabels": {"app": "-bad-"}}, "policyTypes": ["Sideways"]},
                     {}, {Direction.INGRESS}, id="unreadable-selector-isolates-the-whole-namespace"),
    ],
)
def test_a_policy_the_parser_refuses_fails_closed(spec: dict[str, Any], selects: dict[str, str],
                                                  types: set[Direction]) -> None:  # fmt: skip
    projection, diagnostics = project(Resource.NETWORK_POLICIES, policy("shop/bad", spec))
    assert projection is not None and isinstance(projection.value, NetworkPolicy)
    refused = projection.value
    assert (refused.ref.namespace, refused.ref.name) == ("shop", "bad")
    assert refused.pod_selector == LabelSelector.from_labels(selects)
    assert refused.policy_types == frozenset(types)
    assert refused.ingress == () and refused.egress == ()
    assert any(d.severity is Severity.ERROR for d in diagnostics)
    assert [d.code for d in diagnostics if d.severity is Severity.WARNING][-1] == "fails-closed"


def test_a_refused_policy_denies_what_it_would_isolate_and_nothing_else() -> None:
    from policyctl.policy.semantics import evaluate
    from policyctl.policy.verdicts import Connection
    from tests import builders as b

    projection, _ = project(Resource.NETWORK_POLICIES, policy("shop/bad", {
        "podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"ports": [{"port": 70000}]}]}))
    assert projection is not None
    cluster = b.cluster(
        b.pod("shop/db", {"app": "db"}, ips=["10.0.0.2"]),
        b.pod("shop/web", {"app": "web"}, ips=["10.0.0.3"]),
        projection.value,
    )  # type: ignore[arg-type]
    db, web = cluster.pod_by_key["shop/db"], cluster.pod_by_key["shop/web"]
    assert not evaluate(cluster, Connection(web, db, Protocol.TCP, 5432)).allowed
    assert evaluate(cluster, Connection(db, web, Protocol.TCP, 80)).allowed
