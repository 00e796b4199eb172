"""NetworkPolicy validation as the API server does it (ValidateNetworkPolicy in
kubernetes/kubernetes pkg/apis/networking/validation/validation.go, ValidateLabelSelector in
apimachinery pkg/apis/meta/v1/validation, the name checks of apimachinery
pkg/util/validation). Each case names the rule it pins; expected codes and field paths come
from those rules, not from running the code."""

from __future__ import annotations

import textwrap

import pytest

from policyctl.policy.diagnostics import Severity
from policyctl.manifests.loader import parse_network_policy
from policyctl.manifests.names import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_value_errors,
    port_name_errors,
    qualified_name_errors,
)
from policyctl.manifests.yamlsource import read_documents

SPEC_FIRST_LINE = 7


def policy_text(spec: str, *, name: str = "p", namespace: str = "x") -> str:
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return (
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        "metadata:\n"
        f"  name: {name}\n"
        f"  namespace: {namespace}\n"
        "spec:\n"
        f"{body}\n"
    )


def parse(text: str):
    documents, reading = read_documents(text, source="np.yaml")
    assert reading == []
    return parse_network_policy(documents[0].value, document=documents[0])


def errors_of(text: str) -> set[tuple[str, str]]:
    policy, diagnostics = parse(text)
    found = {(d.field, d.code) for d in diagnostics if d.severity is Severity.ERROR}
    assert (policy is None) == bool(found), "a policy is returned exactly when it is valid"
    return found


