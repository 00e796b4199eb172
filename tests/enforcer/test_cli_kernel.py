"""``policyctl enforce`` and ``policyctl stats`` as the lab runs them: inside the node's
namespace, through ``ip netns exec``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from policyctl.enforcer.backend import LibnftablesBackend
from tests.enforcer.netns import Node
from tests.enforcer.rulesets import ruleset

pytestmark = pytest.mark.kernel

POLICYCTL = str(Path(sys.executable).parent / "policyctl")
RULESET = ruleset(isolated=(Node.B_IP,), allowed=((f"{Node.A_IP}/32", Node.B_IP, 80),), local_pods=(Node.A_IP,))


def policyctl(node: Node, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", node.node.name, POLICYCTL, *args],
        input=stdin, capture_output=True, text=True, check=False,
    )


def test_dry_run_prints_the_transaction_and_applies_nothing(node: Node, backend: LibnftablesBackend) -> None:
    done = policyctl(node, "enforce", "--node", "node-1", "--ruleset", "-", "--dry-run", stdin=json.dumps(RULESET))
    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout)["nftables"]
    assert sent[0] == {"create": {"table": {"family": "inet", "name": "policyctl"}}}
    assert backend.list_table("inet", "policyctl") is None


def test_enforce_then_cleanup_leaves_foreign_tables_alone(
    node: Node, backend: LibnftablesBackend, tmp_path: Path
) -> None:
    backend.run({"nftables": [{"add": {"table": {"family": "ip", "name": "foreign"}}}]})
    path = tmp_path / "node-1.json"
    path.write_text(json.dumps(RULESET))
    applied = policyctl(node, "enforce", "--node", "node-1", "--ruleset", str(path), "--keep-established")
    assert applied.returncode == 0, applied.stderr
    assert backend.list_table("inet", "policyctl") is not None
    again = policyctl(node, "enforce", "--node", "node-1", "--ruleset", str(path))
    assert "nothing sent" in again.stdout
    stats = policyctl(node, "stats", "-o", "json")
    assert stats.returncode == 0, stats.stderr
    assert {p["policy"] for p in json.loads(stats.stdout)["policies"]} == {"x/allow", "x/default-deny"}
    cleaned = policyctl(node, "enforce", "--node", "node-1", "--cleanup")
    assert cleaned.returncode == 0, cleaned.stderr
    assert backend.list_table("inet", "policyctl") is None
    assert backend.list_table("ip", "foreign") is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("{not json", "node-1.json:1: not JSON", id="not-json"),
        pytest.param(json.dumps({"nftables": [{"set": {"family": "inet", "table": "policyctl", "name": "s"}}]}),
                     "node-1.json: set s: type: has no type", id="set-without-type"),
    ],
)
def test_a_bad_ruleset_file_is_named_with_no_traceback(node: Node, tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "node-1.json"
    path.write_text(text)
    done = policyctl(node, "enforce", "--node", "node-1", "--ruleset", str(path))
    assert done.returncode == 2
    assert expected in done.stderr.replace(str(tmp_path) + "/", "")
    assert "Traceback" not in done.stderr
