"""The bundled example does what the README and its own README say it does."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from policyctl.cli.main import main
from policyctl.verifier.assertions import check_assertions, load_assertions
from policyctl.manifests.loader import load

ROOT = Path(__file__).resolve().parents[1]
WEBSHOP = str(ROOT / "examples" / "webshop")
ASSERTIONS = str(ROOT / "examples" / "assertions" / "webshop.yaml")


def test_webshop_loads_without_errors() -> None:
    result = load([WEBSHOP])
    assert result.ok, [str(d) for d in result.diagnostics]
    assert {"shop/frontend", "shop/payments", "shop/checkout"} <= set(result.cluster.pod_by_key)


def test_only_the_planted_mistake_breaks_the_owners_assertions() -> None:
    """examples/assertions/webshop.yaml: 'payments only from checkout' fails because of the
    split peer in shop/payments-ingress; the other guarantees hold."""
    cluster = load([WEBSHOP]).cluster
    assertions, problems = load_assertions(ASSERTIONS)
    assert problems == []
    outcome = {r.assertion.name: r.passed for r in check_assertions(cluster, assertions)}
    assert outcome == {
        "payments only from checkout": False,
        "the database is not on the Internet": True,
        "frontend serves the ingress controller": True,
    }


def test_readme_first_command_explains_the_mistake() -> None:
    """The README's first command: frontend reaches payments on 8443 only because of the
    namespace-wide peer, which explain names."""
    result = CliRunner().invoke(
        main, ["explain", "-f", WEBSHOP, "shop/frontend", "shop/payments", "--port", "8443/TCP", "--exit-code"]
    )
    assert result.exit_code == 0, result.output
    assert "✔ peer namespaceSelector team=shop AND podSelector {} (all pods)" in result.output
    assert "shop/payments-ingress" in result.output
