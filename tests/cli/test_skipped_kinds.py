"""Every command reports the kinds it read and did not understand: on stderr, and as
``skipped_kinds`` in its JSON (never silently ignored)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import WEBSHOP, write

FOREIGN = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l7, namespace: shop}
spec: {endpointSelector: {}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {a: b}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: more, namespace: shop}
data: {a: b}
"""

EXPECTED = {"CiliumNetworkPolicy": 1, "ConfigMap": 2}

COMMANDS = [
    pytest.param(["matrix", "--port", "8080/TCP", "-o", "json"], {0}, id="matrix-port"),
    pytest.param(["matrix", "--all-ports", "-o", "json"], {0}, id="matrix-all-ports"),
    pytest.param(["check", "-o", "json"], {0, 1}, id="check"),
    pytest.param(
        ["explain", "shop/frontend", "shop/payments", "--port", "8443/TCP", "-o", "json"], {0, 1}, id="explain"
    ),
    pytest.param(["verify", "redundant", "-o", "json"], {0, 1}, id="verify-redundant"),
]


@pytest.mark.parametrize(("args", "codes"), COMMANDS)
def test_json_output_counts_skipped_kinds(run, tmp_path: Path, args: list[str], codes: set[int]) -> None:
    foreign = write(tmp_path, "foreign.yaml", FOREIGN)
    result = run(*args, "-f", str(WEBSHOP), "-f", foreign)
    assert result.exit_code in codes, result.stderr
    assert json.loads(result.stdout)["skipped_kinds"] == EXPECTED
    assert "CiliumNetworkPolicy (1)" in result.stderr
    assert "ConfigMap (2)" in result.stderr


@pytest.mark.parametrize(("args", "codes"), COMMANDS)
def test_json_output_has_no_skipped_kinds_when_everything_was_read(
    run, args: list[str], codes: set[int]
) -> None:
    result = run(*args, "-f", str(WEBSHOP))
    assert result.exit_code in codes, result.stderr
    assert "skipped_kinds" not in json.loads(result.stdout)
    assert "skipped" not in result.stderr
