"""Reading cluster-scoped policies as the API server's CRD schema and CEL rules would.

Each row cites the schema marker or CEL rule of kubernetes-sigs/network-policy-api it checks
(``apis/v1alpha2/clusternetworkpolicy_types.go`` for ClusterNetworkPolicy, ``apis/v1alpha1``
for AdminNetworkPolicy and BaselineAdminNetworkPolicy).
"""

from __future__ import annotations

import ipaddress
import textwrap

import pytest

from policyctl.policy.clustermodel import Action, DomainNamesPeer, NodesPeer, SourceKind, Tier
from policyctl.manifests.clusterparse import parse_cidr_strict
from policyctl.policy.diagnostics import Severity
from policyctl.manifests.loader import load_documents
from policyctl.policy.model import Direction, IPBlockPeer, PortMatch, Protocol
from policyctl.manifests.yamlsource import read_documents

HEAD = "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: p}\n"
SUBJECT = "  subject: {namespaces: {}}\n"


def load(text: str):
    documents, problems = read_documents(text, source="t.yaml")
    assert not problems
    return load_documents(documents)


def spec(body: str, *, tier: str = "Admin", priority: str = "5") -> str:
    return (
        HEAD
        + f"spec:\n  tier: {tier}\n  priority: {priority}\n"
        + SUBJECT
        + textwrap.indent(textwrap.dedent(body), "  ")
    )


INVALID = [
    # Tier: +kubebuilder:validation:Enum={"Admin", "Baseline"}
    pytest.param(spec("", tier="Middle"), "invalid-tier", "spec.tier", id="tier-enum"),
    # Priority: Minimum=0, Maximum=1000
    pytest.param(spec("", priority="1001"), "invalid-priority", "spec.priority", id="priority-maximum"),
    pytest.param(spec("", priority="-1"), "invalid-priority", "spec.priority", id="priority-minimum"),
    # Subject: MinProperties=1, MaxProperties=1
    pytest.param(HEAD + "spec:\n  tier: Admin\n  priority: 1\n  subject: {}\n", "exactly-one-field", "spec.subject",
                 id="subject-needs-one-field"),
    # Action: Enum={"Accept", "Deny", "Pass"}
    pytest.param(spec("ingress:\n- action: Allow\n  from: [{namespaces: {}}]\n"), "invalid-action",
                 "spec.ingress[0].action", id="cnp-action-enum"),
    # From: MinItems=1
    pytest.param(spec("ingress:\n- action: Deny\n  from: []\n"), "too-few-items", "spec.ingress[0].from",
                 id="from-min-items"),
    # Ingress peers have namespaces and pods only (strict decoding: networks is unknown there).
    pytest.param(spec("ingress:\n- action: Deny\n  from: [{networks: [10.0.0.0/8]}]\n"), "unknown-field",
                 "spec.ingress[0].from[0].networks", id="ingress-peer-fields"),
    # Peer: MaxProperties=1
    pytest.param(spec("egress:\n- action: Deny\n  to: [{namespaces: {}, networks: [10.0.0.0/8]}]\n"),
                 "exactly-one-field", "spec.egress[0].to[0]", id="peer-exactly-one-field"),
    # Rule name: MaxLength=100
    pytest.param(spec(f"ingress:\n- name: {'n' * 101}\n  action: Deny\n  from: [{{namespaces: {{}}}}]\n"),
                 "too-long", "spec.ingress[0].name", id="rule-name-max-length"),
    # Ingress: MaxItems=25
    pytest.param(spec("ingress:\n" + "- action: Deny\n  from: [{namespaces: {}}]\n" * 26), "too-many-items",
                 "spec.ingress", id="rules-max-items"),
    # CIDR: XValidation isCIDR(self)
    pytest.param(spec("egress:\n- action: Deny\n  to: [{networks: [10.0.0.0]}]\n"), "invalid-cidr",
                 "spec.egress[0].to[0].networks[0]", id="cidr-needs-a-prefix"),
    pytest.param(spec("egress:\n- action: Deny\n  to: [{networks: [010.0.0.0/8]}]\n"), "invalid-cidr",
                 "spec.egress[0].to[0].networks[0]", id="cidr-no-leading-zeros"),
    pytest.param(spec("egress:\n- action: Deny\n  to: [{networks: ['::ffff:10.0.0.0/104']}]\n"), "invalid-cidr",
                 "spec.egress[0].to[0].networks[0]", id="cidr-no-ipv4-mapped"),
    # PortRange: XValidation self.start < self.end
    pytest.param(
        spec(
            "ingress:\n- action: Deny\n  from: [{namespaces: {}}]\n"
            "  protocols: [{tcp: {destinationPort: {range: {start: 80, end: 80}}}}]\n"
        ),
        "invalid-port-range",
        "spec.ingress[0].protocols[0].tcp.destinationPort.range",
        id="range-start-lt-end",
    ),
    # Port number: Minimum=1, Maximum=65535
    pytest.param(spec("ingress:\n- action: Deny\n  from: [{namespaces: {}}]\n"
                      "  protocols: [{udp: {destinationPort: {number: 0}}}]\n"),
                 "invalid-port", "spec.ingress[0].protocols[0].udp.destinationPort.number", id="port-minimum"),
    # ClusterNetworkPolicyProtocol: MaxProperties=1
    pytest.param(spec("ingress:\n- action: Deny\n  from: [{namespaces: {}}]\n"
                      "  protocols: [{tcp: {destinationPort: {number: 80}}, destinationNamedPort: http}]\n"),
                 "exactly-one-field", "spec.ingress[0].protocols[0]", id="protocol-exactly-one-field"),
    # Egress rule CEL: "networks/nodes/domainNames peer cannot be set with namedPorts"
    pytest.param(spec("egress:\n- action: Deny\n  to: [{nodes: {}}]\n  protocols: [{destinationNamedPort: http}]\n"),
                 "named-port-without-pods", "spec.egress[0].protocols", id="named-port-with-nodes"),
    # DomainNames: "DomainNames is only supported for Accept rules"
    pytest.param(spec("egress:\n- action: Deny\n  to: [{domainNames: [example.com]}]\n"),
                 "domain-names-accept-only", "spec.egress[0].action", id="domain-names-accept-only"),
    # DomainName pattern: '*' only as a prefix of whole labels.
    pytest.param(spec("egress:\n- action: Accept\n  to: [{domainNames: ['www.*.com']}]\n"),
                 "invalid-domain-name", "spec.egress[0].to[0].domainNames[0]", id="domain-name-pattern"),
    # BaselineAdminNetworkPolicy: self.metadata.name == 'default'
    pytest.param("apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\n"
                 "metadata: {name: other}\nspec:\n  subject: {namespaces: {}}\n",
                 "invalid-name", "metadata.name", id="banp-singleton-name"),
    # BaselineAdminNetworkPolicyRuleAction: Enum={"Allow", "Deny"}
    pytest.param("apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\n"
                 "metadata: {name: default}\nspec:\n  subject: {namespaces: {}}\n"
                 "  ingress:\n  - action: Pass\n    from: [{namespaces: {}}]\n",
                 "invalid-action", "spec.ingress[0].action", id="banp-no-pass"),
    # AdminNetworkPolicy Port: portNumber needs protocol and port.
    pytest.param("apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\n"
                 "metadata: {name: a}\nspec:\n  priority: 1\n  subject: {namespaces: {}}\n"
                 "  ingress:\n  - action: Allow\n    from: [{namespaces: {}}]\n    ports: [{portNumber: {port: 80}}]\n",
                 "required-field", "spec.ingress[0].ports[0].portNumber.protocol", id="anp-port-number-protocol"),
    # Versions served: ClusterNetworkPolicy is v1alpha2 (and v1beta1), never v1alpha1.
    pytest.param(spec("").replace("v1alpha2", "v1alpha1"), "unsupported-api-version", "apiVersion",
                 id="cnp-version"),
]


