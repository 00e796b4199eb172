"""``policyctl compile --new-pod-window`` and ``policyctl enforce --new-pod-window``: a Node
with ``spec.podCIDRs`` gets the window by default, ``allow`` leaves it out, and the flag is
refused where it cannot apply."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from policyctl.cli.main import main
from policyctl.enforcer.requirements import missing
from tests.compiler.test_cli import MANIFEST

NODE = "metadata: {name: node-1}\n"
RANGED = MANIFEST.replace(NODE, NODE + "spec: {podCIDRs: [10.244.1.0/24]}\n", 1)


@pytest.mark.parametrize(
    ("text", "flags", "window"),
    [
        (RANGED, [], True),
        (RANGED, ["--new-pod-window", "deny"], True),
        (RANGED, ["--new-pod-window", "allow"], False),
        (MANIFEST, [], False),
    ],
    ids=["default", "deny", "allow", "no-pod-cidrs"],
)
def test_compile_prints_the_window_where_the_node_has_pod_cidrs(
    tmp_path: Path, text: str, flags: list[str], window: bool
) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["compile", "--node", "node-1", "-f", str(path), *flags])
    assert result.exit_code == 0, result.output
    assert ("ip saddr @new-pods-v4 fib saddr type != local counter drop" in result.output) is window
    assert ("elements = { 10.244.1.0-10.244.1.4,\n\t\t\t     10.244.1.7-10.244.1.255 }" in result.output) is window


def test_a_bad_pod_cidr_fails_compile_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(RANGED.replace("10.244.1.0/24]", "10.244.1.0/33]"))
    result = CliRunner().invoke(main, ["compile", "--node", "node-1", "-f", str(path)])
    assert result.exit_code == 2
    assert f"{path}:4: error: spec.podCIDRs[0]: '10.244.1.0/33' must be a valid CIDR" in result.output


@pytest.mark.skipif(bool(missing()), reason="enforce checks nftables before its flags")
def test_enforce_refuses_the_flag_with_a_compiled_ruleset(tmp_path: Path) -> None:
    ruleset = tmp_path / "r.json"
    ruleset.write_text('{"nftables": []}')
    result = CliRunner().invoke(main, ["enforce", "--node", "n", "--ruleset", str(ruleset), "--new-pod-window", "deny"])
    assert "--new-pod-window applies when compiling with -f" in result.output
    assert result.exit_code == 2
