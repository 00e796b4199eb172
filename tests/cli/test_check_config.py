"""``.policyctl.yaml``: skipped rules, severities and excluded paths, found beside the manifests
or named with ``--config``; a mistake in it is an error with its line (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: A policy with a named port no pod declares: one ``unknown-named-port`` warning.
POLICY = """\
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  containers: [{name: web, ports: [{name: http, containerPort: 80}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress: [{ports: [{port: https}]}]
"""
BROKEN = "apiVersion: v1\nkind: Pod\nmetadata: {name: [\n"


def repo(root: Path, config: str | None, files: dict[str, str] | None = None) -> Path:
    root.mkdir(exist_ok=True)
    for name, text in {"app/policy.yaml": POLICY, **(files or {})}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    if config is not None:
        (root / ".policyctl.yaml").write_text(config, encoding="utf-8")
    return root


def codes(output: str) -> list[tuple[str, str]]:
    found = [line for line in output.splitlines() if line.endswith("]")]
    return [(line.split(": ")[1], line.rsplit("[", 1)[1].rstrip("]")) for line in found]


@pytest.mark.parametrize(
    ("config", "expected", "exit_code"),
    [
        pytest.param(None, [("warning", "unknown-named-port")], 1, id="no-config"),
        pytest.param("skip: [unknown-named-port]\n", [], 0, id="skip"),
        pytest.param("severity: {unknown-named-port: info}\n", [], 0, id="lowered-to-info-is-hidden"),
        pytest.param("severity: {unknown-named-port: error}\n", [("error", "unknown-named-port")], 1,
                     id="raised-to-error-is-a-finding-not-bad-input"),
        pytest.param("exclude: [app/]\n", [], 0, id="excluded-directory"),
        pytest.param("exclude: ['app/*.yaml']\n", [], 0, id="excluded-glob"),
    ],
)  # fmt: skip
def test_configuration_in_the_checked_directory(run, tmp_path, config, expected, exit_code):
    root = repo(tmp_path / "r", config)
    result = run("check", "-f", str(root))
    assert codes(result.stdout) == expected
    assert result.exit_code == exit_code


def test_an_excluded_broken_file_is_not_read(run, tmp_path):
    root = repo(tmp_path / "r", "exclude: [legacy]\nskip: [unknown-named-port]\n", {"legacy/old.yaml": BROKEN})
    assert run("check", "-f", str(root)).exit_code == 0
    listed = run("check", "-f", str(root), "-v").stderr
    assert f"{root / 'legacy'}:1: note: excluded by the configuration: not read" in listed


def test_config_named_with_option_applies_to_any_path(run, tmp_path):
    root = repo(tmp_path / "r", None)
    config = tmp_path / "ci.yaml"
    config.write_text("skip: [unknown-named-port]\n", encoding="utf-8")
    assert run("check", "-f", str(root / "app" / "policy.yaml"), "--config", str(config)).exit_code == 0


@pytest.mark.parametrize(
    ("config", "line", "message"),
    [
        pytest.param("skip: [unknown-named-prot]\n", 1,
                     'unknown lint rule "unknown-named-prot"; did you mean \'unknown-named-port\'?', id="rule"),
        pytest.param("severity:\n  unknown-named-port: warn\n", 2,
                     '"warn": supported values: "error", "warning", "info"; did you mean \'warning\'?', id="severity"),
        pytest.param("skips: [unknown-named-port]\n", 1, 'unknown field "skips"; did you mean \'skip\'?', id="key"),
    ],
)  # fmt: skip
def test_a_mistake_in_the_configuration_is_bad_input_with_its_line(run, tmp_path, config, line, message):
    root = repo(tmp_path / "r", config)
    result = run("check", "-f", str(root))
    assert result.exit_code == 2
    assert f"{root / '.policyctl.yaml'}:{line}: error:" in result.stdout
    assert message in result.stdout
