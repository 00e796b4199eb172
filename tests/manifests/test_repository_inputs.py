"""Reading manifests as users have them: files that are not Kubernetes objects, Helm charts,
Kustomize files, and fields the API server drops or tolerates.

kube-linter and conftest skip YAML that is not a Kubernetes object; so does policyctl, with a
note, while a file that looks like an object and is broken stays an error with its line.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from policyctl.manifests.inputlimits import DEFAULT_LIMITS
from policyctl.manifests.loader import load
from policyctl.manifests.manifestfiles import read_inputs
from policyctl.policy.diagnostics import Severity

POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("on: push\njobs:\n  a: {runs-on: ubuntu-latest}\n", "a map without apiVersion or kind",
                     id="github-workflow-with-yaml-1.1-on-key"),
        pytest.param("services:\n  web: {image: nginx}\n", "a map without apiVersion or kind", id="compose-file"),
        pytest.param("site_name: x\nemoji: !!python/name:material.twemoji\n", "a map without apiVersion or kind",
                     id="mkdocs-with-python-tag"),
        pytest.param('[{"src": "a", "dst": "b", "conn": "All Connections"}]\n', "a list",
                     id="json-array-of-tool-output"),
        pytest.param("replicaCount: 2\nimage: {tag: ''}\n", "a map without apiVersion or kind", id="helm-values"),
        pytest.param("just text\n", "a scalar", id="plain-text"),
    ],
)  # fmt: skip
def test_a_file_that_is_not_an_object_is_a_note_not_an_error(tmp_path, text, reason):
    root = tree(tmp_path, {"other.yaml": text, "policy.yaml": POLICY})
    result = load([str(root)])
    assert result.ok and result.diagnostics == ()
    assert [p.name for p in result.cluster.policies] == ["deny"]
    (note,) = result.skipped_files
    assert (note.source, note.line) == (str(root / "other.yaml"), 1)
    assert note.reason == f"not a Kubernetes object ({reason}): skipped"


@pytest.mark.parametrize(
    ("text", "code", "line"),
    [
        pytest.param("apiVersion: v1\nkind: Pod\nmetadata: {name: [\n", "yaml-syntax", 3, id="object-with-yaml-error"),
        pytest.param("a: [\n", "yaml-syntax", 1, id="nothing-parses"),
        pytest.param("apiVersion: v1\nmetadata: {name: x}\n", "missing-kind", 1, id="apiVersion-without-kind"),
        pytest.param(POLICY.replace("[Ingress]", "[Ingres]"), "invalid-policy-type", 6, id="invalid-policy"),
    ],
)  # fmt: skip
def test_a_file_that_looks_like_an_object_and_is_broken_is_still_an_error(tmp_path, text, code, line):
    result = load([str(tree(tmp_path, {"broken.yaml": text}))])
    assert not result.ok
    errors = [d for d in result.diagnostics if d.severity is Severity.ERROR]
    assert [(d.code, d.line) for d in errors][:1] == [(code, line)], [str(d) for d in errors]
    assert result.skipped_files == ()


def test_in_a_file_of_objects_a_document_that_is_not_one_is_a_note_at_its_line(tmp_path):
    root = tree(tmp_path, {"mixed.yaml": POLICY + "---\non: push\n"})
    result = load([str(root)])
    assert result.ok and result.diagnostics == ()
    (note,) = result.skipped_files
    assert (note.line, note.reason) == (8, "not a Kubernetes object (a map without apiVersion or kind): skipped")


KUSTOMIZE = {
    "base/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
    "resources: [policy.yaml]\n",
    "base/policy.yaml": POLICY,
    "overlay/kustomization.yml": "resources: [../base]\npatches:\n  - path: patch.yaml\n"
    "patchesStrategicMerge:\n  - smp.yaml\n  - |\n    apiVersion: v1\n    kind: Pod\n",
    "overlay/patch.yaml": "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\n"
    "spec: {policyTypes: [Egress]}\n",
    "overlay/smp.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n",
    "overlay/extra.yaml": POLICY.replace("name: deny", "name: extra"),
}


def test_kustomizations_and_the_patches_they_name_are_skipped_and_resources_read(tmp_path):
    root = tree(tmp_path, KUSTOMIZE)
    result = load([str(root)])
    assert result.ok and result.diagnostics == ()
    assert sorted(p.name for p in result.cluster.policies) == ["deny", "extra"]
    assert result.cluster.pods == ()
    notes = {os.path.relpath(n.source, root): n.reason for n in result.skipped_files}
    assert sorted(notes) == ["base/kustomization.yaml", "overlay/kustomization.yml", "overlay/patch.yaml",
                             "overlay/smp.yaml"]  # fmt: skip
    assert notes["overlay/patch.yaml"].startswith(f"a Kustomize patch named by {root / 'overlay/kustomization.yml'}")
    assert "kubectl kustomize DIR | policyctl check -f -" in notes["base/kustomization.yaml"]


CHART = {
    "chart/Chart.yaml": "apiVersion: v2\nname: shop\nversion: 1.0.0\n",
    "chart/values.yaml": "replicaCount: 2\n",
    "chart/templates/policy.yaml": "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
    "metadata:\n  name: {{ .Release.Name }}\n",
    "plain.yaml": POLICY,
}


def test_a_helm_chart_without_helm_is_a_note_and_its_templates_are_never_parsed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    root = tree(tmp_path / "repo", CHART)
    sources = read_inputs([str(root)], limits=DEFAULT_LIMITS)
    assert sources.diagnostics == ()
    assert sources.files == (str(root / "plain.yaml"),)
    (note,) = sources.skipped
    assert note.source == str(root / "chart" / "Chart.yaml")
    assert note.reason.endswith(f"check it with: helm template chart {root / 'chart'} | policyctl check -f -")


def fake_helm(directory: Path, script: str) -> None:
    """A stand-in ``helm`` (no real helm can be installed here): records its arguments and
    prints what a ``helm template`` of the chart prints."""
    directory.mkdir()
    helm = directory / "helm"
    helm.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    helm.chmod(helm.stat().st_mode | stat.S_IXUSR)


def test_a_helm_chart_is_rendered_with_helm_template_when_helm_is_installed(tmp_path, monkeypatch):
    rendered = "---\n# Source: shop/templates/policy.yaml\n" + POLICY.replace("name: deny", "name: rendered")
    fake_helm(tmp_path / "bin", f'echo "$@" > {tmp_path / "args"}\ncat <<"EOF"\n{rendered}EOF\n')
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    root = tree(tmp_path / "repo", CHART)
    result = load([str(root)])
    assert result.ok and result.diagnostics == ()
    assert sorted(p.name for p in result.cluster.policies) == ["deny", "rendered"]
    assert (tmp_path / "args").read_text().split() == ["template", "chart", str(root / "chart")]
    (policy,) = [p for p in result.cluster.policies if p.name == "rendered"]
    assert policy.provenance.file == f"{root / 'chart' / 'Chart.yaml'} (helm template)"
    sources = read_inputs([str(root)], limits=DEFAULT_LIMITS)
    assert [d.source_comment for d in sources.documents if d.source_comment] == [
        str(root / "chart" / "templates" / "policy.yaml")
    ]


def test_a_chart_that_helm_cannot_render_is_an_error_on_its_chart_file(tmp_path, monkeypatch):
    fake_helm(tmp_path / "bin", 'echo "Error: parse error in templates/policy.yaml" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    root = tree(tmp_path / "repo", CHART)
    result = load([str(root)])
    (error,) = result.diagnostics
    assert (error.file, error.line, error.severity) == (str(root / "chart" / "Chart.yaml"), 1, Severity.ERROR)
    assert error.message == "helm template failed: Error: parse error in templates/policy.yaml"


@pytest.mark.parametrize(
    ("status", "severity"),
    [
        pytest.param("status: {}\n", Severity.INFO, id="empty-status-of-go-clients"),
        pytest.param("status:\n", Severity.INFO, id="null-status"),
        pytest.param("status:\n  conditions: [{type: Ready}]\n", Severity.WARNING, id="status-with-content"),
    ],
)
def test_status_on_a_network_policy_is_dropped_not_refused(tmp_path, status, severity):
    result = load([str(tree(tmp_path, {"p.yaml": POLICY + status}))])
    assert result.ok
    assert [p.name for p in result.cluster.policies] == ["deny"]
    assert [(d.code, d.severity, d.line, d.field) for d in result.diagnostics] == [
        ("dropped-field", severity, 7, "status")
    ]


def test_fields_the_api_server_sets_are_accepted_silently(tmp_path):
    metadata = (
        "metadata:\n  name: deny\n  namespace: shop\n  creationTimestamp: null\n  resourceVersion: '12'\n"
        "  uid: 0b1c\n  generation: 1\n  managedFields:\n  - {manager: kubectl, operation: Update}\n"
    )
    text = POLICY.replace("metadata: {name: deny, namespace: shop}\n", metadata)
    result = load([str(tree(tmp_path, {"p.yaml": text}))])
    assert result.ok and result.diagnostics == ()


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        ports:
        - {PORT}
"""


