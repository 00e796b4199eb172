"""A mistyped name is answered with the closest names, never with the whole list."""

from __future__ import annotations

import pytest

from policyctl.policy.suggest import closest
from tests.cli.conftest import WEBSHOP, write

PODS = ["shop/cart", "shop/checkout", "shop/frontend", "shop/payments", "kube-system/coredns"]


@pytest.mark.parametrize(
    ("typed", "known", "expected"),
    [
        pytest.param("shop/paymnts", PODS, ("shop/payments",), id="a-typo-not-every-name-of-the-namespace"),
        pytest.param("frontnd", PODS, ("shop/frontend",), id="a-bare-name-finds-its-namespaced-pod"),
        pytest.param("explian", ["explain", "matrix", "probe"], ("explain",), id="transposed-letters"),
        pytest.param("zzz", PODS, (), id="nothing-close-suggests-nothing"),
        pytest.param("node-3", ["node-1", "node-2", "node-3x"], ("node-3x", "node-1", "node-2"), id="ties-best-first"),
    ],
)  # fmt: skip
def test_closest_names(typed: str, known: list[str], expected: tuple[str, ...]) -> None:
    assert closest(typed, known) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("explian",), "Did you mean 'explain'?", id="command"),
        pytest.param(("verify", "redundnt"), "Did you mean 'redundant'?", id="subcommand"),
        pytest.param(("explain", "-f", str(WEBSHOP), "shop/frontnd", "shop/cart"), "did you mean: shop/frontend",
                     id="pod"),
        pytest.param(("explain", "-f", str(WEBSHOP), "shp/frontend", "shop/cart"), "did you mean: shop/frontend",
                     id="namespace-of-a-pod"),
        pytest.param(("explain", "-f", str(WEBSHOP), "-n", "shpo", "frontend", "cart"),
                     "namespace 'shpo' (-n) is not in the input; did you mean 'shop'?", id="namespace-of-n"),
        pytest.param(("verify", "path", "-f", str(WEBSHOP), "-n", "shpo", "frontend", "cart"),
                     "namespace 'shpo' (-n) is not in the input; did you mean 'shop'?", id="namespace-of-n-in-verify"),
        pytest.param(("explain", "-f", str(WEBSHOP), "frontnd", "shop/cart"), "did you mean: shop/frontend",
                     id="a-bare-name-without-n-still-finds-its-pod"),
        pytest.param(("check", "-f", str(WEBSHOP), "--skip", "shadowed-rules"),
                     "unknown lint rule shadowed-rules; did you mean 'shadowed-rule'? (docs/lint.md lists them)",
                     id="lint-rule"),
        pytest.param(("explain", "-f", str(WEBSHOP), "shop/frontend", "shop/cart", "--port", "htp"),
                     "did you mean 'http'?", id="named-port"),
    ],
)  # fmt: skip
def test_mistyped_names_get_a_suggestion(run, args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "shop/checkout, shop/frontend" not in result.stderr


def test_a_mistyped_node_gets_the_closest_nodes(run, tmp_path) -> None:
    nodes = "".join(f"---\napiVersion: v1\nkind: Node\nmetadata: {{name: worker-{i}}}\n" for i in range(30))
    pod = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: default}\nspec: {nodeName: worker-7}\n"
    path = write(tmp_path, "c.yaml", nodes + pod)
    result = run("compile", "-f", path, "--node", "worker-77")
    assert result.exit_code == 2
    assert "did you mean 'worker-7'" in result.stderr
    assert "(30 in all)" in result.stderr and "worker-29" not in result.stderr


def test_a_mistyped_policy_gets_the_closest_policy_of_the_cluster(run, tmp_path, monkeypatch) -> None:
    import yaml

    from tests.apiserver.server import FakeApiServer

    with FakeApiServer() as server:
        for path in sorted(WEBSHOP.glob("*.yaml")):
            for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if document and document["kind"] in ("Namespace", "NetworkPolicy"):
                    server.create(document)
        monkeypatch.setenv("KUBECONFIG", server.write_kubeconfig(tmp_path / "kubeconfig"))
        result = run("status", "shop/payments-ingres")
    assert result.exit_code == 2
    assert "no policy 'shop/payments-ingress'" not in result.stderr
    assert "did you mean 'shop/payments-ingress'?" in result.stderr