# (id, spec, expected {(field, code)}); each comment quotes the upstream rule.
INVALID_SPECS = [
    # ValidateLabels -> IsQualifiedName: name part must start with an alphanumeric.
    ("match-labels-key-not-qualified", "podSelector: {matchLabels: {-app: web}}",
     {("spec.podSelector.matchLabels.-app", "invalid-label-key")}),
    # IsQualifiedName: "prefix part must be non-empty".
    ("match-labels-key-empty-prefix", "podSelector: {matchLabels: {/app: web}}",
     {("spec.podSelector.matchLabels./app", "invalid-label-key")}),
    # IsQualifiedName: prefix is a DNS-1123 subdomain (lower case).
    ("match-labels-key-uppercase-prefix", "podSelector: {matchLabels: {Example.com/app: web}}",
     {("spec.podSelector.matchLabels.Example.com/app", "invalid-label-key")}),
    # IsQualifiedName: name part at most 63 characters.
    ("match-labels-key-name-64-chars", f"podSelector: {{matchLabels: {{{'a' * 64}: web}}}}",
     {(f"spec.podSelector.matchLabels.{'a' * 64}", "invalid-label-key")}),
    # IsValidLabelValue: only alphanumerics, '-', '_', '.'.
    ("match-labels-value-with-space", 'podSelector: {matchLabels: {app: "my web"}}',
     {("spec.podSelector.matchLabels.app", "invalid-label-value")}),
    # IsValidLabelValue: at most 63 characters.
    ("match-labels-value-64-chars", f"podSelector: {{matchLabels: {{app: {'v' * 64}}}}}",
     {("spec.podSelector.matchLabels.app", "invalid-label-value")}),
    # ValidateLabelSelectorRequirement: "not a valid selector operator".
    ("operator-not-supported", "podSelector: {matchExpressions: [{key: app, operator: Equals, values: [a]}]}",
     {("spec.podSelector.matchExpressions[0].operator", "invalid-selector-operator")}),
    # "must be specified when `operator` is 'In' or 'NotIn'".
    ("in-without-values", "podSelector: {matchExpressions: [{key: app, operator: In}]}",
     {("spec.podSelector.matchExpressions[0].values", "missing-selector-values")}),
    ("notin-with-empty-values", "podSelector: {matchExpressions: [{key: app, operator: NotIn, values: []}]}",
     {("spec.podSelector.matchExpressions[0].values", "missing-selector-values")}),
    # "may not be specified when `operator` is 'Exists' or 'DoesNotExist'".
    ("exists-with-values", "podSelector: {matchExpressions: [{key: app, operator: Exists, values: [a]}]}",
     {("spec.podSelector.matchExpressions[0].values", "forbidden-selector-values")}),
    ("doesnotexist-with-values",
     "podSelector: {matchExpressions: [{key: app, operator: DoesNotExist, values: [a]}]}",
     {("spec.podSelector.matchExpressions[0].values", "forbidden-selector-values")}),
    # ValidateLabelSelectorRequirement: the key is a label name.
    ("expression-key-not-qualified", "podSelector: {matchExpressions: [{key: 'a b', operator: Exists}]}",
     {("spec.podSelector.matchExpressions[0].key", "invalid-label-key")}),
    # ... and each value a valid label value.
    ("expression-value-invalid", "podSelector: {matchExpressions: [{key: app, operator: In, values: [ok, 'not ok']}]}",
     {("spec.podSelector.matchExpressions[0].values[1]", "invalid-label-value")}),
    # Peer selectors are validated like the policy's podSelector.
    ("peer-namespace-selector-invalid",
     "podSelector: {}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {'a b': x}}",
     {("spec.ingress[0].from[0].namespaceSelector.matchLabels.a b", "invalid-label-key")}),
    # policyTypes: NotSupported unless Ingress or Egress.
    ("policy-type-unknown", "podSelector: {}\npolicyTypes: [Ingress, Sideways]",
     {("spec.policyTypes[1]", "invalid-policy-type")}),
    ("policy-type-wrong-case", "podSelector: {}\npolicyTypes: [ingress]",
     {("spec.policyTypes[0]", "invalid-policy-type")}),
    # "may not specify more than two policyTypes" (and nothing more is checked there).
    ("policy-types-more-than-two", "podSelector: {}\npolicyTypes: [Ingress, Egress, Sideways]",
     {("spec.policyTypes", "too-many-policy-types")}),
    # ValidateNetworkPolicyPort: protocol NotSupported unless TCP, UDP, SCTP.
    ("protocol-icmp", "podSelector: {}\ningress:\n- ports: [{protocol: ICMP}]",
     {("spec.ingress[0].ports[0].protocol", "invalid-protocol")}),
    # An explicit empty protocol is not defaulted (the pointer is set), so it is invalid.
    ("protocol-empty-string", "podSelector: {}\ningress:\n- ports: [{protocol: ''}]",
     {("spec.ingress[0].ports[0].protocol", "invalid-protocol")}),
    ("protocol-lowercase", "podSelector: {}\negress:\n- ports: [{protocol: tcp, port: 53}]",
     {("spec.egress[0].ports[0].protocol", "invalid-protocol")}),
    # IsValidPortNum: "must be between 1 and 65535, inclusive".
    ("port-zero", "podSelector: {}\ningress:\n- ports: [{port: 0}]",
     {("spec.ingress[0].ports[0].port", "invalid-port")}),
    ("port-65536", "podSelector: {}\ningress:\n- ports: [{port: 65536}]",
     {("spec.ingress[0].ports[0].port", "invalid-port")}),
    # IsValidPortName: at most 15 characters.
    ("port-name-16-chars", "podSelector: {}\ningress:\n- ports: [{port: abcdefghijklmnop}]",
     {("spec.ingress[0].ports[0].port", "invalid-port-name")}),
    # IsValidPortName: lower-case alphanumerics and '-' only.
    ("port-name-uppercase", "podSelector: {}\ningress:\n- ports: [{port: HTTP}]",
     {("spec.ingress[0].ports[0].port", "invalid-port-name")}),
    # IsValidPortName: at least one letter; a quoted number is a name, not a number.
    ("port-quoted-number", "podSelector: {}\ningress:\n- ports: [{port: '80'}]",
     {("spec.ingress[0].ports[0].port", "invalid-port-name")}),
    # IsValidPortName: no consecutive hyphens.
    ("port-name-double-hyphen", "podSelector: {}\ningress:\n- ports: [{port: a--b}]",
     {("spec.ingress[0].ports[0].port", "invalid-port-name")}),
    # IsValidPortName: no hyphen at either end.
    ("port-name-leading-hyphen", "podSelector: {}\ningress:\n- ports: [{port: -web}]",
     {("spec.ingress[0].ports[0].port", "invalid-port-name")}),
    # endPort "may not be specified when `port` is non-numeric".
    ("end-port-with-named-port", "podSelector: {}\ningress:\n- ports: [{port: http, endPort: 90}]",
     {("spec.ingress[0].ports[0].endPort", "invalid-end-port")}),
    # endPort "may not be specified when `port` is not specified".
    ("end-port-without-port", "podSelector: {}\ningress:\n- ports: [{endPort: 90}]",
     {("spec.ingress[0].ports[0].endPort", "invalid-end-port")}),
    # endPort "must be greater than or equal to `port`".
    ("end-port-below-port", "podSelector: {}\ningress:\n- ports: [{port: 90, endPort: 80}]",
     {("spec.ingress[0].ports[0].endPort", "invalid-end-port")}),
    # endPort is a valid port number.
    ("end-port-above-65535", "podSelector: {}\ningress:\n- ports: [{port: 90, endPort: 70000}]",
     {("spec.ingress[0].ports[0].endPort", "invalid-end-port")}),
    # ValidateNetworkPolicyPeer: "must specify a peer".
    ("peer-empty", "podSelector: {}\ningress:\n- from: [{}]",
     {("spec.ingress[0].from[0]", "empty-peer")}),
    ("peer-null", "podSelector: {}\negress:\n- to: [null]",
     {("spec.egress[0].to[0]", "empty-peer")}),
    # "may not specify both ipBlock and another peer".
    ("ipblock-with-pod-selector",
     "podSelector: {}\ningress:\n- from: [{podSelector: {}, ipBlock: {cidr: 10.0.0.0/8}}]",
     {("spec.ingress[0].from[0]", "ipblock-with-selector")}),
    ("ipblock-with-namespace-selector",
     "podSelector: {}\negress:\n- to: [{namespaceSelector: {}, ipBlock: {cidr: 10.0.0.0/8}}]",
     {("spec.egress[0].to[0]", "ipblock-with-selector")}),
    # ValidateIPBlock: cidr is Required.
    ("ipblock-without-cidr", "podSelector: {}\ningress:\n- from: [{ipBlock: {except: [10.0.0.0/8]}}]",
     {("spec.ingress[0].from[0].ipBlock.cidr", "missing-cidr")}),
    # ParseCIDRSloppy needs address/prefix ...
    ("cidr-without-prefix", "podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: 10.0.0.0}}]",
     {("spec.ingress[0].from[0].ipBlock.cidr", "invalid-cidr")}),
    # ... with a prefix no longer than the address ...
    ("cidr-prefix-33", "podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: 10.0.0.0/33}}]",
     {("spec.ingress[0].from[0].ipBlock.cidr", "invalid-cidr")}),
    # ... octets at most 255 ...
    ("cidr-octet-256", "podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: 10.0.0.256/32}}]",
     {("spec.ingress[0].from[0].ipBlock.cidr", "invalid-cidr")}),
    # ... a prefix length, never a netmask ...
    ("cidr-netmask", "podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: 10.0.0.0/255.0.0.0}}]",
     {("spec.ingress[0].from[0].ipBlock.cidr", "invalid-cidr")}),
    # ... and no IPv6 zone.
    ("cidr-ipv6-zone", "podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: 'fe80::1%eth0/64'}}]",
     {("spec.ingress[0].from[0].ipBlock.cidr", "invalid-cidr")}),
    # Each except is a valid CIDR.
    ("except-invalid", "podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0]}}]",
     {("spec.ingress[0].from[0].ipBlock.except[0]", "invalid-cidr")}),
    # except "must be a strict subset of `cidr`": outside it ...
    ("except-outside-cidr",
     "podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 192.168.0.0/16]}}]",
     {("spec.ingress[0].from[0].ipBlock.except[1]", "except-not-subset")}),
    # ... equal to it (not strict) ...
    ("except-equal-to-cidr",
     "podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]",
     {("spec.ingress[0].from[0].ipBlock.except[0]", "except-not-subset")}),
    # ... wider than it ...
    ("except-wider-than-cidr",
     "podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/7]}}]",
     {("spec.ingress[0].from[0].ipBlock.except[0]", "except-not-subset")}),
    # ... or of the other family.
    ("except-other-family",
     "podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: 0.0.0.0/0, except: ['::/1']}}]",
     {("spec.ingress[0].from[0].ipBlock.except[0]", "except-not-subset")}),
    # When cidr does not parse, ValidateIPBlock returns before looking at the excepts.
    ("invalid-cidr-hides-excepts",
     "podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: nonsense, except: [also-nonsense]}}]",
     {("spec.ingress[0].from[0].ipBlock.cidr", "invalid-cidr")}),
    # Strict field validation: unknown fields are errors, wherever they are.
    ("unknown-spec-field", "podSelector: {}\ningres: []",
     {("spec.ingres", "unknown-field")}),
    ("unknown-peer-field", "podSelector: {}\ningress:\n- from: [{podselector: {}}]",
     {("spec.ingress[0].from[0].podselector", "unknown-field"),
      ("spec.ingress[0].from[0]", "empty-peer")}),
    ("unknown-rule-field-to-in-ingress", "podSelector: {}\ningress:\n- to: [{podSelector: {}}]",
     {("spec.ingress[0].to", "unknown-field")}),
    ("unknown-selector-field", "podSelector: {matchLabel: {app: web}}",
     {("spec.podSelector.matchLabel", "unknown-field")}),
    # Decoding into the Go types: wrong JSON types are errors with the field path.
    ("rules-map-instead-of-list", "podSelector: {}\ningress: {from: []}",
     {("spec.ingress", "invalid-type")}),
    ("selector-list-instead-of-map", "podSelector: []",
     {("spec.podSelector", "invalid-type")}),
    ("port-boolean", "podSelector: {}\ningress:\n- ports: [{port: true}]",
     {("spec.ingress[0].ports[0].port", "invalid-type")}),
    ("port-fraction", "podSelector: {}\ningress:\n- ports: [{port: 80.5}]",
     {("spec.ingress[0].ports[0].port", "invalid-type")}),
    ("policy-types-string", "podSelector: {}\npolicyTypes: Ingress",
     {("spec.policyTypes", "invalid-type")}),
    ("except-string", "podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: 10.0.0.0/8, except: 10.1.0.0/16}}]",
     {("spec.ingress[0].from[0].ipBlock.except", "invalid-type")}),
    # A YAML 1.1 boolean or a number where a label value (a string) belongs.
    ("label-value-yes", "podSelector: {matchLabels: {enabled: yes}}",
     {("spec.podSelector.matchLabels.enabled", "needs-quotes")}),
    ("label-value-on", "podSelector: {matchLabels: {enabled: on}}",
     {("spec.podSelector.matchLabels.enabled", "needs-quotes")}),
    ("label-value-float", "podSelector: {matchLabels: {version: 1.0}}",
     {("spec.podSelector.matchLabels.version", "needs-quotes")}),
    ("expression-value-number", "podSelector: {matchExpressions: [{key: tier, operator: In, values: [1, two]}]}",
     {("spec.podSelector.matchExpressions[0].values[0]", "needs-quotes")}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "expected"), [c[1:] for c in INVALID_SPECS], ids=[c[0] for c in INVALID_SPECS]
)
def test_invalid_policy_is_refused_with_field_and_code(spec, expected):
    assert errors_of(policy_text(spec)) == expected


