"""``policyctl verify``, ``policyctl diff`` and ``policyctl matrix --all-ports``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from policyctl.manifests.loader import load
from policyctl.policy.model import Family
from policyctl.policy.portsummary import summarize_ports
from tests.cli.conftest import WEBSHOP, write
from tests.cli.matrixdoc import expanded_table

SHOP = str(WEBSHOP)

ASSERTIONS = """\
assertions:
  - name: frontend reaches cart
    expect: can
    from: shop/deploy/frontend
    to: {namespace: shop, podSelector: {matchLabels: {app: cart}}}
    ports: [8080/TCP]
  - name: nothing from the internet to postgres
    expect: cannot
    from: internet
    to: {namespace: shop, podSelector: {matchLabels: {app: postgres}}}
"""

PAYMENTS_ONLY_FROM_CHECKOUT = """\
- name: payments only from checkout
  expect: only
  from: {namespace: shop, podSelector: {matchLabels: {app: checkout}}}
  to: {namespace: shop, podSelector: {matchLabels: {app: payments}}}
  ports: [8443/TCP]
"""


def test_assertions_that_hold_exit_0(run, tmp_path) -> None:
    result = run("verify", "assert", write(tmp_path, "a.yaml", ASSERTIONS), "-f", SHOP)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("holds") == 2


def test_the_planted_mistake_fails_with_a_counterexample_at_the_assertion_line(run, tmp_path) -> None:
    path = write(tmp_path, "a.yaml", PAYMENTS_ONLY_FROM_CHECKOUT)
    result = run("verify", "assert", path, "-f", SHOP, "-o", "json")
    assert result.exit_code == 1
    (finding,) = json.loads(result.stdout)["findings"]
    assert (finding["file"], finding["line"], finding["code"]) == (path, 1, "assertion-failed")
    # Item 1 of payments-ingress admits every pod of a team=shop namespace, e.g. the cart.
    assert "-> shop/payments" in finding["message"] and "TCP 8443" in finding["message"]
    assert "shop/checkout ->" not in finding["message"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        pytest.param("- {expect: maybe, from: internet, to: internet}\n", "expect", id="unknown-expect"),
        pytest.param("- {expect: can, from: internet}\n", "to", id="missing-to"),
        pytest.param("- {expect: can, from: internet, to: internet, ports: [80/ICMP]}\n", "ports[0]", id="bad-port"),
        pytest.param("- {expect: can, from: {cidr: 10.0.0.0/33}, to: internet}\n", "from.cidr", id="bad-cidr"),
    ],
)
def test_bad_assertions_exit_2_naming_file_line_and_field(run, tmp_path, text, field) -> None:
    path = write(tmp_path, "a.yaml", text)
    result = run("verify", "assert", path, "-f", SHOP)
    assert result.exit_code == 2
    assert f"{path}:1: error: {field}:" in result.stderr


def test_matrix_all_ports_equals_the_per_port_semantics(run) -> None:
    """Every pair of the grouped table, expanded, is the oracle's port summary for that pair."""
    proved = run("matrix", "-f", SHOP, "--all-ports", "-o", "json")
    assert proved.exit_code == 0
    document = json.loads(proved.stdout)
    cluster = load([SHOP]).cluster
    pods = {p.key: p for p in cluster.pods}
    for source, row in expanded_table(document).items():
        for destination, cell in row.items():
            summary = summarize_ports(cluster, pods[source], pods[destination], family=Family.IPV4)
            allowed = [r for r in summary.ranges() if r.allowed]
            words = ", ".join(f"{r.protocol.value} {r.span}" for r in allowed) or "none"
            words = "all" if len(allowed) == len(summary.ranges()) else words
            assert cell == words, (source, destination)
    assert expanded_table(document)["shop/checkout"]["shop/payments"] == "TCP 8443"


def _fixed_payments_ingress(directory: Path) -> None:
    """Turn the two peers (OR) of payments-ingress into the one peer (AND) that was meant."""
    policies = directory / "policies.yaml"
    text = policies.read_text(encoding="utf-8")
    fixed = text.replace("          team: shop\n    - podSelector:", "          team: shop\n      podSelector:", 1)
    assert fixed != text
    policies.write_text(fixed, encoding="utf-8")


def test_diff_of_the_fix_removes_only_flows_into_payments(run, tmp_path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(WEBSHOP, old)
    shutil.copytree(WEBSHOP, new)
    _fixed_payments_ingress(new)
    result = run("diff", str(old), str(new), "-o", "json")
    assert result.exit_code == 1, result.output
    found = json.loads(result.stdout)
    assert found["added"] == []
    # Before, every pod of the team=shop namespace (only shop) was admitted; shop pods may open
    # connections to each other, so each other shop workload loses 8443 to payments (a pod
    # reaching itself is never a flow).
    assert {(c["from"], c["to"]) for c in found["removed"]} == {
        ("shop/deploy/cart", "shop/deploy/payments"),
        ("shop/deploy/frontend", "shop/deploy/payments"),
        ("shop/sts/postgres", "shop/deploy/payments"),
        ("shop/sts/redis", "shop/deploy/payments"),
    }
    assert all(c["ports"] == [{"protocol": "TCP", "first": 8443, "last": 8443}] for c in found["removed"])


def test_diff_of_identical_trees_exits_0(run) -> None:
    result = run("diff", SHOP, SHOP)
    assert (result.exit_code, result.stdout) == (0, "no flow changed\n")


def test_diff_reads_git_revisions(run, tmp_path, monkeypatch) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(WEBSHOP, repo / "shop")
    env = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", *env, "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", *env, "-C", str(repo), "commit", "-qm", "one"], check=True)
    _fixed_payments_ingress(repo / "shop")
    subprocess.run(["git", *env, "-C", str(repo), "commit", "-qam", "two"], check=True)
    monkeypatch.chdir(repo)
    result = run("diff", "HEAD~1:shop", "HEAD:shop", "-o", "json")
    assert result.exit_code == 1, result.output
    assert len(json.loads(result.stdout)["removed"]) == 4
    assert run("diff", "HEAD:shop", "shop").exit_code == 0
    assert run("diff", "nosuchrev:shop", "shop").exit_code == 2
