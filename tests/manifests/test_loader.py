"""Loading manifests into a Cluster: every input form, every object kind, provenance,
implied namespaces, duplicates and bad input."""

from __future__ import annotations

import io
import ipaddress
import os
import textwrap

import pytest

from policyctl.policy.diagnostics import Severity
from policyctl.manifests.loader import load, load_documents
from policyctl.policy.model import (
    NAMESPACE_NAME_LABEL,
    ContainerPort,
    Direction,
    Labels,
    Namespace,
    Protocol,
    Provenance,
)
from policyctl.manifests.yamlsource import read_documents

TREE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "manifests", "tree")


def load_text(text: str, *, source: str = "m.yaml", default_namespace: str = "default"):
    documents, reading = read_documents(textwrap.dedent(text), source=source)
    result = load_documents(documents, default_namespace=default_namespace)
    return result, sorted(reading + list(result.diagnostics))


def codes(diagnostics) -> list[tuple[int, str, str]]:
    return [(d.line, d.code, d.field) for d in diagnostics]


def test_directory_is_read_recursively_yaml_yml_and_json_only():
    result = load([TREE])
    cluster = result.cluster
    assert result.ok, result.diagnostics
    assert {os.path.relpath(p.provenance.file, TREE) for p in cluster.pods} == {"apps/pods.yml"}
    assert [p.key for p in cluster.pods] == ["default/batch", "shop/cart"]
    assert [str(p.ref) for p in cluster.policies] == ["shop/cart-ingress"]
    assert os.path.relpath(cluster.policies[0].provenance.file, TREE) == "apps/net/policy.json"
    assert "not-read" not in {p.name for p in cluster.pods}
    assert dict(result.skipped) == {"ConfigMap": 1, "Service": 2}


def test_namespace_gets_the_name_label_set_by_the_api_server():
    namespaces = {n.name: n for n in load([TREE]).cluster.namespaces}
    assert namespaces["shop"].labels == {"team": "web", NAMESPACE_NAME_LABEL: "shop"}
    assert namespaces["shop"].provenance.line == 1


def test_namespace_used_but_not_defined_is_implied_without_provenance():
    namespaces = load([TREE]).cluster.namespaces
    assert [n.name for n in namespaces] == ["default", "shop"]
    assert namespaces[0] == Namespace("default", Labels({NAMESPACE_NAME_LABEL: "default"}))
    assert namespaces[0].provenance is None


def test_pod_fields_ports_and_addresses():
    pods = load([TREE]).cluster.pod_by_key
    cart = pods["shop/cart"]
    assert cart.labels == {"app": "cart"} and cart.node == "node-1"
    assert cart.ips == (ipaddress.ip_address("10.244.1.5"), ipaddress.ip_address("fd00::5"))
    # Sidecar (restartPolicy: Always) ports count; plain init containers do not run alongside.
    assert cart.ports == (
        ContainerPort(5353, Protocol.UDP, "dns"),
        ContainerPort(8080, Protocol.TCP, "http"),
        ContainerPort(9090, Protocol.TCP, "metrics"),
    )
    assert cart.provenance == Provenance(cart.provenance.file, 2, 0)
    batch = pods["default/batch"]
    assert batch.host_network and batch.ips == (ipaddress.ip_address("192.168.0.10"),)
    assert batch.provenance.line == 26 and batch.provenance.document == 1


def test_json_policy_is_defaulted_with_its_lines():
    (policy,) = load([TREE]).cluster.policies
    assert policy.provenance.line == 1
    assert policy.policy_types == frozenset({Direction.INGRESS})
    assert policy.ingress[0].ports[0].port == "http"
    assert policy.ingress[0].provenance.line == 8
    assert "spec.ingress[0].ports[0].protocol defaulted to TCP" in policy.defaults_applied


def test_stdin_is_read_as_dash_with_source_stdin():
    stdin = io.StringIO("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\n")
    result = load(["-"], stdin=stdin)
    (pod,) = result.cluster.pods
    assert pod.provenance == Provenance("<stdin>", 1, 0)


def test_files_and_stdin_combine(tmp_path):
    path = tmp_path / "ns.yaml"
    path.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
    stdin = io.StringIO("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\n")
    cluster = load([str(path), "-"], stdin=stdin).cluster
    assert cluster.namespaces[0].provenance.file == str(path)
    assert [p.key for p in cluster.pods] == ["x/a"]


def test_missing_file_is_a_diagnostic(tmp_path):
    result = load([str(tmp_path / "absent.yaml")])
    assert not result.ok
    assert [d.code for d in result.diagnostics] == ["unreadable-file"]


def test_multi_document_file_keeps_document_index_and_line():
    result, diagnostics = load_text(
        """\
        apiVersion: v1
        kind: Namespace
        metadata: {name: x}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: a, namespace: x}
        """
    )
    assert diagnostics == []
    assert result.cluster.pods[0].provenance == Provenance("m.yaml", 5, 1)
    assert result.cluster.namespaces[0].provenance == Provenance("m.yaml", 1, 0)