VALID_SPECS = [
    # The empty podSelector selects all pods; an empty spec is deny-all ingress.
    ("empty-pod-selector", "podSelector: {}"),
    ("prefixed-label-key", "podSelector: {matchLabels: {app.kubernetes.io/name: web, tier: ''}}"),
    ("quoted-yaml-boolean-label", "podSelector: {matchLabels: {enabled: 'yes'}}"),
    # "endPort must be equal or greater than port".
    ("end-port-equal-to-port", "podSelector: {}\ningress:\n- ports: [{port: 80, endPort: 80}]"),
    ("named-port", "podSelector: {}\ningress:\n- ports: [{port: http-alt, protocol: SCTP}]"),
    ("port-without-number", "podSelector: {}\negress:\n- ports: [{protocol: UDP}]"),
    # Legacy CIDR fields accept host bits and leading zeros (StrictIPCIDRValidation is off).
    ("cidr-host-bits", "podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: 10.0.0.7/4}}]"),
    ("cidr-leading-zeros", "podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: 010.000.0.0/08}}]"),
    ("ipv6-except", "podSelector: {}\negress:\n- to: [{ipBlock: {cidr: 'fd00::/8', except: ['fd00:1::/32']}}]"),
    # Order of policyTypes does not matter; duplicates are not rejected by the API server.
    ("policy-types-reversed", "podSelector: {}\npolicyTypes: [Egress, Ingress]"),
    ("policy-types-repeated", "podSelector: {}\npolicyTypes: [Ingress, Ingress]"),
    # A rule for a direction absent from policyTypes is valid (and ignored).
    ("egress-rules-with-ingress-type", "podSelector: {}\negress: [{}]\npolicyTypes: [Ingress]"),
    ("null-rule-lists", "podSelector: {}\ningress:\n- from: null\n  ports: null"),
]  # fmt: skip


