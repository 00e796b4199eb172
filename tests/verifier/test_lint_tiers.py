"""Each tier lint rule fires on its pattern, at the line marked ``# HERE``, and is silent once fixed.

Every case is appended to one small cluster: namespaces x and web, pods x/a, x/b and web/c, one
node. The expected line is read from the manifest text, not from the code under test.
"""

from __future__ import annotations

import pytest
from policyctl.manifests.loader import load_documents
from policyctl.manifests.yamlsource import read_documents
from policyctl.verifier.lint import RULES, lint
from policyctl.verifier.lint_sources import Manifests

BASE = """\
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
spec: {nodeName: node-1, containers: [{name: c, image: i}]}
status: {podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec: {nodeName: node-1, containers: [{name: c, image: i}]}
status: {podIPs: [{ip: 10.0.0.2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: web, labels: {app: c}}
spec: {nodeName: node-1, containers: [{name: c, image: i}]}
status: {podIPs: [{ip: 10.0.0.3}]}
"""


def _cnp(name: str, tier: str, priority: int, rules: str, *, here: str = "") -> str:
    return f"""\
---
apiVersion: policy.networking.k8s.io/v1alpha2{here}
kind: ClusterNetworkPolicy
metadata: {{name: {name}}}
spec:
  tier: {tier}
  priority: {priority}
  subject: {{namespaces: {{matchLabels: {{ns: x}}}}}}
{rules}"""


ACCEPT_ALL_IN = """\
  ingress:
  - name: accept-all
    action: Accept
    from: [{namespaces: {}}]
"""
DENY_WEB_IN = """\
  ingress:
  - name: deny-web # HERE
    action: Deny
    from: [{namespaces: {matchLabels: {ns: web}}}]
"""
DENY_WEB_IN_UNMARKED = DENY_WEB_IN.replace(" # HERE", "")
PASS_WEB_IN = DENY_WEB_IN.replace("Deny", "Pass")
ISOLATE_X_IN = """\
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: isolate, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""
ISOLATE_X_A_IN = ISOLATE_X_IN.replace("podSelector: {}", "podSelector: {matchLabels: {app: a}}")
DOMAINS_OUT = """\
  egress:
  - name: names # HERE
    action: Accept
    to: [{domainNames: [example.com]}]
