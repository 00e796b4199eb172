"""Each lab node's ruleset: compiled for the node, applied inside the node's namespace.

The lab enforces exactly as the DaemonSet does: the compiler turns the cluster (with the lab's
addresses) into the node's ``nft -j`` ruleset, and the enforcer
(:func:`~policyctl.enforcer.enforcement.enforce_ruleset`, what ``policyctl enforce`` runs)
applies it inside the node's network namespace: one atomic transaction per change, and
tracked connections the new ruleset denies are cut.

Tables are named with the lab's prefix, like every other object the lab creates.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from policyctl.compiler.compile import compile_node
from policyctl.compiler.markedpeers import DEFAULT_IDENTITY_MARK, IdentityMark
from policyctl.compiler.droplog import log_to_group
from policyctl.compiler.render_json import to_document
from policyctl.compiler.ruleset import Mode
from policyctl.enforcer.enforcement import enforce_ruleset
from policyctl.policy.diagnostics import PolicyctlError
from policyctl.policy.cluster import Cluster

Compiler = Callable[[Cluster, str], Mapping[str, Any]]
"""(cluster, node name) -> the node's ruleset as ``nft -j`` JSON."""
Applier = Callable[[str, str, Path], None]
"""(node namespace, node name, ruleset file) -> None; raises :class:`RulesetError`."""


class RulesetError(PolicyctlError):
    """A node's ruleset could not be applied; carries the command's output."""


def table_name(prefix: str) -> str:
    return f"{prefix}policyctl"


def compiler_for(
    prefix: str, *, mode: Mode = Mode.ENFORCE, log_group: int | None = None,
    identity_mark: IdentityMark | None = DEFAULT_IDENTITY_MARK,
) -> Compiler:
    """The project's compiler, with the lab's table name; with ``log_group`` denied packets
    are logged to that NFLOG group (``compiler.droplog``). ``identity_mark``: the peer layout,
    by default the agent's (``compiler.markedpeers``), so that the lab's packets meet the
    ruleset a node runs; None for the peer maps that jump."""

    def compile_json(cluster: Cluster, node: str) -> Mapping[str, Any]:
        ruleset = compile_node(cluster, node, table=table_name(prefix), mode=mode, identity_mark=identity_mark)
        return to_document(log_to_group(ruleset, log_group))

    return compile_json


def enforce_command() -> list[str]:
    """The enforcer CLI of this installation (beside the running interpreter)."""
    return [str(Path(sys.executable).with_name("policyctl")), "enforce"]


def apply_with_enforcer(netns: str, node: str, path: Path) -> None:
    """Apply ``path`` in ``netns`` through the enforcer's API, as a node does: one atomic
    transaction, then the tracked connections it no longer allows are cut."""
    document = json.loads(path.read_text())
    tables = [i["table"] for i in document.get("nftables", []) if "table" in i]
    if not tables:
        raise RulesetError(f"{path}: the ruleset names no table")
    try:
        done = enforce_ruleset(document, table=tables[0]["name"], source=str(path), netns=netns)
    except PolicyctlError as error:
        raise RulesetError(f"applying {path} on {node}: {error}") from None
    if done.revoke_error is not None:
        raise RulesetError(f"applied {path} on {node}, but established connections were not re-checked: "
                           f"{done.revoke_error}")
