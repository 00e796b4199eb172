"""The API server's validation, transcribed as tables from upstream: every row names the
upstream function it pins and, where the case comes from an upstream unit test, that test.

Sources (read from upstream, not from running it):

* kubernetes/kubernetes ``pkg/apis/networking/validation/validation.go``: ``ValidateNetworkPolicy``,
  ``ValidateNetworkPolicySpec``, ``ValidateNetworkPolicyPort``, ``ValidateNetworkPolicyPeer``,
  ``ValidateIPBlock``; cases of ``validation_test.go`` ``TestValidateNetworkPolicy``.
* kubernetes/apimachinery ``pkg/apis/meta/v1/validation/validation.go``: ``ValidateLabelSelector``,
  ``ValidateLabelSelectorRequirement``, ``ValidateLabels``; ``pkg/api/validation/objectmeta.go``:
  ``ValidateObjectMetaAccessor``, ``ValidateAnnotations`` (``TotalAnnotationSizeLimitB``),
  ``ValidateFinalizers``; ``pkg/api/validation/generic.go``: ``NameIsDNSSubdomain``,
  ``NameIsDNSLabel``; ``pkg/api/validate/content`` ``IsLabelKey`` (``IsQualifiedName``),
  ``IsLabelValue`` (``IsValidLabelValue``), ``IsDNS1123Label``, ``IsDNS1123Subdomain`` with the
  cases of ``kube_test.go`` and ``dns_test.go``; ``pkg/util/validation/ip.go``:
  ``IsValidCIDRForLegacyField`` / ``IsValidIPForLegacyField`` with the ``legacyErr`` column of
  ``ip_test.go`` (``StrictIPCIDRValidation`` is alpha and off).
* kubernetes/utils ``internal/third_party/forked/golang/net/ip.go``: ``ParseCIDR`` /
  ``ParseIP`` (``ParseCIDRSloppy`` / ``ParseIPSloppy``), with ``ip_test.go``
  ``parseIPTests`` / ``parseCIDRTests``; Go's ``net.IPNet.Contains`` and ``IPMask.Size``.

The values a regular expression gets wrong in Python (``$`` matches before a final newline;
Go's does not) are rows of their own.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.policy.addresses import parse_cidr_sloppy, parse_ip_sloppy
from policyctl.policy.diagnostics import Severity
from policyctl.manifests.loader import parse_network_policy
from policyctl.policy.model import IPBlockPeer
from policyctl.manifests.names import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    generated_name_prefix_errors,
    label_value_errors,
    port_name_errors,
    qualified_name_errors,
)
from policyctl.manifests.yamlsource import read_documents

KIB = 1 << 10

# ---------------------------------------------------------------------------------------------
# String formats: (upstream function [upstream test], check, value, valid)

LABEL_KEY = "content.IsLabelKey = IsQualifiedName [kube_test.go TestIsLabelKey]"
LABEL_VALUE = "content.IsLabelValue = IsValidLabelValue [kube_test.go TestIsLabelValue]"
DNS_LABEL = "content.IsDNS1123Label [dns_test.go TestIsDNS1123Label]"
DNS_SUBDOMAIN = "content.IsDNS1123Subdomain [dns_test.go TestIsDNS1123Subdomain]"
GO_ANCHORS = "Go regexp '^...$' matches the whole string (Python's '$' also before a final newline)"

FORMAT_ROWS: list[tuple[str, Callable[[str], list[str]], str, bool]] = [
    *[(LABEL_KEY, qualified_name_errors, v, True) for v in [
        "simple", "now-with-dashes", "1-starts-with-num", "1234", "simple/simple", "now-with-dashes/simple",
        "now-with-dashes/now-with-dashes", "now.with.dots/simple", "now-with.dashes-and.dots/simple",
        "1-num.2-num/3-num", "1234/5678", "1.2.3.4/5678", "Uppercase_Is_OK_123", "example.com/Uppercase_Is_OK_123",
        "requests.storage-foo", "a" * 63, "a" * 253 + "/" + "b" * 63,
    ]],
    *[(LABEL_KEY, qualified_name_errors, v, False) for v in [
        "nospecialchars%^=@", "cantendwithadash-", "-cantstartwithadash-", "only/one/slash", "Example.com/abc",
        "example_com/abc", "example.com/", "/simple", "a" * 64, "a" * 254 + "/abc",
    ]],
    *[(LABEL_VALUE, label_value_errors, v, True) for v in [
        "simple", "now-with-dashes", "1-starts-with-num", "end-with-num-1", "1234", "a" * 63, "",
    ]],
    *[(LABEL_VALUE, label_value_errors, v, False) for v in [
        "nospecialchars%^=@", "Tama-nui-te-rā.is.Māori.sun", "\\backslashes\\are\\bad", "-starts-with-dash",
        "ends-with-dash-", ".starts.with.dot", "ends.with.dot.", "a" * 64,
    ]],
    *[(DNS_LABEL, dns1123_label_errors, v, True) for v in [
        "a", "ab", "abc", "a1", "a-1", "a--1--2--b", "0", "01", "012", "1a", "1-a", "1--a--b--2", "a" * 63,
    ]],
    *[(DNS_LABEL, dns1123_label_errors, v, False) for v in [
        "", "A", "ABC", "aBc", "A1", "A-1", "1-A", "-", "a-", "-a", "1-", "-1", "_", "a_", "_a", "a_b", "1_", "_1",
        "1_2", ".", "a.", ".a", "a.b", "1.", ".1", "1.2", " ", "a ", " a", "a b", "1 ", " 1", "1 2", "a" * 64,
    ]],
    *[(DNS_SUBDOMAIN, dns1123_subdomain_errors, v, True) for v in [
        "a", "ab", "abc", "a1", "a-1", "a--1--2--b", "0", "01", "012", "1a", "1-a", "1--a--b--2", "a.a", "ab.a",
        "abc.a", "a1.a", "a-1.a", "a--1--2--b.a", "a.1", "ab.1", "abc.1", "a1.1", "a-1.1", "a--1--2--b.1", "0.a",
        "01.a", "012.a", "1a.a", "1-a.a", "0.1", "01.1", "012.1", "1a.1", "1-a.1", "1--a--b--2.1", "a.b.c.d.e",
        "aa.bb.cc.dd.ee", "1.2.3.4.5", "11.22.33.44.55", "a" * 253,
    ]],
    *[(DNS_SUBDOMAIN, dns1123_subdomain_errors, v, False) for v in [
        "", "A", "ABC", "aBc", "A1", "A-1", "1-A", "-", "a-", "-a", "1-", "-1", "_", "a_", "_a", "a_b", "1_", "_1",
        "1_2", ".", "a.", ".a", "a..b", "1.", ".1", "1..2", " ", "a ", " a", "a b", "1 ", " 1", "1 2", "A.a", "aB.a",
        "ab.A", "A1.a", "a1.A", "A.1", "aB.1", "A1.1", "1A.1", "0.A", "01.A", "012.A", "1A.a", "1a.A", "A.B.C.D.E",
        "AA.BB.CC.DD.EE", "a.B.c.d.e", "aa.bB.cc.dd.ee", "a@b", "a,b", "a;b", "a:b", "a%b", "a?b", "a$b", "a" * 254,
    ]],
    (f"{LABEL_KEY}; {GO_ANCHORS}", qualified_name_errors, "app\n", False),
    (f"{LABEL_KEY}; {GO_ANCHORS}", qualified_name_errors, "example.com\n/app", False),
    (f"{LABEL_VALUE}; {GO_ANCHORS}", label_value_errors, "web\n", False),
    (f"{DNS_LABEL}; {GO_ANCHORS}", dns1123_label_errors, "x\n", False),
    (f"{DNS_SUBDOMAIN}; {GO_ANCHORS}", dns1123_subdomain_errors, "p\n", False),
    ("IsValidPortName; " + GO_ANCHORS, port_name_errors, "http\n", False),
    # Go's len() counts bytes: 32 two-byte characters are 64 bytes (and not alphanumeric either).
    ("content.IsLabelValue: MaxLenError counts bytes", label_value_errors, "é" * 32, False),
    # NameIsDNSSubdomain(name, prefix=true) -> maskTrailingDash.
    ("generic.go NameIsDNSSubdomain(prefix=true)", generated_name_prefix_errors, "web-", True),
    ("generic.go NameIsDNSSubdomain(prefix=true)", generated_name_prefix_errors, "Web-", False),
    ("generic.go NameIsDNSSubdomain(prefix=true)", generated_name_prefix_errors, "web--", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("upstream", "check", "value", "valid"),
    FORMAT_ROWS,
    ids=[f"{c.__name__}-{v[:20]!r}-{'ok' if ok else 'bad'}" for _, c, v, ok in FORMAT_ROWS],
)
def test_string_formats_match_upstream(upstream: str, check: Callable[[str], list[str]], value: str, valid: bool):
    assert (check(value) == []) is valid, upstream


def test_messages_are_upstream_words():
    """content.RegexError / MaxLenError wording, as kubectl users see it."""
    assert label_value_errors("a" * 64) == ["must be no more than 63 bytes"]
    assert dns1123_label_errors("a.b") == ["must not contain dots"]
    assert qualified_name_errors("/a") == ["prefix part must be non-empty"]
    assert dns1123_subdomain_errors("A") == [
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    ]


# ---------------------------------------------------------------------------------------------
# CIDR and IP parsing: (upstream function [upstream test], value, the network read or None)

PARSE_CIDR = "ParseCIDRSloppy [forked ip_test.go parseCIDRTests]"
LEGACY_CIDR = "IsValidCIDRForLegacyField strict=false [ip_test.go TestIsValidCIDR legacyErr]"

CIDR_ROWS: list[tuple[str, str, str | None]] = [
    (PARSE_CIDR, "135.104.0.0/32", "135.104.0.0/32"),
    (PARSE_CIDR, "0.0.0.0/24", "0.0.0.0/24"),
    (PARSE_CIDR, "135.104.0.0/24", "135.104.0.0/24"),
    (PARSE_CIDR, "135.104.0.1/32", "135.104.0.1/32"),
    (PARSE_CIDR, "135.104.0.1/24", "135.104.0.0/24"),
    (PARSE_CIDR, "127.000.000.001/32", "127.0.0.1/32"),
    (PARSE_CIDR, "127.007.008.009/32", "127.7.8.9/32"),
    (PARSE_CIDR, "127.010.020.030/32", "127.10.20.30/32"),
    (PARSE_CIDR, "::1/128", "::1/128"),
    (PARSE_CIDR, "abcd:2345::/127", "abcd:2345::/127"),
    (PARSE_CIDR, "abcd:2345::/65", "abcd:2345::/65"),
    (PARSE_CIDR, "abcd:2345::/64", "abcd:2345::/64"),
    (PARSE_CIDR, "abcd:2345::/63", "abcd:2345::/63"),
    (PARSE_CIDR, "abcd:2345::/33", "abcd:2345::/33"),
    (PARSE_CIDR, "abcd:2345::/32", "abcd:2345::/32"),
    (PARSE_CIDR, "abcd:2344::/31", "abcd:2344::/31"),
    (PARSE_CIDR, "abcd:2300::/24", "abcd:2300::/24"),
    (PARSE_CIDR, "abcd:2345::/24", "abcd:2300::/24"),
    (PARSE_CIDR, "2001:DB8::/48", "2001:db8::/48"),
    (PARSE_CIDR, "2001:DB8::1/48", "2001:db8::/48"),
    (PARSE_CIDR, "192.168.1.1/255.255.255.0", None),
    (PARSE_CIDR, "192.168.1.1/35", None),
    (PARSE_CIDR, "2001:db8::1/-1", None),
    (PARSE_CIDR, "2001:db8::1/-0", None),
    (PARSE_CIDR, "-0.0.0.0/32", None),
    (PARSE_CIDR, "0.-1.0.0/32", None),
    (PARSE_CIDR, "0.0.-2.0/32", None),
    (PARSE_CIDR, "0.0.0.-3/32", None),
    (PARSE_CIDR, "0.0.0.0/-0", None),
    (PARSE_CIDR, "", None),
    (LEGACY_CIDR, "1.0.0.0/8", "1.0.0.0/8"),
    (LEGACY_CIDR, "0.0.0.0/0", "0.0.0.0/0"),
    (LEGACY_CIDR, "1.1.1.1/32", "1.1.1.1/32"),
    (LEGACY_CIDR, "2001:4860:4860::/48", "2001:4860:4860::/48"),
    (LEGACY_CIDR, "::/0", "::/0"),
    (LEGACY_CIDR, "2a00:79e0:2:0::/64", "2a00:79e0:2::/64"),
    (LEGACY_CIDR, "1.1.01.0/24", "1.1.1.0/24"),
    # IPv4-mapped with an IPv4-sized prefix: the mask keeps none of ::ffff, Go's IPNet is ::/24.
    (LEGACY_CIDR, "::ffff:1.1.1.0/24", "::/24"),
    (LEGACY_CIDR, "::ffff:1.1.1.0/120", "1.1.1.0/24"),
    (LEGACY_CIDR, "1.2.3.4/24", "1.2.3.0/24"),
    (LEGACY_CIDR, "2001:db8::1/64", "2001:db8::/64"),
    (LEGACY_CIDR, "192.168.0.0/016", "192.168.0.0/16"),
    (LEGACY_CIDR, "aaaaaaa", None),
    (LEGACY_CIDR, "1.2.3.4", None),
    (LEGACY_CIDR, "192.168.0.1/healthz", None),
    (LEGACY_CIDR, "192.168.0.1/0/99", None),
    (LEGACY_CIDR, "192.168.0.0/-16", None),
    (LEGACY_CIDR, "192.168.0.0/+16", None),
    # Go compares every byte: no trailing newline, space, zone, or unicode digit.
    (f"{PARSE_CIDR}: dtoi reads to the end", "10.0.0.0/8\n", None),
    (f"{PARSE_CIDR}: parseIPv4 reads to the end", "10.0.0.0\n/8", None),
    (f"{PARSE_CIDR}: parseIPv6 reads to the end", "fd00::\n/8", None),
    (f"{PARSE_CIDR}: no space", " 10.0.0.0/8", None),
    (f"{PARSE_CIDR}: dtoi is ASCII", "10.0.0.0/\u0668", None),
    (f"{PARSE_CIDR}: parseIPv6 has no zone", "fe80::1%eth0/64", None),
    # xtoi takes any number of leading zeros in an IPv6 group; parseIPv6 reads an embedded
    # IPv4 part with parseIPv4, leading zeros included.
    (f"{PARSE_CIDR}: xtoi", "00001::/16", "1::/16"),
    (f"{PARSE_CIDR}: xtoi", "0:0:0:0:000000:ffff:127.1.2.3/128", "127.1.2.3/32"),
    (f"{PARSE_CIDR}: parseIPv6 -> parseIPv4", "::ffff:010.0.0.0/104", "10.0.0.0/8"),
    (f"{PARSE_CIDR}: xtoi stops at 0xFFFFFF", "1234567::/16", None),
    (f"{PARSE_CIDR}: parseIPv6 group > 0xFFFF", "10000::/16", None),
    (f"{PARSE_CIDR}: dtoi stops at 0xFFFFFF", "10.0.0.0/16777216", None),
    (f"{PARSE_CIDR}: dtoi, leading zeros", "10.0.0.0/" + "0" * 5000 + "8", "10.0.0.0/8"),
    (f"{PARSE_CIDR}: a number too long for Python's int()", "10.0.0.0/" + "9" * 5000, None),
    (f"{PARSE_CIDR}: parseIPv6 ellipsis is one group or more", "1:2:3:4:5:6::1.2.3.4/128", None),
    (f"{PARSE_CIDR}: parseIPv6", "a1:a2:a3:a4::b1:b2:b3:b4/64", None),
    # IPv4-mapped: Go's IPNet.Contains reads it through To4() and the last 32 mask bits.
    (f"{PARSE_CIDR}; IPNet.Contains", "::ffff:10.0.0.0/103", "10.0.0.0/7"),
]  # fmt: skip


@pytest.mark.parametrize(("upstream", "value", "network"), CIDR_ROWS, ids=[f"{v[:40]!r}" for _, v, _ in CIDR_ROWS])
def test_cidrs_parse_as_the_api_server_parses_them(upstream: str, value: str, network: str | None):
    parsed = parse_cidr_sloppy(value)
    assert (None if parsed is None else str(parsed.network)) == network, upstream


@pytest.mark.parametrize(
    ("value", "prefix_length", "non_standard"),
    [
        # IPMask.Size() of the written mask; non_standard as GetWarningsForCIDR (netip.ParsePrefix fails or Is4In6).
        ("10.0.0.0/8", 8, False),
        ("::ffff:10.0.0.0/104", 104, True),
        ("010.0.0.0/8", 8, True),
        ("10.0.0.0/08", 8, True),
        ("00001::/16", 16, True),
        ("2001:DB8::/48", 48, False),
        ("::1.2.3.4/128", 128, False),
    ],
)
def test_mask_length_is_the_one_written_and_non_standard_forms_are_marked(value, prefix_length, non_standard):
    parsed = parse_cidr_sloppy(value)
    assert parsed is not None
    assert (parsed.prefix_length, parsed.non_standard) == (prefix_length, non_standard)


PARSE_IP = "ParseIPSloppy [forked ip_test.go parseIPTests]"
LEGACY_IP = "IsValidIPForLegacyField strict=false [ip_test.go TestIsValidIP legacyErr]"

IP_ROWS: list[tuple[str, object, str | None]] = [
    (PARSE_IP, "127.0.1.2", "127.0.1.2"),
    (PARSE_IP, "127.0.0.1", "127.0.0.1"),
    (PARSE_IP, "127.001.002.003", "127.1.2.3"),
    (PARSE_IP, "127.007.008.009", "127.7.8.9"),
    (PARSE_IP, "127.010.020.030", "127.10.20.30"),
    (PARSE_IP, "::ffff:127.1.2.3", "127.1.2.3"),
    (PARSE_IP, "::ffff:127.001.002.003", "127.1.2.3"),
    (PARSE_IP, "::ffff:127.007.008.009", "127.7.8.9"),
    (PARSE_IP, "::ffff:127.010.020.030", "127.10.20.30"),
    (PARSE_IP, "::ffff:7f01:0203", "127.1.2.3"),
    (PARSE_IP, "0:0:0:0:0000:ffff:127.1.2.3", "127.1.2.3"),
    (PARSE_IP, "0:0:0:0:000000:ffff:127.1.2.3", "127.1.2.3"),
    (PARSE_IP, "0:0:0:0::ffff:127.1.2.3", "127.1.2.3"),
    (PARSE_IP, "2001:4860:0:2001::68", "2001:4860:0:2001::68"),
    (PARSE_IP, "2001:4860:0000:2001:0000:0000:0000:0068", "2001:4860:0:2001::68"),
    (PARSE_IP, "-0.0.0.0", None),
    (PARSE_IP, "0.-1.0.0", None),
    (PARSE_IP, "0.0.-2.0", None),
    (PARSE_IP, "0.0.0.-3", None),
    (PARSE_IP, "127.0.0.256", None),
    (PARSE_IP, "abc", None),
    (PARSE_IP, "123:", None),
    (PARSE_IP, "fe80::1%lo0", None),
    (PARSE_IP, "fe80::1%911", None),
    (PARSE_IP, "", None),
    (PARSE_IP, "a1:a2:a3:a4::b1:b2:b3:b4", None),
    (LEGACY_IP, "1.1.1.01", "1.1.1.1"),
    (LEGACY_IP, "0001:002:03:4::", "1:2:3:4::"),
    (LEGACY_IP, "myhost.mydomain", None),
    (LEGACY_IP, "1.2.3.0/24", None),
    (LEGACY_IP, "1.2.3.400", None),
    (LEGACY_IP, "2001:db8::10005", None),
    (LEGACY_IP, "1.2.3.4:80", None),
    (LEGACY_IP, "[2001:db8::1]", None),
    (LEGACY_IP, "[2001:db8::1]:80", None),
    (LEGACY_IP, "example.com:80", None),
    (LEGACY_IP, "1234::abcd%eth0", None),
    (LEGACY_IP, "169.254.0.0%eth0", None),
    (f"{PARSE_IP}: parseIPv4 reads to the end", "10.0.0.1\n", None),
    ("IP fields decode into a Go string: anything else is not an address", 5, None),
]  # fmt: skip


@pytest.mark.parametrize(("upstream", "value", "address"), IP_ROWS, ids=[f"{v!r}"[:40] for _, v, _ in IP_ROWS])
def test_ips_parse_as_the_api_server_parses_them(upstream: str, value: object, address: str | None):
    parsed = parse_ip_sloppy(value)
    assert (None if parsed is None else str(parsed.address)) == address, upstream


# ---------------------------------------------------------------------------------------------
# Whole NetworkPolicies through the loader: (name, upstream function [upstream case], manifest
# changes, expected {(field, code)}; empty means the API server accepts it).


def manifest(spec: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    """``makeValidNetworkPolicy`` of the upstream test: foo in bar, podSelector a=b."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "foo", "namespace": "bar", **metadata},
        "spec": {"podSelector": {"matchLabels": {"a": "b"}}, **(spec or {})},
    }