@pytest.mark.parametrize("spec", [c[1] for c in VALID_SPECS], ids=[c[0] for c in VALID_SPECS])
def test_valid_policy_is_accepted(spec):
    policy, diagnostics = parse(policy_text(spec))
    assert policy is not None
    assert [d for d in diagnostics if d.severity is Severity.ERROR] == []


METADATA_CASES = [
    # ValidateNetworkPolicyName -> NameIsDNSSubdomain: lower case, no '_'.
    ("name-with-underscore", {"name": "Web_Policy"}, {("metadata.name", "invalid-name")}),
    ("name-254-chars", {"name": "a" * 254}, {("metadata.name", "invalid-name")}),
    ("name-empty", {"name": "''"}, {("metadata.name", "missing-name")}),
    # ValidateObjectMeta: the namespace is a DNS-1123 label (no dots).
    ("namespace-with-dot", {"namespace": "team.a"}, {("metadata.namespace", "invalid-namespace")}),
    ("namespace-uppercase", {"namespace": "Prod"}, {("metadata.namespace", "invalid-namespace")}),
]


@pytest.mark.parametrize(
    ("meta", "expected"), [c[1:] for c in METADATA_CASES], ids=[c[0] for c in METADATA_CASES]
)
def test_invalid_metadata_is_refused(meta, expected):
    assert errors_of(policy_text("podSelector: {}", **meta)) == expected