@pytest.mark.parametrize(
    ("port", "field", "message"),
    [
        pytest.param("containerport: 8080", "containerport",
                     'unknown field "containerport"; did you mean \'containerPort\'?', id="letter-case"),
        pytest.param("{containerPort: 8080, protocl: UDP}", "protocl",
                     'unknown field "protocl"; did you mean \'protocol\'?', id="typo"),
        pytest.param("{name: http}", "containerPort", "containerPort is required", id="missing"),
    ],
)  # fmt: skip
def test_a_misspelt_container_port_field_is_named_with_what_was_likely_meant(tmp_path, port, field, message):
    result = load([str(tree(tmp_path, {"d.yaml": DEPLOYMENT.replace("{PORT}", port)}))])
    (error,) = result.diagnostics
    assert error.severity is Severity.ERROR
    assert (error.field, error.message) == (f"spec.template.spec.containers[0].ports[0].{field}", message)
    assert error.line == 11


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("  podselector: {}\n", 'unknown field "podselector"; did you mean \'podSelector\'?', id="case"),
        pytest.param("  policyType: [Ingress]\n", 'unknown field "policyType"; did you mean \'policyTypes\'?',
                     id="plural"),
        pytest.param("  zzz: 1\n", 'unknown field "zzz"', id="nothing-close"),
    ],
)  # fmt: skip
def test_an_unknown_network_policy_field_says_did_you_mean(tmp_path, spec, message):
    text = POLICY.replace("  policyTypes: [Ingress]\n", spec)
    result = load([str(tree(tmp_path, {"p.yaml": text}))])
    assert [d.message for d in result.diagnostics if d.code == "unknown-field"] == [message]