def ingress_from(*peers: dict[str, Any]) -> dict[str, Any]:
    return {"ingress": [{"from": list(peers)}]}


def egress_to(*peers: dict[str, Any], ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"to": list(peers)}
    if ports is not None:
        rule["ports"] = ports
    return {"egress": [rule]}


def ip_block(cidr: str, *excepts: str) -> dict[str, Any]:
    block: dict[str, Any] = {"cidr": cidr}
    if excepts:
        block["except"] = list(excepts)
    return {"ipBlock": block}


def validate(value: dict[str, Any]):
    documents, reading = read_documents(json.dumps(value), source="np.json")
    assert reading == []
    return parse_network_policy(documents[0].value, document=documents[0])


def errors_of(value: dict[str, Any]) -> set[tuple[str, str]]:
    policy, diagnostics = validate(value)
    found = {(d.field, d.code) for d in diagnostics if d.severity is Severity.ERROR}
    assert (policy is None) == bool(found), "a policy is returned exactly when it is valid"
    return found


NP = "TestValidateNetworkPolicy"
PEER = "ValidateNetworkPolicyPeer"
PORT = "ValidateNetworkPolicyPort"
IPB = "ValidateIPBlock"
NS_SEL = {"namespaceSelector": {"matchLabels": {"c": "d"}}}
POD_SEL = {"podSelector": {"matchLabels": {"c": "d"}}}
V4_BLOCK = ip_block("192.168.0.0/16", "192.168.3.0/24", "192.168.4.0/24")
V6_BLOCK = ip_block("fd00:192:168::/48", "fd00:192:168:3::/64", "fd00:192:168:4::/64")
INVALID_SELECTOR = {"NoUppercaseOrSpecialCharsLike=Equals": "b"}
INGRESS_PEER = "spec.ingress[0].from[0]"
EGRESS_PEER = "spec.egress[0].to[0]"
INGRESS_BLOCK = f"{INGRESS_PEER}.ipBlock"
PORTS = [{"port": 80}, {"protocol": "TCP"}, {"protocol": "TCP", "port": 443}, {"protocol": "UDP", "port": "dns"},
         {"protocol": "SCTP", "port": 7777}]  # fmt: skip

