"""deploy/ is valid against the Kubernetes schemas and holds the promises deploy/README.md
makes: host network, NET_ADMIN only, read-only root, probes on 127.0.0.1, every taint
tolerated, node name from the downward API, an uninstall Job that removes the rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
#: The oldest Kubernetes minor the manifests must still apply to, and the newest schema here.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomized(directory: Path) -> list[dict[str, Any]]:
    """The objects a kustomization lists (resources only: it sets nothing else we rely on but
    the namespace, which every object already names)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    found = []
    for name in kustomization["resources"]:
        found.extend(documents(directory / name))
    return found


ALL = kustomized(DEPLOY) + kustomized(DEPLOY / "uninstall")


def by_kind(kind: str, objects: list[dict[str, Any]] = ALL) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("obj", ALL, ids=lambda o: f"{o['kind']}-{o['metadata']['name']}")
def test_manifest_is_valid_against_the_schema(obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def test_an_invalid_manifest_is_caught() -> None:
    broken = yaml.safe_load(yaml.safe_dump(by_kind("DaemonSet")))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = "NET_ADMIN"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_in_its_directory() -> None:
    for directory in (DEPLOY, DEPLOY / "uninstall"):
        listed = set(yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"])
        present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
        assert listed == present, directory
        assert yaml.safe_load((directory / "kustomization.yaml").read_text())["namespace"] == "kube-system"


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


@pytest.mark.parametrize("kind", ["DaemonSet", "Job"])
def test_containers_have_net_admin_only_and_a_read_only_root(kind: str) -> None:
    pod = _pod(by_kind(kind))
    assert pod["hostNetwork"] is True
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["priorityClassName"] == "system-node-critical"
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["capabilities"] == {"add": ["NET_ADMIN"], "drop": ["ALL"]}
    assert security["privileged"] is False
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True


def test_daemonset_probes_use_loopback_and_the_node_and_pod_names_come_from_the_downward_api() -> None:
    (container,) = _pod(by_kind("DaemonSet"))["containers"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["host"] == "127.0.0.1", probe
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in container["env"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"]
    assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in container["env"]
    assert container["args"][0] == "agent"
    health = {a.split("=", 1)[1] for a in container["args"] if a.startswith("--health-port=")}
    assert health == {str(container["livenessProbe"]["httpGet"]["port"])}


def test_daemonset_uses_the_service_account_the_binding_names() -> None:
    account = by_kind("ServiceAccount")["metadata"]["name"]
    assert _pod(by_kind("DaemonSet"))["serviceAccountName"] == account
    binding = by_kind("ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "kube-system"}]
    assert binding["roleRef"]["name"] == by_kind("ClusterRole")["metadata"]["name"]


def test_uninstall_job_runs_the_cleanup_once_per_node_without_api_access() -> None:
    job = by_kind("Job")
    pod = _pod(job)
    assert pod["containers"][0]["args"] == ["agent", "--cleanup"]
    assert pod["automountServiceAccountToken"] is False
    (term,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= job["spec"]["template"]["metadata"]["labels"].items()


DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) with line continuations joined and comments dropped."""
    joined = DOCKERFILE.replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in (raw.strip() for raw in joined.splitlines())
        if line and not line.startswith("#")
    ]


def test_dockerfile_uses_debian_slim_and_debians_python_with_the_nftables_binding() -> None:
    """Docker cannot run here, so the image is checked as text: Debian's python3 (the only
    interpreter that sees python3-nftables), a venv that sees system packages, the tools."""
    steps = _instructions()
    assert [a for i, a in steps if i == "FROM"] == ["debian:bookworm-slim"]
    run = " ".join(a for i, a in steps if i == "RUN")
    for package in ("python3", "python3-venv", "python3-nftables", "nftables", "conntrack"):
        assert f" {package} " in f" {run} ", package
    assert "--no-install-recommends" in run and "rm -rf /var/lib/apt/lists/*" in run
    assert "python3 -m venv --system-site-packages /opt/policyctl" in run
    assert "import nftables" in run, "the build must prove the binding imports under the venv"


def test_dockerfile_suits_a_read_only_root_and_uid_0_with_one_capability() -> None:
    steps = _instructions()
    env = " ".join(a for i, a in steps if i == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "Python must not try to write bytecode at run time"
    assert "compileall" in " ".join(a for i, a in steps if i == "RUN"), "bytecode is compiled at build time"
    assert [a for i, a in steps if i == "USER"] == ["0:0"], "added capabilities reach uid 0 only"
    assert not [a for i, a in steps if i == "VOLUME"], "nothing is written at run time"
    entry = [a for i, a in steps if i == "ENTRYPOINT"]
    assert entry == ['["policyctl"]']


def test_dockerfile_copies_every_package_the_project_installs() -> None:
    import tomllib

    project = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())
    directories = set(project["tool"]["setuptools"]["package-dir"].values())
    copied = {a.split()[0] for i, a in _instructions() if i == "COPY"}
    assert directories <= copied, directories - copied


def _pod_templates() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{o['kind']}/{o['metadata']['name']}", _pod(o)) for o in ALL if "template" in o.get("spec", {})]


def test_every_pod_of_deploy_runs_with_the_runtime_default_seccomp_profile() -> None:
    pods = _pod_templates()
    assert {name for name, _ in pods} == {"DaemonSet/policyctl-agent", "Job/policyctl-uninstall"}
    for name, pod in pods:
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"] + pod.get("initContainers", []):
            profile = container.get("securityContext", {}).get("seccompProfile", {"type": "RuntimeDefault"})
            assert profile == {"type": "RuntimeDefault"}, f"{name}: {container['name']} overrides the profile"


def test_the_daemonsets_security_context() -> None:
    """The whole securityContext, pod and container: anything added or loosened shows here."""
    pod = _pod(by_kind("DaemonSet"))
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsUser": 0,
        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
    }
    assert pod["hostNetwork"] is True and "hostPID" not in pod and "hostIPC" not in pod


def test_metrics_bind_the_nodes_address_and_health_stays_on_loopback() -> None:
    """With host networking, a wildcard bind would serve every interface of the node."""
    (container,) = _pod(by_kind("DaemonSet"))["containers"]
    args = dict(a.split("=", 1) for a in container["args"] if a.startswith("--"))
    assert args["--metrics-address"] == "$(HOST_IP)"
    assert {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}} in container["env"]
    assert args["--health-address"] == "127.0.0.1"
    assert "0.0.0.0" not in " ".join(container["args"])