"""
NETWORKS_OUT = DOMAINS_OUT.replace("{domainNames: [example.com]}", "{networks: [203.0.113.0/24]}")

CASES = [
    pytest.param(
        "cluster-rule-shadowed",
        _cnp("first", "Admin", 1, ACCEPT_ALL_IN) + _cnp("second", "Admin", 2, DENY_WEB_IN),
        _cnp("first", "Admin", 2, ACCEPT_ALL_IN) + _cnp("second", "Admin", 1, DENY_WEB_IN),
        "Admin Deny shadowed by a higher-precedence Accept",
        id="admin-deny-under-accept",
    ),
    pytest.param(
        "cluster-rule-shadowed",
        _cnp("all", "Admin", 1, ACCEPT_ALL_IN) + _cnp("base", "Baseline", 1, DENY_WEB_IN),
        _cnp("all", "Admin", 1, ACCEPT_ALL_IN.replace("{namespaces: {}}", "{namespaces: {matchLabels: {ns: x}}}"))
        + _cnp("base", "Baseline", 1, DENY_WEB_IN),
        "the Admin tier",
        id="baseline-rule-under-admin-tier",
    ),
    pytest.param(
        "same-priority-overlap",
        _cnp("a-accept", "Admin", 5, ACCEPT_ALL_IN, here=" # HERE") + _cnp("b-deny", "Admin", 5, DENY_WEB_IN_UNMARKED),
        _cnp("a-accept", "Admin", 5, ACCEPT_ALL_IN) + _cnp("b-deny", "Admin", 6, DENY_WEB_IN_UNMARKED),
        "both Admin tier priority 5",
        id="admin-tie-accept-and-deny",
    ),
    pytest.param(
        "pass-to-nowhere",
        _cnp("base", "Baseline", 1, PASS_WEB_IN),
        _cnp("base", "Baseline", 1, PASS_WEB_IN.replace("Pass", "Accept")),
        "Baseline Pass",
        id="baseline-pass",
    ),
    pytest.param(
        "pass-to-nowhere",
        _cnp("admin", "Admin", 1, PASS_WEB_IN),
        _cnp("admin", "Admin", 1, PASS_WEB_IN) + ISOLATE_X_A_IN,
        "no NetworkPolicy isolates for ingress",
        id="admin-pass-nothing-below",
    ),
    pytest.param(
        "baseline-unreachable",
        ISOLATE_X_IN + _cnp("base", "Baseline", 1, DENY_WEB_IN),
        ISOLATE_X_A_IN + _cnp("base", "Baseline", 1, DENY_WEB_IN),
        "NetworkPolicy isolates every pod its subject selects for ingress (x/a, x/b)",
        id="baseline-under-isolating-networkpolicy",
    ),
    pytest.param(
        "domain-names-not-enforced",
        _cnp("names", "Admin", 1, DOMAINS_OUT),
        _cnp("names", "Admin", 1, NETWORKS_OUT),
        "not enforced: names are not resolved",
        id="domain-names",
    ),
]


def _lint(text: str, code: str):
    documents, problems = read_documents(BASE + text, source="case.yaml")
    loaded = load_documents(documents)
    assert not [d for d in (*problems, *loaded.diagnostics) if d.severity.value == "error"]
    skip = [c for c in RULES if c != code]
    manifests = Manifests() if code == "domain-names-not-enforced" else Manifests.index(documents)
    return lint(loaded.cluster, manifests, skip=skip)


def _marked_line(text: str) -> int:
    lines = (BASE + text).splitlines()
    return next(i for i, line in enumerate(lines, start=1) if "# HERE" in line)


@pytest.mark.parametrize(("code", "bad", "fixed", "message"), CASES)
def test_tier_rule_fires_at_the_marked_line(code: str, bad: str, fixed: str, message: str) -> None:
    found = _lint(bad, code)
    expected = [(code, "case.yaml", _marked_line(bad))]
    assert [(d.code, d.file, d.line) for d in found] == expected, [str(d) for d in found]
    assert message in found[0].message
    assert found[0].hint
    assert found[0].severity is RULES[code].severity


@pytest.mark.parametrize(("code", "bad", "fixed", "message"), CASES)
def test_tier_rule_is_silent_once_fixed(code: str, bad: str, fixed: str, message: str) -> None:
    assert _lint(fixed, code) == ()


def test_same_priority_overlap_names_both_policies_with_their_places() -> None:
    bad = _cnp("a-accept", "Admin", 5, ACCEPT_ALL_IN, here=" # HERE") + _cnp("b-deny", "Admin", 5, DENY_WEB_IN_UNMARKED)
    (found,) = _lint(bad, "same-priority-overlap")
    assert "ClusterNetworkPolicy a-accept (case.yaml:" in found.message
    assert "ClusterNetworkPolicy b-deny (case.yaml:" in found.message
    assert "web/c -> x/" in found.message


def test_tier_rules_are_silent_without_cluster_policies() -> None:
    for code in ("cluster-rule-shadowed", "same-priority-overlap", "pass-to-nowhere", "baseline-unreachable"):
        assert _lint(ISOLATE_X_IN, code) == ()


def test_domain_names_read_from_a_file_are_reported_once_by_the_loader() -> None:
    text = _cnp("names", "Admin", 1, DOMAINS_OUT)
    documents, _ = read_documents(BASE + text, source="case.yaml")
    loaded = load_documents(documents)
    from_loader = [d for d in loaded.diagnostics if d.code == "domain-names-not-enforced"]
    assert [(d.file, d.field) for d in from_loader] == [("case.yaml", "spec.egress[0].to[0].domainNames")]
    skip = [c for c in RULES if c != "domain-names-not-enforced"]
    assert lint(loaded.cluster, Manifests.index(documents), skip=skip) == ()