POLICY_ROWS: list[tuple[str, str, dict[str, Any], set[tuple[str, str]]]] = [
    # successCases of TestValidateNetworkPolicy, in order.
    ("ingress-empty-first-element", f"{NP} success 0", manifest({"ingress": [{}]}), set()),
    ("ingress-from-empty-ports-empty", f"{NP} success 1", manifest({"ingress": [{"ports": [{}]}]}), set()),
    ("ingress-ports", f"{NP} success 2", manifest({"ingress": [{"ports": PORTS}]}), set()),
    ("ingress-from-pod-selector", f"{NP} success 3", manifest(ingress_from(POD_SEL)), set()),
    ("ingress-from-namespace-selector", f"{NP} success 4", manifest(ingress_from(NS_SEL)), set()),
    ("ingress-from-pod-and-namespace-selector", f"{NP} success 5",
     manifest(ingress_from({"podSelector": {"matchLabels": {"e": "f"}}, **NS_SEL})), set()),
    ("egress-namespace-ingress-ipv4-block", f"{NP} success 6",
     manifest({**egress_to(NS_SEL), **ingress_from(V4_BLOCK)}), set()),
    ("ingress-ipv4-block", f"{NP} success 7", manifest(ingress_from(V4_BLOCK)), set()),
    ("egress-ipv4-block-egress-type", f"{NP} success 8", manifest({**egress_to(V4_BLOCK), "policyTypes": ["Egress"]}),
     set()),
    ("egress-ipv4-block-both-types", f"{NP} success 9",
     manifest({**egress_to(V4_BLOCK), "policyTypes": ["Ingress", "Egress"]}), set()),
    ("egress-ports", f"{NP} success 10", manifest({"egress": [{"ports": PORTS}]}), set()),
    ("egress-namespace-ingress-ipv6-block", f"{NP} success 11",
     manifest({**egress_to(NS_SEL), **ingress_from(V6_BLOCK)}), set()),
    ("ingress-ipv6-block", f"{NP} success 12", manifest(ingress_from(V6_BLOCK)), set()),
    ("egress-ipv6-block-egress-type", f"{NP} success 13", manifest({**egress_to(V6_BLOCK), "policyTypes": ["Egress"]}),
     set()),
    ("egress-ipv6-block-both-types", f"{NP} success 14",
     manifest({**egress_to(V6_BLOCK), "policyTypes": ["Ingress", "Egress"]}), set()),
    ("egress-port-range", f"{NP} success 15",
     manifest({"egress": [{"ports": [{"port": 32000, "endPort": 32768}, {"protocol": "UDP", "port": "dns"}]}]}), set()),
    ("port-ranges-both-directions", f"{NP} success 16",
     manifest({**egress_to(NS_SEL, ports=[{"port": 30000, "endPort": 32768}, {"port": 32000, "endPort": 32768}]),
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"e": "f"}}}],
                            "ports": [{"protocol": "TCP", "port": 32768, "endPort": 32768}]}]}), set()),
    # errorCases of TestValidateNetworkPolicy (upstream asserts only "some error"; the field is ours to pin).
    ("namespace-selector-and-ip-block", f"{PEER} [{NP} 'namespaceSelector and ipBlock']",
     manifest(ingress_from({**NS_SEL, **V4_BLOCK})), {(INGRESS_PEER, "ipblock-with-selector")}),
    ("pod-selector-and-ip-block", f"{PEER} [{NP} 'podSelector and ipBlock']",
     manifest(egress_to({**POD_SEL, **V4_BLOCK})), {(EGRESS_PEER, "ipblock-with-selector")}),
    ("missing-from-and-to-type", f"{PEER} [{NP} 'missing from and to type']",
     manifest({**ingress_from({}), **egress_to({})}), {(INGRESS_PEER, "empty-peer"), (EGRESS_PEER, "empty-peer")}),
    ("invalid-spec-pod-selector", f"ValidateLabelSelector [{NP} 'invalid spec.podSelector']",
     manifest({"podSelector": {"matchLabels": INVALID_SELECTOR}}),
     {("spec.podSelector.matchLabels.NoUppercaseOrSpecialCharsLike=Equals", "invalid-label-key")}),
    ("invalid-ingress-protocol", f"{PORT} [{NP} 'invalid ingress.ports.protocol']",
     manifest({"ingress": [{"ports": [{"protocol": "ICMP", "port": 80}]}]}),
     {("spec.ingress[0].ports[0].protocol", "invalid-protocol")}),
    ("invalid-ingress-port-int", f"{PORT} IsValidPortNum [{NP} 'invalid ingress.ports.port (int)']",
     manifest({"ingress": [{"ports": [{"protocol": "TCP", "port": 123456789}]}]}),
     {("spec.ingress[0].ports[0].port", "invalid-port")}),
    ("invalid-ingress-port-str", f"{PORT} IsValidPortName [{NP} 'invalid ingress.ports.port (str)']",
     manifest({"ingress": [{"ports": [{"protocol": "TCP", "port": "!@#$"}]}]}),
     {("spec.ingress[0].ports[0].port", "invalid-port-name")}),
    ("invalid-ingress-from-pod-selector", f"ValidateLabelSelector [{NP} 'invalid ingress.from.podSelector']",
     manifest(ingress_from({"podSelector": {"matchLabels": INVALID_SELECTOR}})),
     {(f"{INGRESS_PEER}.podSelector.matchLabels.NoUppercaseOrSpecialCharsLike=Equals", "invalid-label-key")}),
    ("invalid-egress-to-pod-selector", f"ValidateLabelSelector [{NP} 'invalid egress.to.podSelector']",
     manifest(egress_to({"podSelector": {"matchLabels": INVALID_SELECTOR}})),
     {(f"{EGRESS_PEER}.podSelector.matchLabels.NoUppercaseOrSpecialCharsLike=Equals", "invalid-label-key")}),
    ("invalid-egress-protocol", f"{PORT} [{NP} 'invalid egress.ports.protocol']",
     manifest({"egress": [{"ports": [{"protocol": "ICMP", "port": 80}]}]}),
     {("spec.egress[0].ports[0].protocol", "invalid-protocol")}),
    ("invalid-egress-port-int", f"{PORT} [{NP} 'invalid egress.ports.port (int)']",
     manifest({"egress": [{"ports": [{"protocol": "TCP", "port": 123456789}]}]}),
     {("spec.egress[0].ports[0].port", "invalid-port")}),
    ("invalid-egress-port-str", f"{PORT} [{NP} 'invalid egress.ports.port (str)']",
     manifest({"egress": [{"ports": [{"protocol": "TCP", "port": "!@#$"}]}]}),
     {("spec.egress[0].ports[0].port", "invalid-port-name")}),
    ("invalid-ingress-from-namespace-selector",
     f"ValidateLabelSelector [{NP} 'invalid ingress.from.namespaceSelector']",
     manifest(ingress_from({"namespaceSelector": {"matchLabels": INVALID_SELECTOR}})),
     {(f"{INGRESS_PEER}.namespaceSelector.matchLabels.NoUppercaseOrSpecialCharsLike=Equals", "invalid-label-key")}),
    ("missing-cidr", f"{IPB} Required [{NP} 'missing cidr field']",
     manifest(ingress_from(ip_block("", "192.168.3.0/24"))), {(f"{INGRESS_BLOCK}.cidr", "missing-cidr")}),
    ("invalid-cidr-format", f"{IPB} IsValidCIDRForLegacyField [{NP} 'invalid cidr format']",
     manifest(ingress_from(ip_block("192.168.5.6", "192.168.3.0/24"))), {(f"{INGRESS_BLOCK}.cidr", "invalid-cidr")}),
    ("invalid-ipv6-cidr-format", f"{IPB} [{NP} 'invalid ipv6 cidr format']",
     manifest(ingress_from(ip_block("fd00:192:168::", "fd00:192:168:3::/64"))),
     {(f"{INGRESS_BLOCK}.cidr", "invalid-cidr")}),
    ("except-empty-string", f"{IPB} [{NP} 'except field is an empty string']",
     manifest(ingress_from(ip_block("192.168.0.0/16", ""))), {(f"{INGRESS_BLOCK}.except[0]", "invalid-cidr")}),
    ("except-space-string", f"{IPB} [{NP} 'except field is an space string']",
     manifest(ingress_from(ip_block("192.168.0.0/16", " "))), {(f"{INGRESS_BLOCK}.except[0]", "invalid-cidr")}),
    ("except-invalid-ip", f"{IPB} [{NP} 'except field is an invalid ip']",
     manifest(ingress_from(ip_block("192.168.0.0/16", "300.300.300.300"))),
     {(f"{INGRESS_BLOCK}.except[0]", "invalid-cidr")}),
    ("except-outside-cidr", f"{IPB} IPNet.Contains [{NP} 'except IP is outside of CIDR range']",
     manifest(ingress_from(ip_block("192.168.8.0/24", "192.168.9.1/32"))),
     {(f"{INGRESS_BLOCK}.except[0]", "except-not-subset")}),
    ("except-not-strictly-within",
     f"{IPB} cidrMaskLen >= exceptMaskLen [{NP} 'except IP is not strictly within CIDR range']",
     manifest(ingress_from(ip_block("192.168.0.0/24", "192.168.0.0/24"))),
     {(f"{INGRESS_BLOCK}.except[0]", "except-not-subset")}),
    ("except-ipv6-outside-cidr", f"{IPB} [{NP} 'except IPv6 is outside of CIDR range']",
     manifest(ingress_from(ip_block("fd00:192:168:1::/64", "fd00:192:168:2::/64"))),
     {(f"{INGRESS_BLOCK}.except[0]", "except-not-subset")}),
    ("invalid-policy-types", f"ValidateNetworkPolicySpec NotSupported [{NP} 'invalid policyTypes']",
     manifest({**egress_to(V4_BLOCK), "policyTypes": ["foo", "bar"]}),
     {("spec.policyTypes[0]", "invalid-policy-type"), ("spec.policyTypes[1]", "invalid-policy-type")}),
    ("too-many-policy-types", f"ValidateNetworkPolicySpec [{NP} 'too many policyTypes']",
     manifest({**egress_to(V4_BLOCK), "policyTypes": ["foo", "bar", "baz"]}),
     {("spec.policyTypes", "too-many-policy-types")}),
    ("one-port-range-invalid", f"{PORT} [{NP} 'multiple ports defined, one port range is invalid']",
     manifest(egress_to(NS_SEL, ports=[{"protocol": "UDP", "port": 35000, "endPort": 32768},
                                       {"port": 32000, "endPort": 32768}])),
     {("spec.egress[0].ports[0].endPort", "invalid-end-port")}),
    ("end-port-with-named-port", f"{PORT} [{NP} 'endPort defined with named/string port']",
     manifest(egress_to(NS_SEL, ports=[{"protocol": "UDP", "port": "dns", "endPort": 32768},
                                       {"port": 32000, "endPort": 32768}])),
     {("spec.egress[0].ports[0].endPort", "invalid-end-port")}),
    ("end-port-without-port", f"{PORT} [{NP} 'endPort defined without port defined']",
     manifest(egress_to(NS_SEL, ports=[{"protocol": "TCP", "endPort": 32768}])),
     {("spec.egress[0].ports[0].endPort", "invalid-end-port")}),
    ("port-greater-than-end-port", f"{PORT} [{NP} 'port is greater than endPort']",
     manifest(egress_to(NS_SEL, ports=[{"protocol": "SCTP", "port": 35000, "endPort": 32768}])),
     {("spec.egress[0].ports[0].endPort", "invalid-end-port")}),
    ("multiple-invalid-port-ranges", f"{PORT} [{NP} 'multiple invalid port ranges defined']",
     manifest(egress_to(NS_SEL, ports=[{"protocol": "UDP", "port": 35000, "endPort": 32768},
                                       {"protocol": "TCP", "endPort": 32768},
                                       {"protocol": "TCP", "port": "https", "endPort": 32768}])),
     {("spec.egress[0].ports[0].endPort", "invalid-end-port"), ("spec.egress[0].ports[1].endPort", "invalid-end-port"),
      ("spec.egress[0].ports[2].endPort", "invalid-end-port")}),
    ("invalid-end-port-range", f"{PORT} IsValidPortNum [{NP} 'invalid endport range defined']",
     manifest(egress_to(NS_SEL, ports=[{"protocol": "TCP", "port": 30000, "endPort": 65537}])),
     {("spec.egress[0].ports[0].endPort", "invalid-end-port")}),
    # The cases found against the API server: each on the side upstream's code puts it.
    ("cidr-trailing-newline", f"{IPB} -> ParseCIDRSloppy (dtoi reads to the end)",
     manifest(ingress_from(ip_block("10.0.0.0/8\n"))), {(f"{INGRESS_BLOCK}.cidr", "invalid-cidr")}),
    ("except-trailing-newline", f"{IPB} -> ParseCIDRSloppy",
     manifest(ingress_from(ip_block("10.0.0.0/8", "10.1.0.0/16\n"))), {(f"{INGRESS_BLOCK}.except[0]", "invalid-cidr")}),
    ("ipv4-mapped-cidr-with-ipv4-except", f"{IPB}: Mask.Size() of ::ffff:10.0.0.0/104 is 104 >= 16",
     manifest(ingress_from(ip_block("::ffff:10.0.0.0/104", "10.1.0.0/16"))),
     {(f"{INGRESS_BLOCK}.except[0]", "except-not-subset")}),
    ("ipv4-mapped-cidr-with-mapped-except", f"{IPB}: Contains via To4(), 104 < 112",
     manifest(ingress_from(ip_block("::ffff:10.0.0.0/104", "::ffff:10.1.0.0/112"))), set()),
    ("ipv4-cidr-with-mapped-except-103", f"{IPB}: IPNet.Contains(To4(::ffff:10.0.0.0)), 8 < 103",
     manifest(ingress_from(ip_block("10.0.0.0/8", "::ffff:10.0.0.0/103"))), set()),
    ("ipv4-cidr-with-mapped-except-below-96", f"{IPB}: ::ffff:10.0.0.0/80 masks to ::, To4() is nil",
     manifest(ingress_from(ip_block("0.0.0.0/0", "::ffff:10.0.0.0/80"))),
     {(f"{INGRESS_BLOCK}.except[0]", "except-not-subset")}),
    ("ipv6-group-with-leading-zeros", f"{IPB} -> ParseCIDRSloppy -> xtoi",
     manifest(ingress_from(ip_block("00001::/16"))), set()),
    ("mapped-cidr-with-leading-zeros", f"{IPB} -> ParseCIDRSloppy -> parseIPv6 -> parseIPv4",
     manifest(ingress_from(ip_block("::ffff:010.0.0.0/104"))), set()),
    ("other-family-except", f"{IPB}: IPNet.Contains compares lengths (4 != 16)",
     manifest(ingress_from(ip_block("::/0", "10.0.0.0/8"))), {(f"{INGRESS_BLOCK}.except[0]", "except-not-subset")}),
    ("cidr-not-a-string", f"{IPB}: cidr decodes into a Go string",
     manifest(ingress_from({"ipBlock": {"cidr": 0}})), {(f"{INGRESS_BLOCK}.cidr", "needs-quotes")}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("upstream", "value", "expected"), [r[1:] for r in POLICY_ROWS], ids=[r[0] for r in POLICY_ROWS]
)
def test_network_policies_are_accepted_and_refused_as_upstream(upstream: str, value: dict[str, Any], expected):
    assert errors_of(value) == expected, upstream