def test_a_file_cut_short_by_an_input_limit_is_reported_not_skipped(tmp_path):
    root = tree(tmp_path, {"many.yaml": "a: 1\n---\nb: 2\n---\nc: 3\n"})
    result = load([str(root)], limits=replace(DEFAULT_LIMITS, max_documents=2))
    assert [(d.code, d.line) for d in result.diagnostics] == [("too-many-documents", 4)]
    assert result.skipped_files == ()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        pytest.param("chart/templates/policy.yaml", "part of the Helm chart", id="chart-template"),
        pytest.param("chart/values.yaml", "part of the Helm chart", id="chart-values"),
        pytest.param("overlay/patch.yaml", "a Kustomize patch named by", id="kustomize-patch"),
        pytest.param("overlay/kustomization.yml", "not a Kubernetes object", id="kustomization-without-kind"),
        pytest.param("base/kustomization.yaml", "a Kustomize Kustomization, not a cluster object", id="kustomization"),
    ],
)
def test_files_named_one_by_one_as_pre_commit_passes_them_are_skipped_alike(tmp_path, name, reason):
    root = tree(tmp_path, {**CHART, **KUSTOMIZE})
    sources = read_inputs([str(root / name), str(root / "plain.yaml")], limits=DEFAULT_LIMITS)
    assert sources.diagnostics == ()
    read_then_triaged = "kustomization" in name
    expected = (str(root / name), str(root / "plain.yaml")) if read_then_triaged else (str(root / "plain.yaml"),)
    assert sources.files == expected
    (note,) = sources.skipped
    assert (note.source, note.line) == (str(root / name), 1)
    assert note.reason.startswith(reason), note.reason
