"""``policyctl check -f .`` on an ordinary application repository (``tests/fixtures/app-repo``).

The repository holds what repositories hold: GitHub workflows and dependabot settings, a compose
file, mkdocs.yml (with Python tags), package.json, a JSON array (renovate.json), an unrendered
Helm chart with values, Kustomize bases and an overlay with patches, and plain manifests. Four
policy mistakes are planted; the check must report exactly those (their lines found in the
fixture's text here, not taken from policyctl) and exit 1, and a copy with the four fixed must
exit 0. Nothing else may be an error or a warning.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import REPO

APP = REPO / "tests" / "fixtures" / "app-repo"

#: (file, the policy's name, the line text the finding points at, lint code, the fix: old -> new)
PLANTED = [
    ("deploy/base/policies.yaml", "web-from-anywhere", "- port: https", "unknown-named-port",
     ("        - port: https\n", "        - port: http\n")),
    ("k8s/policies.yaml", "api-from-shop-web", "- podSelector:", "split-peer-selectors",
     ("            matchLabels: {team: shop}\n        - podSelector:\n",
      "            matchLabels: {team: shop}\n          podSelector:\n")),
    ("k8s/policies.yaml", "postgres-from-api", "- namespaceSelector:", "unknown-namespace-label",
     ("matchLabels: {tier: payments}", "matchLabels: {team: shop}")),
    ("k8s/policies.yaml", "web-egress-to-api", "policyTypes: [Egress]", "egress-blocks-dns",
     ("            matchLabels: {app: api}\n      ports:\n        - port: 9090\n",
      "            matchLabels: {app: api}\n      ports:\n        - port: 9090\n    - ports:\n"
      "        - {port: 53, protocol: UDP}\n        - {port: 53, protocol: TCP}\n")),
]  # fmt: skip
SKIPPED_FILES = {
    ".github/dependabot.yml": "not a Kubernetes object",
    ".github/workflows/ci.yml": "not a Kubernetes object",
    ".github/workflows/release.yaml": "not a Kubernetes object",
    "docker-compose.yaml": "not a Kubernetes object",
    "mkdocs.yml": "not a Kubernetes object",
    "package.json": "not a Kubernetes object",
    "renovate.json": "not a Kubernetes object (a list)",
    "deploy/base/kustomization.yaml": "a Kustomization, not a cluster object",
    "deploy/overlays/prod/kustomization.yaml": "a Kustomization, not a cluster object",
    "deploy/overlays/prod/replicas.yaml": "a Kustomize patch named by",
    "deploy/overlays/prod/api-policy.yaml": "a Kustomize patch named by",
}


def planted_line(path: Path, policy: str, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"  name: {policy}")
    return next(n for n, line in enumerate(lines[start:], start + 1) if line.strip() == text)


def findings(output: str) -> set[tuple[str, int, str, str]]:
    """(file, line, severity, code) of every finding line of the text report."""
    found = set()
    for line in output.splitlines():
        if line.startswith(("    hint:", "note:")) or " checked: " in line:
            continue
        where, severity, *_ = line.split(": ", 2)
        file, number = where.rsplit(":", 1)
        found.add((file, int(number), severity, line.rsplit("[", 1)[1].rstrip("]")))
    return found


@pytest.fixture
def in_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository as the working directory, with no helm on PATH (the chart is
    then skipped with a note, whatever this machine has installed)."""
    copy = tmp_path / "app-repo"
    shutil.copytree(APP, copy)
    monkeypatch.chdir(copy)
    monkeypatch.setenv("PATH", str(tmp_path / "no-helm") + os.pathsep + "/usr/bin:/bin")
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "helm" else "/usr/bin/" + name)
    return copy


def test_check_dot_finds_exactly_the_planted_mistakes_and_exits_1(run, in_copy):
    result = run("check", "-f", ".")
    expected = {
        (os.path.join(".", file), planted_line(in_copy / file, policy, text), "warning", code)
        for file, policy, text, code, _ in PLANTED
    }
    assert findings(result.stdout) == expected
    assert result.exit_code == 1