def test_an_accepted_odd_cidr_means_what_go_reads():
    """The policy built from the accepted forms: ``00001::/16`` is ``1::/16``, the mapped
    ``::ffff:010.0.0.0/104`` is ``10.0.0.0/8``, and the except ``::ffff:10.0.0.0/103`` under
    ``10.0.0.0/8`` covers ``10.0.0.0/7`` (Go's ``IPNet.Contains`` through the last 32 mask bits),
    so it removes all of ``cidr``."""
    blocks = [ip_block("00001::/16"), ip_block("::ffff:010.0.0.0/104"), ip_block("10.0.0.0/8", "::ffff:10.0.0.0/103")]
    policy, _ = validate(manifest(ingress_from(*blocks)))
    assert policy is not None
    peers = policy.ingress[0].peers
    assert all(isinstance(p, IPBlockPeer) for p in peers)
    assert [(str(p.cidr), [str(e) for e in p.excepts]) for p in peers] == [  # type: ignore[union-attr]
        ("1::/16", []),
        ("10.0.0.0/8", []),
        ("10.0.0.0/8", ["10.0.0.0/7"]),
    ]
    assert not peers[2].contains(ipaddress.ip_address("10.1.2.3"))  # type: ignore[union-attr]


def test_strict_subset_message_is_upstreams():
    _, diagnostics = validate(manifest(ingress_from(ip_block("::ffff:10.0.0.0/104", "10.1.0.0/16"))))
    (diagnostic,) = diagnostics
    assert "must be a strict subset of `cidr`" in diagnostic.message