def test_missing_metadata_name_is_required():
    text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: x}\nspec: {}\n"
    assert errors_of(text) == {("metadata.name", "missing-name")}


def test_unknown_metadata_field_and_bad_metadata_label_are_reported():
    text = policy_text("podSelector: {}").replace(
        "metadata:\n", "metadata:\n  nmae: typo\n  labels: {'bad key': x}\n"
    )
    assert errors_of(text) == {
        ("metadata.nmae", "unknown-field"),
        ("metadata.labels.bad key", "invalid-label-key"),
    }


def test_other_api_version_is_refused():
    text = policy_text("podSelector: {}").replace("networking.k8s.io/v1", "extensions/v1beta1")
    assert errors_of(text) == {("apiVersion", "unsupported-api-version")}


def test_every_error_is_reported_in_one_run_with_its_line():
    """Not only the first: the API server's ErrorList collects them all."""
    spec = """
    podSelector: {matchLabels: {app: yes}}
    ingress:
    - from:
      - {}
      - ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}
      ports:
      - {port: 0}
    policyTypes: [Ingress, Sideways]
    """
    policy, diagnostics = parse(policy_text(spec, name="Bad_Name"))
    assert policy is None
    found = sorted((d.line, d.field, d.code) for d in diagnostics)
    assert found == [
        (4, "metadata.name", "invalid-name"),
        (SPEC_FIRST_LINE, "spec.podSelector.matchLabels.app", "needs-quotes"),
        (SPEC_FIRST_LINE + 3, "spec.ingress[0].from[0]", "empty-peer"),
        (SPEC_FIRST_LINE + 4, "spec.ingress[0].from[1].ipBlock.except[0]", "except-not-subset"),
        (SPEC_FIRST_LINE + 6, "spec.ingress[0].ports[0].port", "invalid-port"),
        (SPEC_FIRST_LINE + 7, "spec.policyTypes[1]", "invalid-policy-type"),
    ]
    assert {d.object for d in diagnostics} == {"NetworkPolicy x/Bad_Name"}
    assert {d.file for d in diagnostics} == {"np.yaml"}