def test_the_fixed_repository_exits_0_with_no_finding(run, in_copy):
    for file, _, _, _, (old, new) in PLANTED:
        path = in_copy / file
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, (file, old)
        path.write_text(text.replace(old, new), encoding="utf-8")
    result = run("check", "-f", ".", "--min-severity", "info")
    service = (in_copy / "deploy/base/web.yaml").read_text(encoding="utf-8").splitlines().index("kind: Service")
    assert findings(result.stdout) == {(os.path.join(".", "deploy/base/web.yaml"), service, "info", "skipped-kind")}
    assert result.exit_code == 0, result.stdout


def test_files_that_are_not_objects_are_one_note_and_each_listed_with_v(run, in_copy):
    quiet = run("check", "-f", ".")
    assert "note: skipped 11 file(s) that are not Kubernetes objects" in quiet.stderr
    assert "error" not in quiet.stderr
    listed = run("check", "-f", ".", "-v").stderr
    for file, reason in SKIPPED_FILES.items():
        assert f"{os.path.join('.', file)}:1: note: {reason}" in listed, file


def test_json_report_lists_every_skipped_file_with_why(run, in_copy):
    result = run("check", "-f", ".", "-o", "json")
    listed = {(n["file"], n["line"]): n["reason"] for n in json.loads(result.stdout)["skipped_files"]}
    for file, reason in SKIPPED_FILES.items():
        assert listed[(os.path.join(".", file), 1)].startswith(reason), file


def test_unrendered_helm_chart_is_a_note_that_says_how_to_check_it(run, in_copy):
    result = run("check", "-f", ".")
    assert (
        "./charts/shop/Chart.yaml:1: note: a Helm chart, not rendered because helm is not installed: its templates "
        "are not read; check it with: helm template shop ./charts/shop | policyctl check -f -"
    ) in result.stderr
    assert "charts/shop/templates" not in result.stdout + result.stderr


def test_info_findings_are_hidden_in_text_output_unless_asked_for(run, in_copy):
    default = run("check", "-f", ".")
    assert {f[2] for f in findings(default.stdout)} == {"warning"}
    assert "finding(s) below warning not shown (--min-severity info)" in default.stderr
    everything = run("check", "-f", ".", "--min-severity", "info")
    assert "info" in {f[2] for f in findings(everything.stdout)}
    errors_only = run("check", "-f", ".", "--min-severity", "error")
    assert findings(errors_only.stdout) == set()
    assert errors_only.exit_code == 1


def test_matrix_reads_the_repository_and_says_in_one_line_what_it_skipped(run, in_copy):
    result = run("matrix", "-f", ".")
    assert result.exit_code == 0, result.stderr
    assert "monitoring/prometheus" in result.stdout and "shop/web" in result.stdout
    assert "note: skipped 11 file(s) that are not Kubernetes objects" in result.stderr
    assert "policyctl check -v lists them" in result.stderr


def _real_helm() -> str | None:
    found = shutil.which("helm") or str(REPO / ".venv" / "tools" / "helm")
    return found if os.access(found, os.X_OK) else None


@pytest.mark.skipif(_real_helm() is None, reason="no helm binary (scripts/kubectl-tools installs one)")
def test_with_helm_installed_the_chart_is_rendered_and_adds_no_finding(run, tmp_path, monkeypatch):
    copy = tmp_path / "app-repo"
    shutil.copytree(APP, copy)
    monkeypatch.chdir(copy)
    monkeypatch.setenv("PATH", os.path.dirname(str(_real_helm())) + os.pathsep + os.environ["PATH"])
    result = run("check", "-f", ".")
    expected = {
        (os.path.join(".", file), planted_line(copy / file, policy, text), "warning", code)
        for file, policy, text, code, _ in PLANTED
    }
    assert findings(result.stdout) == expected
    assert result.exit_code == 1
    assert "Helm chart" not in result.stderr
    matrix = run("matrix", "-f", ".")
    assert "default/shop-web" in matrix.stdout