# ---------------------------------------------------------------------------------------------
# ObjectMeta: (name, upstream function, metadata changes, expected {(field, code)}).

META = "ValidateObjectMetaAccessor"
BIG = "x" * (256 * KIB)

METADATA_ROWS: list[tuple[str, str, dict[str, Any], set[tuple[str, str]]]] = [
    ("name-trailing-newline", f"{META} -> NameIsDNSSubdomain; {GO_ANCHORS}", {"name": "foo\n"},
     {("metadata.name", "invalid-name")}),
    ("namespace-trailing-newline", f"{META} -> ValidateNamespaceName; {GO_ANCHORS}", {"namespace": "bar\n"},
     {("metadata.namespace", "invalid-namespace")}),
    ("label-key-trailing-newline", f"ValidateLabels -> IsQualifiedName; {GO_ANCHORS}", {"labels": {"app\n": "web"}},
     {("metadata.labels.app\n", "invalid-label-key")}),
    ("label-value-trailing-newline", f"ValidateLabels -> IsValidLabelValue; {GO_ANCHORS}", {"labels": {"app": "web\n"}},
     {("metadata.labels.app", "invalid-label-value")}),
    ("generate-name-trailing-dash", f"{META} -> NameIsDNSSubdomain(prefix=true)", {"generateName": "foo-"}, set()),
    ("generate-name-uppercase", f"{META} -> NameIsDNSSubdomain(prefix=true)", {"generateName": "Foo-"},
     {("metadata.generateName", "invalid-generate-name")}),
    ("annotation-key-case-does-not-matter", "ValidateAnnotations: IsQualifiedName(strings.ToLower(k))",
     {"annotations": {"Example.COM/Key": "v"}}, set()),
    ("annotation-key-invalid", "ValidateAnnotations", {"annotations": {"a b": "v"}},
     {("metadata.annotations.a b", "invalid-annotation-key")}),
    ("annotations-at-the-limit", "ValidateAnnotationsSize: totalSize > TotalAnnotationSizeLimitB",
     {"annotations": {"k": BIG[:-1]}}, set()),
    ("annotations-over-the-limit", "ValidateAnnotationsSize: 256 KiB + 1", {"annotations": {"k": BIG}},
     {("metadata.annotations", "annotations-too-long")}),
    ("annotations-over-the-limit-together", "ValidateAnnotationsSize: keys and values of all annotations",
     {"annotations": {"a": BIG[: 128 * KIB], "b": BIG[: 128 * KIB]}},
     {("metadata.annotations", "annotations-too-long")}),
    ("annotations-counted-in-bytes", "ValidateAnnotationsSize: len() of a Go string is bytes",
     {"annotations": {"k": "é" * (128 * KIB)}}, {("metadata.annotations", "annotations-too-long")}),
    ("finalizer-invalid", "ValidateFinalizers -> ValidateFinalizerName", {"finalizers": ["a b"]},
     {("metadata.finalizers[0]", "invalid-finalizer")}),
    ("finalizers-conflicting", "ValidateFinalizers: orphan and foregroundDeletion",
     {"finalizers": ["orphan", "foregroundDeletion"]}, {("metadata.finalizers", "conflicting-finalizers")}),
    ("finalizer-prefixed", "ValidateFinalizers", {"finalizers": ["example.com/cleanup"]}, set()),
    ("generation-negative", f"{META} -> ValidateNonnegativeField", {"generation": -1},
     {("metadata.generation", "invalid-generation")}),
    ("owner-reference-complete", "ValidateOwnerReferences",
     {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "u",
                           "controller": True}]}, set()),
    ("owner-reference-empty", "validateOwnerReference: Required apiVersion, kind, name, uid",
     {"ownerReferences": [{}]},
     {(f"metadata.ownerReferences[0].{k}", "missing-owner-field") for k in ("apiVersion", "kind", "name", "uid")}),
    ("owner-reference-bad-group-version", "validateOwnerReference: ParseGroupVersion, len(gv.Version) == 0",
     {"ownerReferences": [{"apiVersion": "apps/", "kind": "K", "name": "n", "uid": "u"},
                          {"apiVersion": "a/b/c", "kind": "K", "name": "n", "uid": "u"}]},
     {("metadata.ownerReferences[0].apiVersion", "invalid-owner-api-version"),
      ("metadata.ownerReferences[1].apiVersion", "invalid-owner-api-version")}),
    ("owner-reference-event", "validateOwnerReference: BannedOwners",
     {"ownerReferences": [{"apiVersion": "v1", "kind": "Event", "name": "n", "uid": "u"}]},
     {("metadata.ownerReferences[0]", "banned-owner")}),
    ("owner-references-two-controllers", "ValidateOwnerReferences: only one Controller",
     {"ownerReferences": [{"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": True},
                          {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": True}]},
     {("metadata.ownerReferences", "multiple-controllers")}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("upstream", "metadata", "expected"), [r[1:] for r in METADATA_ROWS], ids=[r[0] for r in METADATA_ROWS]
)
def test_object_metadata_is_accepted_and_refused_as_upstream(upstream: str, metadata: dict[str, Any], expected):
    assert errors_of(manifest(**metadata)) == expected, upstream


SELECTOR_ROWS: list[tuple[str, str, dict[str, Any], set[tuple[str, str]]]] = [
    ("match-labels-value-trailing-newline", f"ValidateLabels -> IsValidLabelValue; {GO_ANCHORS}",
     {"matchLabels": {"app": "web\n"}}, {("spec.podSelector.matchLabels.app", "invalid-label-value")}),
    ("expression-key-trailing-newline", f"ValidateLabelSelectorRequirement -> ValidateLabelName; {GO_ANCHORS}",
     {"matchExpressions": [{"key": "app\n", "operator": "Exists"}]},
     {("spec.podSelector.matchExpressions[0].key", "invalid-label-key")}),
    ("expression-value-trailing-newline", f"ValidateLabelSelectorRequirement -> IsValidLabelValue; {GO_ANCHORS}",
     {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web\n"]}]},
     {("spec.podSelector.matchExpressions[0].values[0]", "invalid-label-value")}),
    ("expression-operator-missing", "ValidateLabelSelectorRequirement: default case, operator \"\"",
     {"matchExpressions": [{"key": "app"}]},
     {("spec.podSelector.matchExpressions[0].operator", "invalid-selector-operator")}),
    ("expression-key-missing", "ValidateLabelSelectorRequirement -> ValidateLabelName(\"\")",
     {"matchExpressions": [{"operator": "Exists"}]},
     {("spec.podSelector.matchExpressions[0].key", "invalid-label-key")}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("upstream", "selector", "expected"), [r[1:] for r in SELECTOR_ROWS], ids=[r[0] for r in SELECTOR_ROWS]
)
def test_label_selectors_are_accepted_and_refused_as_upstream(upstream: str, selector: dict[str, Any], expected):
    assert errors_of(manifest({"podSelector": selector})) == expected, upstream


# ---------------------------------------------------------------------------------------------
# Properties over any text: the parsers never raise, and Go never accepts a trailing newline.

_CIDR_TEXT = st.text(alphabet="0123456789abcdefABCDEF:./%-+ \n\u0668", max_size=48)


@given(text=_CIDR_TEXT | st.text(max_size=48))
@settings(max_examples=400)
def test_parsers_never_raise_and_never_accept_a_final_newline(text: str):
    for parsed in (parse_cidr_sloppy(text), parse_ip_sloppy(text)):
        assert parsed is None or not text.endswith("\n")
    assert parse_cidr_sloppy(text + "\n") is None
    assert parse_ip_sloppy(text + "\n") is None
    for check in (dns1123_label_errors, dns1123_subdomain_errors, qualified_name_errors, label_value_errors):
        assert check(text + "\n") != []


@given(
    network=st.ip_addresses()
    .filter(lambda a: a.version == 4 or a.ipv4_mapped is None)
    .flatmap(lambda a: st.tuples(st.just(a), st.integers(0, a.max_prefixlen))),
    zeros=st.integers(0, 3),
)
@settings(max_examples=300)
def test_any_network_written_with_leading_zeros_reads_back(network, zeros):
    """xtoi / dtoi: any number of leading zeros in an IPv6 group, an IPv4 octet or the prefix
    length leaves the value unchanged (decimal, never octal). IPv4-mapped addresses are IPv4 to
    Go (their rows are above)."""
    address, prefix = network
    separator = "." if address.version == 4 else ":"
    parts = str(address.exploded).split(separator)
    written = separator.join("0" * zeros + p for p in parts) + "/" + "0" * zeros + str(prefix)
    parsed = parse_cidr_sloppy(written)
    assert parsed is not None
    assert parsed.network == ipaddress.ip_network((address, prefix), strict=False)
    assert parsed.prefix_length == prefix
