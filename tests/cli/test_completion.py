"""Shell completion through click's completion protocol, as bash, zsh and fish drive it.

The candidates for pods, nodes and namespaces come from the manifests given with ``-f`` on
the same line; input that cannot be read gives no candidates and no output at all.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from policyctl.cli.main import main
from tests.cli.conftest import REPO, write

WEBSHOP = "examples/webshop"
SHOP_PODS = ["shop/cart", "shop/checkout", "shop/frontend", "shop/payments", "shop/postgres", "shop/redis"]


def complete(line: str, *, shell: str = "bash", cwd: str = str(REPO)) -> list[str]:
    """The candidate values policyctl answers for ``line`` (its last word is being completed)."""
    words = line.split(" ")
    env = {"_POLICYCTL_COMPLETE": f"{shell}_complete", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    if shell == "fish":
        env["COMP_CWORD"] = words[-1]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        result = CliRunner().invoke(main, [], prog_name="policyctl", env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    if not result.output.strip():
        return []
    if shell == "bash":
        return [line.partition(",")[2] for line in result.output.splitlines()]  # "plain,NAME" or "file,PREFIX"
    if shell == "zsh":
        lines = result.output.splitlines()
        return [lines[i + 1] for i in range(0, len(lines), 3)]
    return [line.split("\t")[0].partition(",")[2] for line in result.output.splitlines()]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param("policyctl ex", ["explain"], id="command-names"),
        pytest.param("policyctl ver", ["verify"], id="command-names-without-importing-them"),
        pytest.param(f"policyctl explain -f {WEBSHOP} sh", SHOP_PODS, id="pods-as-namespace-slash-name"),
        pytest.param(f"policyctl explain -f {WEBSHOP} shop/c", ["shop/cart", "shop/checkout"], id="pods-by-prefix"),
        pytest.param(f"policyctl explain -f {WEBSHOP} shop/frontend shop/p", ["shop/payments", "shop/postgres"],
                     id="the-destination-too"),
        pytest.param(f"policyctl explain -f {WEBSHOP} -n shop fr", ["frontend"], id="bare-names-in-the-namespace-of-n"),
        pytest.param(f"policyctl explain -f {WEBSHOP} -n ", ["ingress-nginx", "kube-system", "monitoring", "shop"],
                     id="namespaces-for-n"),
        pytest.param(f"policyctl matrix -f {WEBSHOP} -n ku", ["kube-system"], id="namespaces-for-every-n"),
        pytest.param(f"policyctl verify path -f {WEBSHOP} shop/r", ["shop/redis"], id="verify-path-ends"),
        pytest.param(f"policyctl matrix -f {WEBSHOP} --port h", ["http", "https"], id="named-ports-for-port"),
        pytest.param(f"policyctl explain -f {WEBSHOP} shop/cart shop/redis --port dns", ["dns-tcp", "dns/UDP"],
                     id="named-ports-of-another-protocol-carry-it"),
        pytest.param("policyctl explain shop/", [], id="nothing-without-f"),
        pytest.param("policyctl matrix -f exa", ["exa"], id="f-is-completed-by-the-shell-as-a-path"),
        pytest.param("policyctl enforce --node n --ruleset no", ["no"], id="ruleset-is-a-path"),
        pytest.param("policyctl explain -f - shop/", [], id="stdin-is-never-read-while-completing"),
        pytest.param("policyctl explain -f does-not-exist.yaml shop/", [], id="unreadable-input-gives-nothing"),
        pytest.param("policyctl lab probe --name no-such-lab sh", [], id="lab-pods-of-a-lab-that-is-not-up"),
    ],
)  # fmt: skip
def test_completion_candidates(line: str, expected: list[str]) -> None:
    assert complete(line) == expected


def test_completion_candidates_are_the_nodes_and_pods_explain_accepts(tmp_path) -> None:
    path = write(tmp_path, "c.yaml", """\
apiVersion: v1
kind: Node
metadata: {name: node-1}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec: {nodeName: node-1}
""")  # fmt: skip
    assert complete(f"policyctl explain -f {path} ") == ["default/web", "node/node-1", "web"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_every_documented_shell_gets_the_same_pods(shell: str) -> None:
    assert complete(f"policyctl explain -f {WEBSHOP} shop/c", shell=shell) == ["shop/cart", "shop/checkout"]


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o"), ("zsh", "compdef"), ("fish", "complete ")])
def test_the_completion_script_of_every_documented_shell(shell: str, marker: str) -> None:
    env = {"_POLICYCTL_COMPLETE": f"{shell}_source"}
    result = CliRunner().invoke(main, [], prog_name="policyctl", env=env, catch_exceptions=False)
    assert result.exit_code == 0
    assert marker in result.output and "_POLICYCTL_COMPLETE" in result.output


@pytest.mark.parametrize("line", ["policyctl matrix -f exa", "policyctl explain --kubeconfig ~/.ku",
                                  "policyctl enforce --node n -f cl", "policyctl enforce --node n --ruleset no"])
def test_paths_are_left_to_the_shells_file_completion(line: str) -> None:
    env = {"_POLICYCTL_COMPLETE": "bash_complete", "COMP_WORDS": line, "COMP_CWORD": str(len(line.split(" ")) - 1)}
    result = CliRunner().invoke(main, [], prog_name="policyctl", env=env, catch_exceptions=False)
    assert result.output.splitlines() == [f"file,{line.rsplit(' ', 1)[1]}"]
