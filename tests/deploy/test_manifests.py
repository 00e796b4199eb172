"""deploy/ is valid against the Kubernetes schemas and holds the promises docs/install.md makes:
host network, NET_ADMIN only, read-only root, probes on 127.0.0.1, node name from the downward API,
an uninstall DaemonSet that removes the rules on every node. The same checks run on the plain
files and on every variant under deploy/overlays as ``kubectl kustomize`` renders it, and each
variant is checked to change exactly what it says and nothing else."""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml

from policyctl.cli.agent import agent as agent_command
from policyctl.compiler.markedpeers import DEFAULT_MASK

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
#: The oldest Kubernetes minor the manifests must still apply to, and the newest schema here.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
#: kubectl from PATH, else the one scripts/kubectl-tools installs (scripts/dev test does where none is).
KUBECTL = shutil.which("kubectl") or shutil.which("kubectl", path=str(DEPLOY.parent / ".venv" / "tools"))
#: Objects of CRDs the schemas here do not know (the Prometheus Operator's); checked by hand below.
CRD_GROUPS = ("monitoring.coreos.com/",)

Objects = list[dict[str, Any]]


def documents(path: Path) -> Objects:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomized(directory: Path) -> Objects:
    """The objects a kustomization lists, read without kustomize (resources only: the base sets
    nothing else we rely on but the namespace, which every object already names)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    found = []
    for name in kustomization["resources"]:
        found.extend(documents(directory / name))
    return found


@functools.cache
def _kustomize_major(kubectl: str) -> int:
    result = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30)
    version = json.loads(result.stdout or "{}").get("kustomizeVersion", "v0")
    return int(version.lstrip("v").split(".")[0] or 0)


@functools.cache
def rendered(directory: Path) -> tuple[dict[str, Any], ...]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed (it renders the kustomizations): scripts/kubectl-tools installs one")
    if _kustomize_major(KUBECTL) < 4:
        pytest.skip(f"{KUBECTL}'s kustomize predates v4 (no patch targets): scripts/kubectl-tools installs a newer one")
    result = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


OVERLAYS = sorted(p.parent.name for p in (DEPLOY / "overlays").glob("*/kustomization.yaml"))
UNINSTALL = kustomized(DEPLOY / "uninstall")
#: Where the install objects come from: the files as written, and kustomize's rendering of the
#: top-level kustomization, the base and each overlay.
SOURCES: dict[str, Callable[[], Objects]] = {
    "files": lambda: kustomized(DEPLOY / "base"),
    "deploy": lambda: list(rendered(DEPLOY)),
    "base": lambda: list(rendered(DEPLOY / "base")),
    **{
        f"overlays/{name}": functools.partial(lambda n: list(rendered(DEPLOY / "overlays" / n)), name)
        for name in OVERLAYS
    },
}


@pytest.fixture(params=list(SOURCES))
def source(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def objects(source: str) -> Objects:
    """What is installed, plus the uninstall objects (read as files)."""
    return copy.deepcopy(SOURCES[source]() + UNINSTALL)


def named(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def by_kind(kind: str, objects: Objects) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def agent_ds(objects: Objects) -> dict[str, Any]:
    return named(objects, "DaemonSet", "policyctl-agent")


def cleanup_ds(objects: Objects) -> dict[str, Any]:
    return named(objects, "DaemonSet", "policyctl-cleanup")


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_against_the_schema(objects: Objects, version: str) -> None:
    checked = [o for o in objects if not o["apiVersion"].startswith(CRD_GROUPS)]
    assert len(checked) >= 5
    for obj in checked:
        kubernetes_validate.validate(obj, version, strict=True)


def test_an_invalid_manifest_is_caught() -> None:
    broken = copy.deepcopy(agent_ds(kustomized(DEPLOY / "base")))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = "NET_ADMIN"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_in_its_directory() -> None:
    for directory in (DEPLOY / "base", DEPLOY / "uninstall", *(DEPLOY / "overlays" / n for n in OVERLAYS)):
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        listed = {r for r in kustomization["resources"] if not r.startswith("..")}
        present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
        assert listed == present, directory
    for directory in (DEPLOY / "base", DEPLOY / "uninstall"):
        assert yaml.safe_load((directory / "kustomization.yaml").read_text())["namespace"] == "kube-system"


def test_every_object_lives_in_kube_system_or_is_cluster_scoped(objects: Objects) -> None:
    for obj in objects:
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            assert "namespace" not in obj["metadata"], obj["metadata"]["name"]
        else:
            assert obj["metadata"]["namespace"] == "kube-system", obj["metadata"]["name"]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod["containers"]) + list(pod.get("initContainers", []))


def test_containers_have_net_admin_only_and_a_read_only_root(objects: Objects) -> None:
    for ds in (agent_ds(objects), cleanup_ds(objects)):
        pod = _pod(ds)
        assert pod["hostNetwork"] is True
        assert pod["priorityClassName"] == "system-node-critical"
        for container in _containers(pod):
            security = container["securityContext"]
            assert security["capabilities"]["drop"] == ["ALL"]
            assert security.get("capabilities", {}).get("add", ["NET_ADMIN"]) == ["NET_ADMIN"]
            assert security["privileged"] is False
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True


def test_daemonset_probes_use_loopback_and_the_node_and_pod_names_come_from_the_downward_api(objects: Objects) -> None:
    (container,) = _pod(agent_ds(objects))["containers"]
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


def test_every_agent_argument_is_an_option_of_policyctl_agent_with_an_accepted_value(objects: Objects) -> None:
    """An overlay's flag is checked against the command itself, so a misspelt or removed option
    fails here rather than in a crash-looping DaemonSet."""
    options = {opt: param for param in agent_command.params for opt in param.opts}
    for container in _containers(_pod(agent_ds(objects))) + _containers(_pod(cleanup_ds(objects))):
        args = container.get("args", [])
        if not args:
            continue
        assert args[0] == "agent"
        for arg in args[1:]:
            name, _, value = arg.partition("=")
            assert name in options, f"{container['name']}: {name} is not an option of policyctl agent"
            choices = getattr(options[name].type, "choices", None)
            if isinstance(options[name].type, click.Choice) and value:
                assert value in (choices or ()), f"{arg}: not one of {choices}"


def agent_params(args: list[str]) -> dict[str, Any]:
    """The settings ``policyctl agent`` takes from a container's args, read by the command's own
    click parser: an unknown option, a value outside its choices or of the wrong type raises
    click.UsageError here, as it would stop the agent in its container with exit 2."""
    assert args[:1] == ["agent"], args
    return dict(agent_command.make_context("agent", list(args[1:])).params)


def test_every_agent_container_parses_with_the_agents_own_parser(objects: Objects) -> None:
    for container in _containers(_pod(agent_ds(objects))) + _containers(_pod(cleanup_ds(objects))):
        if container.get("args"):
            agent_params(container["args"])


def test_the_new_pod_window_is_deny_except_in_its_overlay(source: str, objects: Objects) -> None:
    expected = "allow" if source == "overlays/new-pod-window-allow" else "deny"
    (container,) = _pod(agent_ds(objects))["containers"]
    assert agent_params(container["args"])["new_pod_window"] == expected


def test_the_identity_mark_is_the_default_except_in_its_overlay(source: str, objects: Objects) -> None:
    expected = 0x00003FFF if source == "overlays/identity-mark" else DEFAULT_MASK
    (container,) = _pod(agent_ds(objects))["containers"]
    assert agent_params(container["args"])["identity_mark"] == expected


#: Arguments the agent's parser must refuse, so a typo in deploy/ fails a test.
MISTYPED: dict[str, list[str]] = {
    "a value outside the choices": ["agent", "--new-pod-window=alow"],
    "a value in another case": ["agent", "--new-pod-window=Allow"],
    "a misspelt option": ["agent", "--new-pod-windows=allow"],
    "a value of the wrong type": ["agent", "--metrics-port=metrics"],
    "a value given to a flag": ["agent", "--publish-events=true"],
    "a one-bit identity mark (kube-proxy's 0x4000)": ["agent", "--identity-mark=0x4000"],
    "an identity mark wider than 32 bits": ["agent", "--identity-mark=0x1ffff0000"],
    "an identity mark of no bits": ["agent", "--identity-mark=0"],
    "an identity mark that is not a number": ["agent", "--identity-mark=0xzz"],
    "no identity mark spelt in capitals": ["agent", "--identity-mark=None"],
}


@pytest.mark.parametrize("args", MISTYPED.values(), ids=list(MISTYPED))
def test_the_agents_parser_refuses_a_mistyped_argument(args: list[str]) -> None:
    with pytest.raises(click.UsageError):
        agent_params(args)


def test_daemonset_uses_the_service_account_the_binding_names(objects: Objects) -> None:
    account = by_kind("ServiceAccount", objects)["metadata"]["name"]
    assert _pod(agent_ds(objects))["serviceAccountName"] == account
    binding = by_kind("ClusterRoleBinding", objects)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "kube-system"}]
    assert binding["roleRef"]["name"] == by_kind("ClusterRole", objects)["metadata"]["name"]


def test_uninstall_runs_the_cleanup_on_every_node_without_api_access(objects: Objects) -> None:
    """A DaemonSet, not a Job: one pod per node by construction, and `rollout status` waits for
    every node's init container (the cleanup) to finish. It tolerates every taint whatever the
    install's tolerations were, so a node the agent once ran on is never missed."""
    pod = _pod(cleanup_ds(objects))
    (cleanup,) = pod["initContainers"]
    assert cleanup["args"] == ["agent", "--cleanup"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert "nodeSelector" not in pod and "affinity" not in pod
    (idle,) = pod["containers"]
    assert idle["command"] == ["sleep", "infinity"]
    assert idle["securityContext"]["runAsNonRoot"] is True and "add" not in idle["securityContext"]["capabilities"]
    images = {c["image"] for c in _containers(pod)}
    assert images == {c["image"] for c in _pod(agent_ds(kustomized(DEPLOY / "base")))["containers"]}


def test_every_pod_of_deploy_runs_with_the_runtime_default_seccomp_profile(objects: Objects) -> None:
    pods = [(f"{o['kind']}/{o['metadata']['name']}", _pod(o)) for o in objects if "template" in o.get("spec", {})]
    assert {name for name, _ in pods} == {"DaemonSet/policyctl-agent", "DaemonSet/policyctl-cleanup"}
    for name, pod in pods:
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in _containers(pod):
            profile = container.get("securityContext", {}).get("seccompProfile", {"type": "RuntimeDefault"})
            assert profile == {"type": "RuntimeDefault"}, f"{name}: {container['name']} overrides the profile"


def test_the_daemonsets_security_context(objects: Objects) -> None:
    """The whole securityContext, pod and container: anything added or loosened shows here."""
    pod = _pod(agent_ds(objects))
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


def test_metrics_bind_the_nodes_address_and_health_stays_on_loopback(objects: Objects) -> None:
    """With host networking, a wildcard bind would serve every interface of the node."""
    (container,) = _pod(agent_ds(objects))["containers"]
    args = dict(a.split("=", 1) for a in container["args"] if a.startswith("--") and "=" in a)
    assert args["--metrics-address"] == "$(HOST_IP)"
    assert {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}} in container["env"]
    assert args["--health-address"] == "127.0.0.1"
    assert "0.0.0.0" not in " ".join(container["args"])