def test_needs_quotes_message_names_the_value_to_quote():
    _, diagnostics = parse(policy_text("podSelector: {matchLabels: {enabled: on}}"))
    (diagnostic,) = diagnostics
    assert 'quote it: "on"' in diagnostic.message
    assert str(diagnostic) == (
        f"np.yaml:{SPEC_FIRST_LINE}: error: spec.podSelector.matchLabels.enabled: "
        f"{diagnostic.message} (NetworkPolicy x/p) [needs-quotes]"
    )


def test_policy_embedded_in_a_document_uses_lines_of_that_document():
    """The probe-case reader parses policies found at some path inside a case file."""
    text = textwrap.dedent(
        """\
        name: a case
        steps:
        - policies:
          - apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: p, namespace: x}
            spec:
              podSelector: {}
              ingress:
              - ports: [{port: 0}]
        """
    )
    documents, _ = read_documents(text, source="case.yaml")
    path = ("steps", 0, "policies", 0)
    value = documents[0].value["steps"][0]["policies"][0]
    policy, diagnostics = parse_network_policy(value, document=documents[0], path=path)
    assert policy is None
    assert [(d.line, d.field) for d in diagnostics] == [(10, "spec.ingress[0].ports[0].port")]


NAME_RULES = [
    # (id, function, value, valid) from the apimachinery util/validation rules.
    ("label-key-plain", qualified_name_errors, "app", True),
    ("label-key-prefixed", qualified_name_errors, "example.com/app", True),
    ("label-key-two-slashes", qualified_name_errors, "a/b/c", False),
    ("label-key-ends-with-dot", qualified_name_errors, "app.", False),
    ("label-key-name-63", qualified_name_errors, "a" * 63, True),
    ("label-value-empty", label_value_errors, "", True),
    ("label-value-underscore-inside", label_value_errors, "a_b", True),
    ("label-value-starts-with-dash", label_value_errors, "-a", False),
    ("namespace-63", dns1123_label_errors, "a" * 63, True),
    ("namespace-64", dns1123_label_errors, "a" * 64, False),
    ("subdomain-with-dots", dns1123_subdomain_errors, "a.b-c.d", True),
    ("subdomain-empty-label", dns1123_subdomain_errors, "a..b", False),
    ("port-name-15", port_name_errors, "abcdefghijklmno", True),
    ("port-name-digits-and-letter", port_name_errors, "h2c-8080", True),
    ("port-name-underscore", port_name_errors, "my_port", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("check", "value", "valid"), [c[1:] for c in NAME_RULES], ids=[c[0] for c in NAME_RULES]
)
def test_name_format_rules(check, value, valid):
    assert (check(value) == []) is valid
