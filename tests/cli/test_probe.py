"""``policyctl probe``: the spec's JSON, exit codes 0/1/2, engines that cannot run."""

from __future__ import annotations

import json

import pytest

from policyctl.cli import probe as probe_module
from policyctl.probecases.engines import EngineUnavailable
from tests.cli.conftest import REPO, write

CASE = str(REPO / "tests" / "cases" / "01-namespace-and-pod-selector-and-vs-or.yaml")

ONE_PROBE = """\
name: deny x
steps:
- policies:
  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: deny, namespace: x}
    spec: {podSelector: {}, policyTypes: [Ingress]}
  probes:
  - port: 80
    expected:
      y/a: {x/a: %s, y/b: true}
"""


def test_json_output_has_the_spec_shape(run) -> None:
    result = run("probe", CASE, "-o", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"case", "engine", "addresses", "steps", "passed"}
    assert document["engine"] == "model" and document["passed"] is True
    assert len(document["addresses"]) == 9
    first = document["steps"][0]["probes"][0]
    assert {k: first[k] for k in ("port", "protocol", "family", "method", "mismatches")} == {
        "port": 80, "protocol": "TCP", "family": "IPv4", "method": "model", "mismatches": [],
    }
    assert len(first["observed"]) == 9 and all(len(row) == 9 for row in first["observed"].values())


def test_mismatches_are_listed_and_exit_1(run, tmp_path) -> None:
    path = write(tmp_path, "case.yaml", ONE_PROBE % "true")
    result = run("probe", path, "-o", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["passed"] is False
    assert document["steps"][0]["probes"][0]["mismatches"] == [
        {"from": "y/a", "to": "x/a", "expected": True, "observed": False}
    ]


def test_matching_expectations_exit_0(run, tmp_path) -> None:
    result = run("probe", write(tmp_path, "case.yaml", ONE_PROBE % "false"))
    assert result.exit_code == 0
    assert "passed" in result.stdout


def test_table_marks_mismatches(run, tmp_path) -> None:
    result = run("probe", write(tmp_path, "case.yaml", ONE_PROBE % "true"))
    assert result.exit_code == 1
    assert "✘!" in result.stdout and "FAILED: 1 mismatch" in result.stdout
    assert "\x1b[" not in result.stdout


def test_invalid_case_exits_2_with_file_line_field_and_no_traceback(run, tmp_path) -> None:
    path = write(tmp_path, "bad.yaml", "steps:\n- probes:\n  - {port: 80, protocol: ICMP}\n")
    result = run("probe", path)
    assert result.exit_code == 2
    assert f"{path}:3: error: steps[0].probes[0].protocol: must be one of TCP | UDP | SCTP" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_case_file_exits_2(run, tmp_path) -> None:
    result = run("probe", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def refusing_engine() -> None:
    raise EngineUnavailable("needs root and network namespaces")


def test_unavailable_engine_exits_2_with_the_reason(run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(probe_module.ENGINES, "lab", "tests.cli.test_probe:refusing_engine")
    result = run("probe", CASE, "--engine", "lab")
    assert result.exit_code == 2
    assert "engine lab cannot run here: needs root and network namespaces" in result.stderr


def test_an_engine_missing_from_the_installation_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(probe_module.ENGINES, "lab", "policyctl.no_such_module:Engine")
    with pytest.raises(EngineUnavailable, match="not part of this installation"):
        probe_module.make_engine("lab")