def test_list_items_get_their_own_lines_and_typed_lists_lend_their_kind():
    result, diagnostics = load_text(
        """\
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Pod
          metadata: {name: a, namespace: x}
        - apiVersion: v1
          kind: Service
          metadata: {name: s}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicyList
        items:
        - metadata: {name: deny, namespace: x}
          spec: {podSelector: {}}
        - metadata: {name: bad, namespace: x}
          spec: {podSelector: {matchLabels: {app: yes}}}
        """
    )
    assert result.cluster.pods[0].provenance.line == 4
    assert [(str(p.ref), p.provenance.line) for p in result.cluster.policies] == [("x/deny", 14)]
    assert codes(diagnostics) == [
        (7, "skipped-kind", "items[1]"),
        (17, "needs-quotes", "spec.podSelector.matchLabels.app"),
    ]
    assert diagnostics[1].object == "NetworkPolicy x/bad"
    assert dict(result.skipped) == {"Service": 1}


@pytest.mark.parametrize(
    ("api_version", "kind", "severity", "skipped_as"),
    [
        ("v1", "Service", Severity.INFO, "Service"),
        ("cilium.io/v2", "CiliumNetworkPolicy", Severity.WARNING, "CiliumNetworkPolicy"),
        ("projectcalico.org/v3", "GlobalNetworkPolicy", Severity.WARNING, "GlobalNetworkPolicy"),
        ("projectcalico.org/v3", "NetworkPolicy", Severity.WARNING, "NetworkPolicy (projectcalico.org/v3)"),
        ("crd.antrea.io/v1beta1", "ClusterNetworkPolicy", Severity.WARNING,
         "ClusterNetworkPolicy (crd.antrea.io/v1beta1)"),
    ],
)
def test_kinds_not_read_are_reported_where_they_are_policy_like_ones_as_warnings(
    api_version, kind, severity, skipped_as
):
    result, diagnostics = load_text(
        f"""\
        apiVersion: v1
        kind: Namespace
        metadata: {{name: x}}
        ---
        apiVersion: {api_version}
        kind: {kind}
        metadata: {{name: a, namespace: x}}
        ---
        apiVersion: {api_version}
        kind: {kind}
        metadata: {{name: b, namespace: x}}
        """
    )
    assert dict(result.skipped) == {skipped_as: 2}
    assert [(d.line, d.severity) for d in diagnostics] == [(5, severity)]
    assert skipped_as in diagnostics[0].message


WORKLOADS = [
    ("Deployment", "apps/v1", "spec:\n  template:", "deploy/web"),
    ("StatefulSet", "apps/v1", "spec:\n  template:", "sts/web"),
    ("DaemonSet", "apps/v1", "spec:\n  template:", "ds/web"),
    ("ReplicaSet", "apps/v1", "spec:\n  template:", "rs/web"),
    ("Job", "batch/v1", "spec:\n  template:", "job/web"),
    ("CronJob", "batch/v1", "spec:\n  jobTemplate:\n    spec:\n      template:", "cronjob/web"),
]


@pytest.mark.parametrize(
    ("kind", "api_version", "template_path", "workload"),
    WORKLOADS,
    ids=[w[0] for w in WORKLOADS],
)
def test_workload_template_stands_for_one_pod(kind, api_version, template_path, workload):
    indent = " " * (2 * template_path.count("\n") + 2)
    template = textwrap.indent(
        "metadata:\n  labels: {app: web}\nspec:\n  containers:\n"
        "  - name: c\n    ports: [{containerPort: 8080, name: http}]",
        indent,
    )
    text = (
        f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: web, namespace: shop}}\n"
        f"{template_path}\n{template}\n"
    )
    result, diagnostics = load_text(text)
    assert diagnostics == []
    (pod,) = result.cluster.pods
    assert (pod.key, pod.workload, pod.ips, pod.node) == ("shop/web", workload, (), None)
    assert pod.labels == {"app": "web"}
    assert pod.ports == (ContainerPort(8080, Protocol.TCP, "http"),)
    assert pod.provenance.line == 1
    assert [n.name for n in result.cluster.namespaces] == ["shop"]


def test_objects_without_namespace_go_to_the_default_namespace():
    result, _ = load_text(
        """\
        apiVersion: v1
        kind: Pod
        metadata: {name: a}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: p}
        spec: {podSelector: {}}
        """,
        default_namespace="team-a",
    )
    assert [p.key for p in result.cluster.pods] == ["team-a/a"]
    assert [str(p.ref) for p in result.cluster.policies] == ["team-a/p"]
    assert [n.name for n in result.cluster.namespaces] == ["team-a"]


