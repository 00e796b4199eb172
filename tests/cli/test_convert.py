"""``policyctl convert``: AdminNetworkPolicy/BaselineAdminNetworkPolicy to ClusterNetworkPolicy, proved."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from policyctl.policy.clustermodel import Action, SourceKind, Tier
from policyctl.manifests.loader import load
from policyctl.policy.model import Protocol

from tests.cli.conftest import write

CLUSTER = """\
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {ns: x}}
---
apiVersion: v1
kind: Namespace
metadata: {name: web, labels: {ns: web}}
---
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {role: infra}}
status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {nodeName: node-1, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: web, labels: {app: b}}
spec: {nodeName: node-1, containers: [{name: c}]}
status: {podIPs: [{ip: 10.0.0.2}]}
"""

LEGACY = """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: guard}
spec:
  priority: 5
  subject: {namespaces: {matchLabels: {ns: x}}}
  ingress:
  - name: allow-web-http
    action: Allow
    from: [{namespaces: {matchLabels: {ns: web}}}]
    ports: [{namedPort: http}, {portRange: {protocol: UDP, start: 1000, end: 2000}}]
  - name: pass-rest
    action: Pass
    from: [{pods: {namespaceSelector: {}, podSelector: {matchExpressions: [{key: app, operator: Exists}]}}}]
  egress:
  - name: deny-infra-ssh
    action: Deny
    to: [{nodes: {matchLabels: {role: infra}}}, {networks: [10.0.0.0/30, 192.168.0.0/16]}]
    ports: [{portNumber: {protocol: TCP, port: 22}}]
  - name: names
    action: Allow
    to: [{domainNames: [example.com]}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress:
  - name: deny-all
    action: Deny
    from: [{namespaces: {}}]
"""

TIED_WITH_CLUSTER_NETWORK_POLICY = """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: alpha}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {matchLabels: {ns: x}}}
  ingress:
  - {name: accept-all, action: Accept, from: [{namespaces: {}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: zeta}
spec:
  priority: 5
  subject: {namespaces: {matchLabels: {ns: x}}}
  ingress:
  - {name: deny-all, action: Deny, from: [{namespaces: {}}]}
"""


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    directory = tmp_path / "in"
    directory.mkdir()
    write(directory, "cluster.yaml", CLUSTER)
    write(directory, "legacy.yaml", LEGACY)
    return directory


def test_converts_renames_fields_keeps_rule_names_and_proves(run, legacy: Path) -> None:
    result = run("convert", "-f", str(legacy))
    assert result.exit_code == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert [(d["kind"], d["apiVersion"], d["metadata"]["name"]) for d in documents] == [
        ("ClusterNetworkPolicy", "policy.networking.k8s.io/v1alpha2", "guard"),
        ("ClusterNetworkPolicy", "policy.networking.k8s.io/v1alpha2", "default"),
    ]
    guard, baseline = documents[0]["spec"], documents[1]["spec"]
    assert (guard["tier"], guard["priority"]) == ("Admin", 5)
    assert (baseline["tier"], baseline["priority"]) == ("Baseline", 1000)
    first = guard["ingress"][0]
    assert (first["name"], first["action"]) == ("allow-web-http", "Accept")
    assert first["protocols"] == [
        {"destinationNamedPort": "http"},
        {"udp": {"destinationPort": {"range": {"start": 1000, "end": 2000}}}},
    ]
    assert guard["egress"][0]["to"] == [{"nodes": {"matchLabels": {"role": "infra"}}},
                                        {"networks": ["10.0.0.0/30", "192.168.0.0/16"]}]  # fmt: skip
    assert guard["egress"][0]["protocols"] == [{"tcp": {"destinationPort": {"number": 22}}}]
    assert "proved: the same connections are allowed" in result.stderr
    assert "not enforced: names are not resolved" in result.stderr


def test_output_file_reads_back_as_the_same_policies(run, legacy: Path, tmp_path: Path) -> None:
    target = tmp_path / "cnp.yaml"
    result = run("convert", "-f", str(legacy), "-o", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    original = load([str(legacy)]).cluster.cluster_policies
    converted = load([str(target)])
    assert converted.ok, converted.diagnostics
    by_name = {p.name: p for p in converted.cluster.cluster_policies}
    for before in original:
        after = by_name[before.name]
        assert after.kind is SourceKind.CLUSTER_NETWORK_POLICY
        assert (after.tier, after.priority) == (before.tier, before.priority)
        assert [(r.name, r.action, set(r.peers), set(r.ports)) for r in after.ingress + after.egress] == [
            (r.name, r.action, set(r.peers), set(r.ports)) for r in before.ingress + before.egress
        ]
    guard = by_name["guard"]
    assert guard.tier is Tier.ADMIN and guard.ingress[0].action is Action.ACCEPT
    assert {p.protocol for p in guard.ingress[0].ports if p.port == "http"} == set(Protocol)


def test_a_tie_broken_differently_after_conversion_is_a_counterexample(run, tmp_path: Path) -> None:
    write(tmp_path, "cluster.yaml", CLUSTER)
    write(tmp_path, "tied.yaml", TIED_WITH_CLUSTER_NETWORK_POLICY)
    target = tmp_path / "out.yaml"
    result = run("convert", "-f", str(tmp_path / "cluster.yaml"), "-f", str(tmp_path / "tied.yaml"), "-o", str(target))
    assert result.exit_code == 1, result.stderr
    assert "not equivalent: web/b -> x/a on 1/TCP (IPv4) is allowed by the converted set only" in result.stderr
    assert "AdminNetworkPolicy zeta and ClusterNetworkPolicy alpha share Admin priority 5" in result.stderr
    assert not target.exists()


def test_nothing_to_convert_exits_zero(run, tmp_path: Path) -> None:
    result = run("convert", "-f", write(tmp_path, "cluster.yaml", CLUSTER))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no AdminNetworkPolicy or BaselineAdminNetworkPolicy to convert" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(LEGACY.replace("priority: 5", "priority: 5000"), "spec.priority: 5000: must be between 0 and 1000",
                     id="priority-out-of-range"),
        pytest.param(LEGACY.replace("action: Pass", "action: Skip"), 'spec.ingress[1].action: "Skip"',
                     id="unknown-action"),
        pytest.param(LEGACY + "---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"
                     "metadata: {name: guard}\nspec: {tier: Admin, priority: 1, subject: {namespaces: {}}}\n",
                     "ClusterNetworkPolicy guard already exists", id="name-collision"),
    ],
)  # fmt: skip
def test_bad_input_exits_two_naming_the_place(run, tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "cluster.yaml", CLUSTER)
    write(tmp_path, "legacy.yaml", text)
    result = run("convert", "-f", str(tmp_path))
    assert result.exit_code == 2
    assert message in result.stderr
    assert "legacy.yaml:" in result.stderr
    assert result.stdout == ""
