"""API defaults (SetDefaults_NetworkPolicy, SetDefaults_NetworkPolicyPort in
pkg/apis/networking/v1/defaults.go) and the normalisation into the model's variants."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.policy.addresses import parse_cidr_sloppy
from policyctl.manifests.defaults import default_policy_types
from policyctl.policy.diagnostics import Severity
from policyctl.policy.model import (
    Direction,
    IPBlockPeer,
    LabelSelector,
    Operator,
    OwnNamespace,
    PodPeer,
    PortMatch,
    Protocol,
    Requirement,
    SelectedNamespaces,
)
from tests.manifests.test_validation import SPEC_FIRST_LINE, parse, policy_text

INGRESS = frozenset({Direction.INGRESS})
BOTH = frozenset({Direction.INGRESS, Direction.EGRESS})


def accepted(spec: str):
    policy, diagnostics = parse(policy_text(spec))
    assert policy is not None, diagnostics
    return policy, diagnostics


POLICY_TYPE_CASES = [
    # "Any policy that does not specify policyTypes implies at least Ingress".
    ("absent-no-egress-is-ingress", "podSelector: {}", INGRESS,
     ("spec.policyTypes defaulted to [Ingress] (spec.egress has no rules)",)),
    # Egress is added only when len(spec.egress) != 0: an empty list does not isolate egress.
    ("absent-empty-egress-is-ingress", "podSelector: {}\negress: []", INGRESS,
     ("spec.policyTypes defaulted to [Ingress] (spec.egress has no rules)",)),
    ("absent-egress-rule-adds-egress", "podSelector: {}\negress: [{}]", BOTH,
     ("spec.policyTypes defaulted to [Ingress, Egress] (spec.egress has rules)",)),
    # An empty list is "not specified" (len == 0).
    ("empty-list-is-defaulted", "podSelector: {}\npolicyTypes: []\negress: [{}]", BOTH,
     ("spec.policyTypes defaulted to [Ingress, Egress] (spec.egress has rules)",)),
    # Written types are kept as written.
    ("egress-only-is-kept", "podSelector: {}\npolicyTypes: [Egress]", frozenset({Direction.EGRESS}), ()),
    ("ingress-with-egress-rules-is-kept", "podSelector: {}\npolicyTypes: [Ingress]\negress: [{}]",
     INGRESS, ()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "types", "defaults"),
    [c[1:] for c in POLICY_TYPE_CASES],
    ids=[c[0] for c in POLICY_TYPE_CASES],
)
def test_policy_types_default(spec, types, defaults):
    policy, _ = accepted(spec)
    assert policy.policy_types == types
    assert policy.defaults_applied == defaults


@given(
    written=st.lists(st.sampled_from(["Ingress", "Egress"]), max_size=2),
    egress_rules=st.integers(min_value=0, max_value=3),
)
@settings(max_examples=100)
def test_defaulted_policy_types_always_hold_ingress_and_egress_only_with_rules(
    written, egress_rules
):
    spec = {"policyTypes": written, "egress": [{}] * egress_rules}
    types, note = default_policy_types(spec)
    if written:
        assert types == frozenset(Direction(t) for t in written) and note is None
    else:
        assert Direction.INGRESS in types
        assert (Direction.EGRESS in types) == (egress_rules > 0)


def test_port_without_protocol_defaults_to_tcp_and_says_so():
    """"If not specified, this field defaults to TCP"."""
    policy, _ = accepted(
        "podSelector: {}\ningress:\n- ports: [{port: 80}, {port: 53, protocol: UDP}]\n"
        "egress:\n- ports: [{}]"
    )
    assert policy.ingress[0].ports == (
        PortMatch(Protocol.TCP, 80),
        PortMatch(Protocol.UDP, 53),
    )
    assert policy.egress[0].ports == (PortMatch(Protocol.TCP, None),)
    assert policy.defaults_applied == (
        "spec.policyTypes defaulted to [Ingress, Egress] (spec.egress has rules)",
        "spec.ingress[0].ports[0].protocol defaulted to TCP",
        "spec.egress[0].ports[0].protocol defaulted to TCP",
    )


def test_port_range_and_named_port_are_kept():
    policy, _ = accepted(
        "podSelector: {}\ningress:\n- ports: [{port: 8000, endPort: 9000, protocol: SCTP}, {port: http}]"
    )
    assert policy.ingress[0].ports == (
        PortMatch(Protocol.SCTP, 8000, 9000),
        PortMatch(Protocol.TCP, "http"),
    )


ALL = LabelSelector()
WEB = LabelSelector.of([Requirement("app", Operator.IN, ("web",), True)])
PEER_CASES = [
    # "podSelector ... selects particular Pods in the same namespace as the NetworkPolicy".
    ("pod-selector-only-is-own-namespace", "{podSelector: {matchLabels: {app: web}}}",
     PodPeer(OwnNamespace("x"), WEB)),
    # namespaceSelector alone "selects all Pods in the Namespaces selected".
    ("namespace-selector-only-is-all-pods", "{namespaceSelector: {}}",
     PodPeer(SelectedNamespaces(ALL), ALL)),
    # Both: "selects particular Pods within particular Namespaces".
    ("both-selectors", "{namespaceSelector: {matchLabels: {app: web}}, podSelector: {}}",
     PodPeer(SelectedNamespaces(WEB), ALL)),
    ("null-namespace-selector-is-absent", "{podSelector: {}, namespaceSelector: null}",
     PodPeer(OwnNamespace("x"), ALL)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("peer", "expected"), [c[1:] for c in PEER_CASES], ids=[c[0] for c in PEER_CASES]
)
def test_peers_normalise_to_model_variants(peer, expected):
    policy, _ = accepted(f"podSelector: {{}}\ningress:\n- from: [{peer}]")
    assert policy.ingress[0].peers == (expected,)


@pytest.mark.parametrize(
    "rule",
    ["{}", "{from: [], ports: []}", "{from: null, ports: null}"],
    ids=["missing", "empty", "null"],
)
def test_missing_or_empty_peers_and_ports_match_everything(rule):
    """"If this field is empty or missing, this rule matches all sources" (and ports)."""
    policy, _ = accepted(f"podSelector: {{}}\ningress: [{rule}]")
    (only,) = policy.ingress
    assert only.peers == () and only.ports == ()
    assert only.any_peer and only.any_port


def test_cidr_with_host_bits_is_its_network_with_a_warning():
    policy, diagnostics = accepted(
        "podSelector: {}\ningress:\n- from:\n  - ipBlock: {cidr: 10.0.0.7/4}"
    )
    (peer,) = policy.ingress[0].peers
    assert peer == IPBlockPeer(ipaddress.ip_network("0.0.0.0/4"))
    assert peer.written == "10.0.0.7/4"
    (warning,) = diagnostics
    assert warning.severity is Severity.WARNING and warning.code == "cidr-host-bits"
    assert warning.field == "spec.ingress[0].from[0].ipBlock.cidr"
    assert warning.line == SPEC_FIRST_LINE + 3
    assert policy.warnings == (f"{warning.field}: {warning.message}",)


def test_cidr_with_leading_zeros_reads_decimal_with_a_warning():
    """ParseCIDRSloppy ignores leading zeros (decimal, not octal): 010.0.0.0/8 is 10.0.0.0/8."""
    policy, diagnostics = accepted(
        "podSelector: {}\negress:\n- to: [{ipBlock: {cidr: 010.000.0.0/08}}]"
    )
    assert policy.egress[0].peers[0].cidr == ipaddress.ip_network("10.0.0.0/8")
    assert [d.code for d in diagnostics] == ["cidr-non-standard"]


def test_excepts_are_networks_sorted_and_deduplicated():
    policy, diagnostics = accepted(
        "podSelector: {}\ningress:\n- from:\n"
        "  - ipBlock: {cidr: 10.0.0.0/8, except: [10.9.0.0/16, 10.1.2.3/16, 10.9.0.0/16]}"
    )
    (peer,) = policy.ingress[0].peers
    assert peer.excepts == (
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("10.9.0.0/16"),
    )
    assert [(d.field, d.code) for d in diagnostics] == [
        ("spec.ingress[0].from[0].ipBlock.except[1]", "cidr-host-bits")
    ]


def test_rules_keep_their_index_and_line():
    policy, _ = accepted("podSelector: {}\ningress:\n- {}\n- from: [{podSelector: {}}]")
    assert [(r.index, r.provenance.line) for r in policy.ingress] == [
        (0, SPEC_FIRST_LINE + 2),
        (1, SPEC_FIRST_LINE + 3),
    ]


@given(
    address=st.ip_addresses(v=4),
    prefix=st.integers(min_value=0, max_value=32),
    pad=st.integers(min_value=0, max_value=2),
)
@settings(max_examples=150)
def test_sloppy_cidr_is_the_masked_network_whatever_the_zero_padding(address, prefix, pad):
    """Host bits are masked off and leading zeros never change the value (no octal)."""
    padded = ".".join("0" * pad + octet for octet in str(address).split("."))
    parsed = parse_cidr_sloppy(f"{padded}/{prefix}")
    assert parsed is not None
    assert parsed.network == ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    assert parsed.address == address
    assert parsed.non_standard == (pad > 0)
