"""``explain`` and ``matrix`` read a live cluster (the fake API server) with kubectl's flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from policyctl.cli.main import main
from tests.apiserver import FakeApiServer
from tests.apiserver.server import Fault

WEBSHOP = Path(__file__).resolve().parents[2] / "examples" / "webshop"
_WORKLOADS = {"Deployment": ("spec", "template"), "DaemonSet": ("spec", "template"),
              "StatefulSet": ("spec", "template")}  # fmt: skip


def as_api_objects(directory: Path) -> list[dict[str, Any]]:
    """The example's objects as they would be in a cluster: each workload becomes one pod named
    like it (as ``-f`` reads a workload), with the template's labels and containers."""
    found = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not doc:
                continue
            if doc["kind"] in _WORKLOADS:
                template = doc["spec"]["template"]
                found.append({"kind": "Pod", "metadata": {
                    "name": doc["metadata"]["name"], "namespace": doc["metadata"].get("namespace", "default"),
                    "labels": template["metadata"].get("labels", {})}, "spec": template["spec"]})  # fmt: skip
            elif doc["kind"] in ("Namespace", "Pod", "Node", "NetworkPolicy"):
                found.append(doc)
    return found


@pytest.fixture
def webshop(apiserver: FakeApiServer, tmp_path: Path) -> str:
    for obj in as_api_objects(WEBSHOP):
        apiserver.create(obj)
    return apiserver.write_kubeconfig(tmp_path / "kubeconfig", context="shop-admin", namespace="shop")


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)


@pytest.fixture(autouse=True)
def no_ambient_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")


def test_matrix_of_the_live_cluster_equals_the_matrix_of_its_manifests(webshop: str) -> None:
    live = run("matrix", "--kubeconfig", webshop, "-A", "--port", "8443/TCP", "-o", "json")
    files = run("matrix", "-f", str(WEBSHOP), "--port", "8443/TCP", "-o", "json")
    assert live.exit_code == 0, live.stderr
    assert json.loads(live.stdout)["allowed"] == json.loads(files.stdout)["allowed"]


def test_explain_resolves_names_in_the_context_namespace_and_reads_only_it(
    webshop: str, apiserver: FakeApiServer
) -> None:
    live = run("explain", "frontend", "payments", "--kubeconfig", webshop, "--port", "8443/TCP", "-o", "json")
    files = run("explain", "frontend", "payments", "-f", str(WEBSHOP), "-n", "shop", "--port", "8443/TCP",
                "-o", "json")  # fmt: skip
    assert live.exit_code == 0, live.stderr
    assert json.loads(live.stdout)["allowed"] is json.loads(files.stdout)["allowed"] is True
    assert {r.path for r in apiserver.requests if not r.discovery} == {
        "/api/v1/namespaces/shop/pods", "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies",
        "/api/v1/namespaces", "/api/v1/nodes",
        "/apis/policy.networking.k8s.io/v1beta1/clusternetworkpolicies",
        "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies",
        "/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies",
    }  # fmt: skip
    assert {r.verb for r in apiserver.requests if not r.discovery} == {"list"}


@pytest.mark.parametrize(
    ("source", "expected"),
    [("shop/cart", 0), ("ingress-nginx/ingress-nginx-controller", 1)],
    ids=["cart-let-in-by-the-planted-or", "ingress-controller-denied"],
)
def test_the_planted_mistake_shows_the_same_from_the_cluster(webshop: str, source: str, expected: int) -> None:
    """The payments ingress lets every pod of a team=shop namespace in (two peers, OR), so
    cart reaches payments; a pod of another namespace does not."""
    args = ("explain", source, "shop/payments", "--port", "8443/TCP", "--exit-code")
    live = run(*args, "--kubeconfig", webshop, "-A")
    files = run(*args, "-f", str(WEBSHOP))
    assert (live.exit_code, files.exit_code) == (expected, expected), live.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--context", "nope"), "context 'nope' not found"),
        (("-f", str(WEBSHOP)), "with -f the manifests are read"),
    ],
    ids=["unknown-context", "kubeconfig-and-manifests"],
)
def test_unusable_cluster_flags_are_a_clear_error(webshop: str, args: tuple[str, ...], message: str) -> None:
    result = run("matrix", "--kubeconfig", webshop, *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_without_manifests_or_kubeconfig_the_error_says_what_to_give() -> None:
    result = run("matrix")
    assert result.exit_code == 2
    assert "give manifests with -f PATH, or a cluster with --kubeconfig" in result.stderr


def test_the_default_kubeconfig_is_found_through_the_environment(webshop: str) -> None:
    result = run("matrix", "--port", "8443/TCP", "-o", "json", env={"KUBECONFIG": webshop})
    assert result.exit_code == 0, result.stderr
    assert sorted(u["name"] for u in json.loads(result.stdout)["units"]) == [
        "shop/cart", "shop/checkout", "shop/frontend", "shop/payments", "shop/postgres", "shop/redis",
    ]  # fmt: skip


def test_forbidden_pods_exit_2_naming_the_list(webshop: str, apiserver: FakeApiServer) -> None:
    apiserver.forbid("pods")
    result = run("matrix", "--kubeconfig", webshop)
    assert result.exit_code == 2
    assert "cannot list pods in namespace 'shop'" in result.stderr and "403" in result.stderr


def test_forbidden_nodes_are_a_warning_and_the_rest_is_read(webshop: str, apiserver: FakeApiServer) -> None:
    apiserver.forbid("nodes")
    result = run("matrix", "--kubeconfig", webshop, "--port", "8443/TCP", "-o", "json")
    assert result.exit_code == 0
    assert "cannot list nodes (403 Forbidden): left out" in result.stderr
    assert "shop/payments" in json.loads(result.stdout)["allowed"]


def test_an_unreachable_server_exits_2(tmp_path: Path) -> None:
    with FakeApiServer() as gone:
        kubeconfig = gone.write_kubeconfig(tmp_path / "kubeconfig")
    result = run("matrix", "--kubeconfig", kubeconfig)
    assert result.exit_code == 2
    assert "cannot reach" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        pytest.param(Fault(verb="list", kind="Pod", body=b"<html>502 Bad Gateway</html>", content_type="text/html"),
                     "pods list page 1 is not JSON", id="an-html-page"),
        pytest.param(Fault(verb="list", kind="NetworkPolicy", truncate=30, honest_length=True),
                     "networkpolicies list page 1 is not JSON", id="a-truncated-list"),
        pytest.param(Fault(verb="list", kind="Namespace", body=b"{}"), "namespaces list page 1 has no metadata",
                     id="an-empty-object"),
    ],
)
def test_an_unreadable_list_exits_2_naming_it(webshop: str, apiserver: FakeApiServer, fault: Fault,
                                               message: str) -> None:
    apiserver.add_fault(fault)
    result = run("matrix", "--kubeconfig", webshop)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr


def test_check_of_the_live_cluster_finds_the_planted_mistake(webshop: str) -> None:
    """``check`` reads the same objects from the cluster as from the manifests: the split
    peer of shop/payments-ingress is found, at its policy (live objects have no file lines)."""
    result = run("check", "--kubeconfig", webshop, "-A", "-o", "json")
    findings = json.loads(result.output)["findings"]
    split = [f for f in findings if f["code"] == "split-peer-selectors"]
    assert result.exit_code == 1
    assert [f["object"] for f in split] == ["NetworkPolicy shop/payments-ingress"]


def test_check_without_manifests_or_cluster_is_a_usage_error() -> None:
    result = run("check")
    assert result.exit_code == 2
    assert "--kubeconfig" in result.output