def test_duplicate_object_warns_and_the_last_one_wins():
    result, diagnostics = load_text(
        """\
        apiVersion: v1
        kind: Pod
        metadata: {name: a, namespace: x, labels: {v: one}}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: a, namespace: x, labels: {v: two}}
        """
    )
    (pod,) = result.cluster.pods
    assert pod.labels == {"v": "two"} and pod.provenance.line == 5
    assert [(d.line, d.severity, d.code) for d in diagnostics] == [
        (5, Severity.WARNING, "duplicate-object")
    ]
    assert "m.yaml:1" in diagnostics[0].message
    assert result.ok


def test_duplicate_key_refuses_the_object_and_points_at_the_second_key():
    result, diagnostics = load_text(
        """\
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata:
          name: p
          namespace: x
          name: q
        spec: {podSelector: {}}
        """
    )
    assert result.cluster.policies == ()
    assert codes(diagnostics) == [(6, "duplicate-key", "metadata.name")]


def test_malformed_yaml_reports_its_line_and_keeps_the_documents_before(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\nkind: Pod\nmetadata: {name: [\n"
    )
    result = load([str(path)])
    assert [n.name for n in result.cluster.namespaces] == ["x"]
    (diagnostic,) = result.diagnostics
    assert (diagnostic.file, diagnostic.line, diagnostic.code) == (
        str(path),
        6,
        "yaml-syntax",
    )  # the last line, never past it
    assert not result.ok


def test_yaml_11_boolean_label_value_is_an_error_saying_to_quote_it():
    result, diagnostics = load_text(
        """\
        apiVersion: v1
        kind: Namespace
        metadata:
          name: x
          labels:
            istio-injection: on
        """
    )
    assert result.cluster.namespaces == ()
    assert codes(diagnostics) == [(6, "needs-quotes", "metadata.labels.istio-injection")]
    assert 'quote it: "on"' in diagnostics[0].message
    assert diagnostics[0].object == "Namespace x"


POD_ERRORS = [
    ("invalid-ip", "status: {podIP: 10.0.0.300}", [(4, "invalid-ip", "status.podIP")]),
    ("two-ipv4", "status: {podIPs: [{ip: 10.0.0.1}, {ip: 10.0.0.2}]}",
     [(4, "duplicate-ip-family", "status.podIPs[1].ip")]),
    ("port-name-too-long", "spec: {containers: [{name: c, ports: [{containerPort: 80, name: a-very-long-port-name}]}]}",
     [(4, "invalid-port-name", "spec.containers[0].ports[0].name")]),
    ("port-number-zero", "spec: {containers: [{name: c, ports: [{containerPort: 0}]}]}",
     [(4, "invalid-port", "spec.containers[0].ports[0].containerPort")]),
    ("label-value-number", "metadata: {name: a, labels: {version: 1.0}}",
     [(4, "needs-quotes", "metadata.labels.version")]),
    ("host-network-string", "spec: {hostNetwork: 'true'}", [(4, "invalid-type", "spec.hostNetwork")]),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "expected"), [c[1:] for c in POD_ERRORS], ids=[c[0] for c in POD_ERRORS])
def test_invalid_pod_is_reported_and_left_out(extra, expected):
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n" + extra + "\n"
    if extra.startswith("metadata"):
        text = "apiVersion: v1\nkind: Pod\n\n" + extra + "\n"
    result, diagnostics = load_text(text)
    assert result.cluster.pods == ()
    assert codes(diagnostics) == expected


def test_node_keeps_internal_then_external_ip_addresses():
    result, diagnostics = load_text(
        """\
        apiVersion: v1
        kind: Node
        metadata: {name: node-1}
        status:
          addresses:
          - {type: Hostname, address: node-1}
          - {type: ExternalIP, address: 203.0.113.1}
          - {type: InternalIP, address: 10.0.0.1}
          - {type: InternalIP, address: not-an-ip}
        """
    )
    assert diagnostics == []
    (node,) = result.cluster.nodes
    assert node.addresses == (ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("203.0.113.1"))
    assert result.cluster.namespaces == ()


def test_document_that_is_not_an_object_or_has_no_kind_is_an_error():
    _, diagnostics = load_text("- a\n- b\n---\nmetadata: {name: x}\n")
    assert codes(diagnostics) == [(1, "not-an-object", "(document)"), (4, "missing-kind", "(document)")]


def test_output_is_sorted_whatever_the_input_order():
    result, _ = load_text(
        """\
        {apiVersion: v1, kind: Pod, metadata: {name: b, namespace: z}}
        ---
        {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: z}}
        ---
        {apiVersion: v1, kind: Pod, metadata: {name: c, namespace: a}}
        ---
        {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: b, namespace: a}}
        ---
        {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: a, namespace: b}}
        """
    )
    assert [p.key for p in result.cluster.pods] == ["a/c", "z/a", "z/b"]
    assert [str(p.ref) for p in result.cluster.policies] == ["a/b", "b/a"]
    assert [n.name for n in result.cluster.namespaces] == ["a", "b", "z"]
