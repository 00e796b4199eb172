"""Each lint rule fires on the pattern it is about, at the field to change, and stays silent on
the corrected manifest.

Every case is a policy appended to one small cluster (namespaces shop and kube-system, pods
shop/web with container port 8080 named ``http``, shop/api with 9000/TCP, CoreDNS, a Service
``web`` port 80 -> 8080). The expected line is marked in the manifest with ``# HERE``, so it
is read from the text, not from the code under test.
"""

from __future__ import annotations

import pytest

from policyctl.policy.diagnostics import Severity
from policyctl.manifests.loader import load_documents
from policyctl.manifests.yamlsource import read_documents
from policyctl.verifier.lint import RULES, lint
from policyctl.verifier.lint_sources import Manifests
from tests.verifier.test_lint_tiers import CASES as TIER_CASES

BASE = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Namespace
metadata: {name: kube-system}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  containers:
  - {name: c, image: i, ports: [{name: http, containerPort: 8080}]}
status: {podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api}}
spec:
  containers:
  - {name: c, image: i, ports: [{containerPort: 9000}]}
status: {podIPs: [{ip: 10.0.0.2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  containers:
  - {name: c, image: i, ports: [{name: dns, containerPort: 53, protocol: UDP}]}
status: {podIPs: [{ip: 10.0.0.53}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""

HEAD = """\
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
"""


def run_lint(policies: str, *, with_base: bool = True) -> tuple[str, list]:
    text = (BASE if with_base else "") + policies
    documents, problems = read_documents(text, source="m.yaml")
    assert problems == []
    loaded = load_documents(documents)
    assert loaded.ok, loaded.diagnostics
    return text, list(lint(loaded.cluster, Manifests.index(documents)))


def marked_line(text: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if "# HERE" in line)


FIRES = [
    pytest.param("egress-blocks-dns", Severity.WARNING, "spec.policyTypes", HEAD + """\
  podSelector: {}
  policyTypes: [Egress]  # HERE
""", id="default-deny-egress-cuts-dns"),
    pytest.param("split-peer-selectors", Severity.WARNING, "spec.ingress[0].from[1]", HEAD + """\
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: shop}}
    - podSelector: {matchLabels: {app: api}}  # HERE
""", id="or-where-own-namespace-makes-pod-peer-redundant"),
    pytest.param("split-peer-selectors", Severity.INFO, "spec.ingress[0].from[1]", HEAD + """\
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
    - podSelector: {matchLabels: {app: api}}  # HERE
""", id="or-over-other-namespaces-is-only-info"),
    pytest.param("joined-peer-selectors", Severity.WARNING, "spec.ingress[0].from[0]", HEAD + """\
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}  # HERE
      podSelector: {matchLabels: {app: api}}
""", id="and-that-selects-no-pod"),
    pytest.param("unknown-namespace-label", Severity.WARNING, "spec.egress[0].to[0].namespaceSelector", HEAD + """\
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector:  # HERE
        matchLabels: {name: kube-system}
""", id="name-label-instead-of-metadata-name"),
    pytest.param("ipblock-covers-pods", Severity.WARNING, "spec.egress[0].to[0].ipBlock", HEAD + """\
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock:  # HERE
        cidr: 10.0.0.0/24
""", id="cidr-over-pod-addresses"),
    pytest.param("unknown-named-port", Severity.WARNING, "spec.ingress[0].ports[0]", HEAD + """\
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports:
    - port: metrics  # HERE
""", id="name-no-pod-declares"),
    pytest.param("unknown-named-port", Severity.WARNING, "spec.ingress[0].ports[0]", HEAD + """\
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports:
    - {port: http, protocol: UDP}  # HERE
""", id="name-declared-for-another-protocol"),
    pytest.param("service-port-not-container-port", Severity.WARNING, "spec.ingress[0].ports[0]", HEAD + """\
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports:
    - port: 80  # HERE
""", id="service-port-instead-of-target-port"),
    pytest.param("defaulted-policy-types", Severity.WARNING, "spec", HEAD.replace("spec:\n", "spec:  # HERE\n") + """\
  podSelector: {matchLabels: {app: web}}
  egress:
  - ports: [{port: 53, protocol: UDP}]
""", id="egress-only-without-types-also-isolates-ingress"),
    pytest.param("defaulted-policy-types", Severity.WARNING, "spec.egress", HEAD + """\
  podSelector: {matchLabels: {app: web}}
  egress: []  # HERE
""", id="empty-egress-without-types-restricts-nothing"),
    pytest.param("defaulted-policy-types", Severity.INFO, "spec", HEAD.replace("spec:\n", "spec:  # HERE\n") + """\
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {}}]
""", id="ingress-only-without-types-is-info"),
    pytest.param("shadowed-rule", Severity.INFO, "spec.ingress[0]", HEAD + """\
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {}}]
""" + HEAD.replace("name: p,", "name: q,") + """\
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: api}}}]  # HERE
    ports: [{port: 8080}]
""", id="narrower-rule-under-a-wider-policy"),
    pytest.param("shadowed-rule", Severity.INFO, "spec.ingress[1]", HEAD + """\
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: api}}}]
  - from: [{podSelector: {matchLabels: {app: api}}}]  # HERE
""", id="duplicate-rule-reported-once-the-second"),
]  # fmt: skip


@pytest.mark.parametrize(("code", "severity", "field", "policies"), FIRES)
def test_rule_fires_at_the_field_to_change_with_a_hint(code, severity, field, policies):
    text, found = run_lint(policies)
    mine = [d for d in found if d.code == code]
    assert [(d.file, d.line, d.field, d.severity) for d in mine] == [("m.yaml", marked_line(text), field, severity)]
    assert mine[0].hint
    assert mine[0].object.startswith("NetworkPolicy shop/")


SILENT = [
    pytest.param("egress-blocks-dns", HEAD + """\
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{port: 53, protocol: UDP}]
""", id="dns-allowed"),
    pytest.param("split-peer-selectors", HEAD + """\
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: shop}}
      podSelector: {matchLabels: {app: api}}
""", id="one-peer-with-both"),
    pytest.param("joined-peer-selectors", HEAD + """\
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
""", id="and-that-selects-pods"),
    pytest.param("unknown-namespace-label", HEAD + """\
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
""", id="metadata-name-label"),
    pytest.param("ipblock-covers-pods", HEAD + """\
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/24, except: [10.0.0.0/25]}
    - ipBlock: {cidr: 0.0.0.0/0}
    - ipBlock: {cidr: 203.0.113.0/24}
""", id="pods-excepted-everything-or-external"),
    pytest.param("unknown-named-port", HEAD + """\
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports: [{port: http}]
""", id="declared-name"),
    pytest.param("service-port-not-container-port", HEAD + """\
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports: [{port: 8080}]
""", id="target-port"),
    pytest.param("defaulted-policy-types", HEAD + """\
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - ports: [{port: 53, protocol: UDP}]
""", id="types-written"),
    pytest.param("shadowed-rule", HEAD + """\
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {}}]
""" + HEAD.replace("name: p,", "name: q,") + """\
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{namespaceSelector: {}}]
""", id="wider-rule-in-a-narrower-policy"),
]  # fmt: skip


@pytest.mark.parametrize(("code", "policies"), SILENT)
def test_rule_is_silent_on_the_corrected_manifest(code, policies):
    _, found = run_lint(policies)
    assert [d for d in found if d.code == code] == []


def test_named_port_rule_needs_pods_to_say_anything():
    _, found = run_lint(HEAD + "  podSelector: {}\n  ingress:\n  - ports: [{port: metrics}]\n", with_base=False)
    assert [d for d in found if d.code == "unknown-named-port"] == []


def test_every_rule_has_a_fixture_that_fires_and_one_that_stays_silent():
    fired = {p.values[0] for p in FIRES}
    silent = {p.values[0] for p in SILENT}
    tiers = {p.values[0] for p in TIER_CASES}
    assert fired | tiers == silent | tiers == set(RULES)


def test_skipped_rules_report_nothing():
    _, everything = run_lint(FIRES[0].values[3])
    assert any(d.code == "egress-blocks-dns" for d in everything)
    documents, _ = read_documents(BASE + FIRES[0].values[3], source="m.yaml")
    loaded = load_documents(documents)
    skipped = lint(loaded.cluster, Manifests.index(documents), skip={"egress-blocks-dns"})
    assert not any(d.code == "egress-blocks-dns" for d in skipped)