def test_the_base_tolerates_every_taint_and_selects_every_node() -> None:
    pod = _pod(agent_ds(kustomized(DEPLOY / "base")))
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert "nodeSelector" not in pod and "affinity" not in pod


def _agent_container(objects: Objects) -> dict[str, Any]:
    (container,) = _pod(agent_ds(objects))["containers"]
    assert isinstance(container, dict)
    return container


def _with_args(*extra: str) -> Callable[[Objects], None]:
    def change(objects: Objects) -> None:
        _agent_container(objects)["args"].extend(extra)

    return change


def _with_image(image: str) -> Callable[[Objects], None]:
    def change(objects: Objects) -> None:
        _agent_container(objects)["image"] = image

    return change


def _with_pod(field: str, value: Any) -> Callable[[Objects], None]:
    def change(objects: Objects) -> None:
        _pod(agent_ds(objects))[field] = value

    return change


def _with_runtime_status(objects: Objects) -> None:
    _with_args("--drop-log-group=100", "--publish-events")(objects)
    by_kind("ClusterRole", objects)["rules"].append(
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}
    )


def _with_objects(*paths: str) -> Callable[[Objects], None]:
    def change(objects: Objects) -> None:
        for path in paths:
            objects.extend(documents(DEPLOY / "overlays" / path))

    return change


