"""Each lab node's ruleset: compiled for the node, applied inside the node's namespace.

The lab enforces exactly as the DaemonSet does: the compiler turns the cluster (with the lab's
addresses) into the node's ``nft -j`` ruleset, and the enforcer's command line,
``policyctl enforce --node NODE --ruleset FILE``, applies it from inside the node's network
namespace (``ip netns exec``), the same code path as on a real node. Where this installation
has no ``enforce`` command yet, the file is loaded with ``nft -j -f`` instead, after deleting
the previous table (not atomic: acceptable in a lab between steps, never on a node).

Tables are named with the lab's prefix, like every other object the lab creates.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from policyctl.policy.diagnostics import PolicyctlError
from policyctl.policy.engines import EngineUnavailable
from policyctl.policy.model import Cluster

Compiler = Callable[[Cluster, str], Mapping[str, Any]]
"""(cluster, node name) -> the node's ruleset as ``nft -j`` JSON."""
Applier = Callable[[str, str, Path], None]
"""(node namespace, node name, ruleset file) -> None; raises :class:`RulesetError`."""


class RulesetError(PolicyctlError):
    """A node's ruleset could not be applied; carries the command's output."""


def table_name(prefix: str) -> str:
    return f"{prefix}policyctl"


def compiler_for(prefix: str) -> Compiler:
    """The project's compiler, with the lab's table name. :class:`EngineUnavailable` when
    this installation has no compiler yet."""
    try:
        compile_module = importlib.import_module("policyctl.compiler.compile")
        render_module = importlib.import_module("policyctl.compiler.render_json")
    except ModuleNotFoundError as error:
        raise EngineUnavailable(f"the compiler is not part of this installation ({error.name})") from error
    render = next(
        (getattr(render_module, n) for n in ("to_document", "render_json", "render") if hasattr(render_module, n)),
        None,
    )
    if render is None:
        raise EngineUnavailable("policyctl.compiler.render_json has no renderer")

    def compile_json(cluster: Cluster, node: str) -> Mapping[str, Any]:
        rendered = render(compile_module.compile_node(cluster, node, table=table_name(prefix)))
        return json.loads(rendered) if isinstance(rendered, str) else rendered

    return compile_json


def _enforce_command() -> list[str] | None:
    if importlib.util.find_spec("policyctl.cli.enforce") is None:
        return None
    return [str(Path(sys.executable).with_name("policyctl")), "enforce"]


def apply_with_enforcer(netns: str, node: str, path: Path) -> None:
    """Apply ``path`` in ``netns`` through the enforcer CLI (``nft -j -f`` where there is
    none yet)."""
    tables = [i["table"] for i in json.loads(path.read_text()).get("nftables", []) if "table" in i]
    command = _enforce_command()
    if command is not None:
        argv = ["ip", "netns", "exec", netns, *command, "--node", node, "--ruleset", str(path)]
        argv += ["--table", tables[0]["name"]] if tables else []
    else:
        for table in tables:
            subprocess.run(
                ["ip", "netns", "exec", netns, "nft", "delete", "table", table["family"], table["name"]],
                capture_output=True,
            )
        argv = ["ip", "netns", "exec", netns, "nft", "-j", "-f", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RulesetError(f"applying {path} on {node}: {(done.stderr or done.stdout).strip()}")
