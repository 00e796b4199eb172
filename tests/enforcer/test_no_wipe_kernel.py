"""``policyctl enforce -f`` never empties a node's table by accident.

Input with no pod on ``--node`` (``/dev/null``, a mistyped node name, manifests of other nodes)
compiles to an empty ruleset whose apply would delete every element of the table. The command
must refuse it with exit 2 before touching the kernel, so the table applied before stays
byte-identical; ``--allow-empty`` is the explicit way to apply the empty ruleset.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.enforcer.netns import Node
from tests.enforcer.rulesets import ruleset

pytestmark = pytest.mark.kernel

POLICYCTL = str(Path(sys.executable).parent / "policyctl")
RULESET = ruleset(isolated=(Node.B_IP,), allowed=((f"{Node.A_IP}/32", Node.B_IP, 80),), local_pods=(Node.A_IP,))
MANIFESTS = """\
apiVersion: v1
kind: Node
metadata: {name: node-1}
---
apiVersion: v1
kind: Node
metadata: {name: node-2}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: x, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, image: i}]}
status: {podIP: 10.77.2.2, podIPs: [{ip: 10.77.2.2}]}
"""


def policyctl(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", node.node.name, POLICYCTL, *args], capture_output=True, text=True, check=False
    )


def table_text(node: Node) -> str:
    return node.node.exec("nft", "list", "table", "inet", "policyctl")


@pytest.fixture
def applied(node: Node, tmp_path: Path) -> str:
    """The hand-written ruleset in force in the node; returns the table as nft lists it."""
    path = tmp_path / "node-1.json"
    path.write_text(json.dumps(RULESET))
    done = policyctl(node, "enforce", "--node", "node-1", "--ruleset", str(path), "--keep-established")
    assert done.returncode == 0, done.stderr
    before = table_text(node)
    assert Node.B_IP in before and "ingress_dispatch" in before
    return before


@pytest.mark.parametrize(
    ("input_name", "node_name", "expected"),
    [
        pytest.param("/dev/null", "node-1", "node 'node-1' is not in the input: it has no Node object", id="dev-null"),
        pytest.param("cluster.yaml", "node-l", "did you mean 'node-1'?", id="mistyped-node"),
        pytest.param("cluster.yaml", "node-2", "no pod in the input runs on node 'node-2'", id="node-without-pods"),
    ],
)
@pytest.mark.parametrize("dry_run", [False, True], ids=["apply", "dry-run"])
def test_input_with_nothing_for_the_node_is_refused_and_the_table_stays_byte_identical(
    node: Node, applied: str, tmp_path: Path, input_name: str, node_name: str, expected: str, dry_run: bool
) -> None:
    manifests = tmp_path / "cluster.yaml"
    manifests.write_text(MANIFESTS)
    path = input_name if input_name.startswith("/") else str(tmp_path / input_name)
    done = policyctl(node, "enforce", "-f", path, "--node", node_name, *(["--dry-run"] if dry_run else []))
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert "Nothing was changed (--allow-empty applies an empty ruleset on purpose)" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert table_text(node) == applied


def test_the_mistyped_node_message_lists_the_nodes_of_the_input(node: Node, applied: str, tmp_path: Path) -> None:
    manifests = tmp_path / "cluster.yaml"
    manifests.write_text(MANIFESTS)
    done = policyctl(node, "enforce", "-f", str(manifests), "--node", "worker-7")
    assert done.returncode == 2
    assert "node 'worker-7' is not in the input (its nodes: node-1, node-2)" in done.stderr
    assert "did you mean" not in done.stderr
    assert table_text(node) == applied


def test_allow_empty_applies_the_empty_ruleset_on_purpose(node: Node, applied: str) -> None:
    done = policyctl(node, "enforce", "-f", "/dev/null", "--node", "node-1", "--allow-empty", "--keep-established")
    assert done.returncode == 0, done.stderr
    after = table_text(node)
    assert after != applied
    assert Node.B_IP not in after and Node.A_IP not in after


def test_input_with_a_pod_on_the_node_is_applied(node: Node, applied: str, tmp_path: Path) -> None:
    manifests = tmp_path / "cluster.yaml"
    manifests.write_text(MANIFESTS)
    done = policyctl(node, "enforce", "-f", str(manifests), "--node", "node-1", "--keep-established")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("node node-1: ")