LIFECYCLE_TAINTS = ["not-ready", "unreachable", "disk-pressure", "memory-pressure", "pid-pressure",
                    "network-unavailable", "unschedulable"]  # fmt: skip
#: What each overlay changes in the base, and nothing else.
CHANGES: dict[str, Callable[[Objects], None]] = {
    "audit": _with_args("--mode=audit"),
    "identity-mark": _with_args("--identity-mark=0x00003fff"),
    "image": _with_image("registry.example/policyctl:0.1.0"),
    "log-level": _with_args("--log-level=debug"),
    "metrics": _with_objects("metrics/service.yaml", "metrics/servicemonitor.yaml"),
    "new-pod-window-allow": _with_args("--new-pod-window=allow"),
    "node-selector": _with_pod("nodeSelector", {"kubernetes.io/os": "linux", "policyctl/agent": "enabled"}),
    "runtime-status": _with_runtime_status,
    "tolerations": _with_pod(
        "tolerations",
        [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]
        + [{"key": f"node.kubernetes.io/{taint}", "operator": "Exists"} for taint in LIFECYCLE_TAINTS],
    ),
}


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def test_every_overlay_has_its_expected_change() -> None:
    assert sorted(CHANGES) == OVERLAYS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_an_overlay_changes_exactly_what_it_says(overlay: str) -> None:
    expected = copy.deepcopy(list(rendered(DEPLOY / "base")))
    CHANGES[overlay](expected)
    actual = list(rendered(DEPLOY / "overlays" / overlay))
    assert sorted(map(_key, actual)) == sorted(map(_key, expected))
    by_key = {_key(o): o for o in expected}
    for obj in actual:
        assert obj == by_key[_key(obj)], _key(obj)


def test_the_plain_files_and_the_rendered_base_are_the_same_objects() -> None:
    files = {_key(o): o for o in kustomized(DEPLOY / "base")}
    assert {_key(o): o for o in rendered(DEPLOY / "base")} == files
    assert {_key(o): o for o in rendered(DEPLOY)} == files
    assert [_key(o) for o in rendered(DEPLOY / "uninstall")] == [_key(o) for o in UNINSTALL]


def test_the_servicemonitor_scrapes_the_agents_metrics_port() -> None:
    objects = list(rendered(DEPLOY / "overlays" / "metrics"))
    service = by_kind("Service", objects)
    monitor = by_kind("ServiceMonitor", objects)
    ds = agent_ds(objects)
    assert service["spec"]["selector"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["clusterIP"] == "None", "one endpoint per node, not a load-balanced address"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    (port,) = service["spec"]["ports"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"
    (container,) = _pod(ds)["containers"]
    (named_port,) = [p for p in container["ports"] if p["name"] == port["targetPort"]]
    metrics_port = {a.split("=", 1)[1] for a in container["args"] if a.startswith("--metrics-port=")}
    assert metrics_port == {str(named_port["containerPort"])} == {str(port["port"])}


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
