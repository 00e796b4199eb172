"""deploy/helm/policyctl renders, with ``helm template``, exactly the objects of deploy/base for its
default values and exactly those of each overlay for the values that stand for it, so every check
tests/deploy/test_manifests.py makes on the overlays holds for the chart too, and the chart cannot
drift from the plain manifests. helm is the real binary (on PATH, or the one scripts/kubectl-tools
installs); the tests are skipped only when it is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from policyctl.compiler.markedpeers import DEFAULT_MASK
from tests.deploy.test_manifests import DEPLOY, OVERLAYS, agent_params, rendered

CHART = DEPLOY / "helm" / "policyctl"
HELM = shutil.which("helm") or shutil.which("helm", path=str(DEPLOY.parent / ".venv" / "tools"))

#: The helm values that stand for each overlay (``--set`` arguments).
VALUES: dict[str, tuple[str, ...]] = {
    "audit": ("mode=audit",),
    "identity-mark": ("identityMark=0x00003fff",),
    "image": ("image.repository=registry.example/policyctl",),
    "log-level": ("logLevel=debug",),
    "metrics": ("metrics.serviceMonitor=true",),
    "new-pod-window-allow": ("newPodWindow=allow",),
    "node-selector": ("nodeSelector.kubernetes\\.io/os=linux", "nodeSelector.policyctl/agent=enabled"),
    "runtime-status": ("runtimeStatus=true",),
    "tolerations": ("--values", str(Path(__file__).parent / "helm-tolerations.yaml")),
}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    if HELM is None:
        pytest.skip("helm is not installed: scripts/kubectl-tools installs one")
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=60, check=False)


def template(*values: str) -> dict[tuple[str, str], dict[str, Any]]:
    args: list[str] = []
    for value in values:
        args += [value] if value.startswith("--") or value.endswith(".yaml") else ["--set", value]
    result = helm("template", "policyctl", str(CHART), "--namespace", "kube-system", *args)
    assert result.returncode == 0, result.stderr
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(result.stdout) if o}


def objects(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in rendered(directory)}


def test_the_chart_lints() -> None:
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_default_values_render_the_base() -> None:
    assert template() == objects(DEPLOY / "base")


def test_every_overlay_has_its_values() -> None:
    assert sorted(VALUES) == OVERLAYS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_values_of_an_overlay_render_the_overlay(overlay: str) -> None:
    assert template(*VALUES[overlay]) == objects(DEPLOY / "overlays" / overlay)


def test_another_namespace_moves_every_namespaced_object_and_the_binding_follows() -> None:
    result = helm("template", "policyctl", str(CHART), "--namespace", "policyctl-system",
                  "--set", "metrics.serviceMonitor=true")  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = [o for o in yaml.safe_load_all(result.stdout) if o]
    for obj in found:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "policyctl-system", obj["kind"]
    (binding,) = [o for o in found if o["kind"] == "ClusterRoleBinding"]
    assert binding["subjects"][0]["namespace"] == "policyctl-system"
    (monitor,) = [o for o in found if o["kind"] == "ServiceMonitor"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["policyctl-system"]}


@pytest.mark.parametrize("window", ["deny", "allow"])
def test_the_new_pod_window_value_reaches_the_agents_parser(window: str) -> None:
    agent = template(f"newPodWindow={window}")[("DaemonSet", "policyctl-agent")]
    (container,) = agent["spec"]["template"]["spec"]["containers"]
    assert agent_params(container["args"])["new_pod_window"] == window


#: newPodWindow values the chart refuses to render, and how the message shows each.
REJECTED: dict[str, tuple[tuple[str, str], str]] = {
    "a misspelling": (("--set", "newPodWindow=alow"), '"alow"'),
    "another case": (("--set", "newPodWindow=Allow"), '"Allow"'),
    "a boolean": (("--set", "newPodWindow=true"), "true"),
    "an empty string": (("--set-string", "newPodWindow="), '""'),
    "no value": (("--set", "newPodWindow=null"), "null"),
}




#: identityMark values the chart renders (as ``template`` takes them), and the mask the agent's parser reads.
MARKS: dict[str, tuple[tuple[str, ...], int | None]] = {
    "the default": ((), DEFAULT_MASK),
    "an empty string": (("--set-string=identityMark=",), DEFAULT_MASK),
    "no value": (("identityMark=null",), DEFAULT_MASK),
    "hex": (("identityMark=0x00003fff",), 0x00003FFF),
    "hex in capitals": (("identityMark=0X0F000000",), 0x0F000000),
    "a decimal string": (("--set-string=identityMark=16711680",), 0x00FF0000),
    "none": (("identityMark=none",), None),
}


@pytest.mark.parametrize(("value", "mask"), MARKS.values(), ids=list(MARKS))
def test_the_identity_mark_value_reaches_the_agents_parser(value: tuple[str, ...], mask: int | None) -> None:
    """An empty value leaves the flag out, so the agent's own default applies."""
    agent = template(*value)[("DaemonSet", "policyctl-agent")]
    (container,) = agent["spec"]["template"]["spec"]["containers"]
    assert agent_params(container["args"])["identity_mark"] == mask
    assert any(a.startswith("--identity-mark") for a in container["args"]) == (mask != DEFAULT_MASK)


def test_an_identity_mark_of_one_bit_renders_but_the_agents_parser_refuses_it() -> None:
    """The chart checks only the form of the number; how many bits, and within 32, is the
    agent's rule (compiler/markedpeers.py IdentityMark), read here by its own parser."""
    agent = template("identityMark=0x4000")[("DaemonSet", "policyctl-agent")]
    (container,) = agent["spec"]["template"]["spec"]["containers"]
    with pytest.raises(click.BadParameter, match="has one bit"):
        agent_params(container["args"])


#: identityMark values the chart refuses to render, and how the message shows each.
BAD_MARKS: dict[str, tuple[tuple[str, str], str]] = {
    "not a number": (("--set", "identityMark=0xzz"), '"0xzz"'),
    "hex without 0x": (("--set", "identityMark=ff0000"), '"ff0000"'),
    "a decimal with a leading zero": (("--set-string", "identityMark=016711680"), '"016711680"'),
    "zero": (("--set-string", "identityMark=0"), '"0"'),
    "a negative number": (("--set-string", "identityMark=-1"), '"-1"'),
    "a boolean": (("--set", "identityMark=true"), "true"),
    "none in capitals": (("--set", "identityMark=None"), '"None"'),
    "an unquoted number": (("--set", "identityMark=16711680"), "16711680"),
    "unquoted hex in a values file": (
        ("--values", str(Path(__file__).parent / "helm-identity-mark-unquoted.yaml")),
        "16711680",
    ),
}


#: Every refused value, with the message that names it.
WINDOW_MESSAGE = "newPodWindow: must be deny or allow, not {}"
MARK_MESSAGE = 'identityMark: must be none or a quoted hex or decimal mask such as "0x00003fff", not {}'
REFUSED = {
    **{f"newPodWindow {k}": (v, WINDOW_MESSAGE.format(shown)) for k, (v, shown) in REJECTED.items()},
    **{f"identityMark {k}": (v, MARK_MESSAGE.format(shown)) for k, (v, shown) in BAD_MARKS.items()},
}


@pytest.mark.parametrize(("value", "message"), REFUSED.values(), ids=list(REFUSED))
def test_a_value_the_chart_refuses_fails_the_render_naming_it(value: tuple[str, str], message: str) -> None:
    result = helm("template", "policyctl", str(CHART), "--namespace", "kube-system", *value)
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stdout == ""