@pytest.mark.parametrize(("text", "code", "field"), INVALID)
def test_what_the_api_server_refuses_is_an_error_with_its_field(text, code, field):
    result = load(text)
    errors = [(d.code, d.field) for d in result.diagnostics if d.severity is Severity.ERROR]
    assert (code, field) in errors
    assert result.cluster.cluster_policies == ()


def test_every_field_is_read_into_the_model():
    result = load(spec("""\
        ingress:
        - name: a
          action: Pass
          from: [{pods: {namespaceSelector: {matchLabels: {team: t}}, podSelector: {matchLabels: {app: w}}}}]
          protocols:
          - tcp: {destinationPort: {number: 80}}
          - sctp: {destinationPort: {range: {start: 1000, end: 2000}}}
          - destinationNamedPort: http
        egress:
        - action: Accept
          to:
          - {networks: [10.0.0.0/8, 'fd00::/8']}
          - {nodes: {matchLabels: {role: infra}}}
          - {domainNames: ['*.example.com']}
        """, tier="Baseline", priority="0"))
    [policy] = result.cluster.cluster_policies
    assert (policy.tier, policy.priority, policy.kind) == (Tier.BASELINE, 0, SourceKind.CLUSTER_NETWORK_POLICY)
    [ingress] = policy.ingress
    assert ingress.action is Action.PASS and ingress.name == "a" and ingress.direction is Direction.INGRESS
    assert ingress.ports[:2] == (PortMatch(Protocol.TCP, 80), PortMatch(Protocol.SCTP, 1000, 2000))
    assert {p.protocol for p in ingress.ports[2:]} == set(Protocol)
    [egress] = policy.egress
    assert [type(p) for p in egress.peers] == [IPBlockPeer, IPBlockPeer, NodesPeer, DomainNamesPeer]
    warnings = [d.code for d in result.diagnostics if d.severity is Severity.WARNING]
    assert warnings == ["domain-names-not-enforced"]


@pytest.mark.parametrize(
    ("text", "network"),
    [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("fd00::/8", "fd00::/8"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("10.0.0.0/08", None),
        ("10.0.0.0/33", None),
        ("10.0.0.0", None),
        ("10.0.0.0/8\n", None),
        ("fe80::1%eth0/64", None),
        ("::ffff:10.0.0.0/104", None),
    ],
)
def test_cidrs_are_parsed_as_cel_is_cidr_does(text, network):
    parsed = parse_cidr_strict(text)
    assert parsed == (ipaddress.ip_network(network) if network else None)


def test_a_v1alpha1_pods_peer_missing_a_selector_is_read_as_all_with_a_warning():
    # The v1alpha1 CRD requires both selectors of NamespacedPod; manifests written for
    # analysers often omit one. They are read as {} (the only meaning the omission can have),
    # loudly; ClusterNetworkPolicy (v1alpha2, podSelector "+required") stays strict.
    result = load("apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\n"
                  "spec:\n  priority: 1\n  subject: {namespaces: {}}\n"
                  "  ingress:\n  - action: Deny\n    from: [{pods: {namespaceSelector: {}}}]\n")
    [policy] = result.cluster.cluster_policies
    assert policy.ingress[0].peers[0].pods.is_empty
    assert [(d.severity, d.field) for d in result.diagnostics] == [
        (Severity.WARNING, "spec.ingress[0].from[0].pods.podSelector")
    ]
    strict = load(spec("ingress:\n- action: Deny\n  from: [{pods: {namespaceSelector: {}}}]\n"))
    assert strict.cluster.cluster_policies == ()
