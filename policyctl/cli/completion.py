"""Shell completion of the names in the input: pods, workloads, nodes and namespaces.

Click's completion (``_POLICYCTL_COMPLETE=bash_source|zsh_source|fish_source policyctl``, see
README.md) asks these functions for candidates while the command line is still being typed.
They read the manifests given with ``-f`` earlier on the same line, with the command's own
loader and ``-n``, so a candidate is always a name the command would accept; a lab's pods are
read from the lab's saved state. Completion must never print or fail: input that cannot be
read yields no candidates (the command itself reports why once it runs).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import click

from policyctl.policy.diagnostics import PolicyctlError

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from policyctl.policy.cluster import Cluster


def input_cluster(ctx: click.Context) -> Cluster | None:
    """The cluster of the ``-f`` files on the command line so far; standard input is never
    read while completing (it belongs to the shell)."""
    from policyctl.manifests.inputlimits import DEFAULT_LIMITS
    from policyctl.manifests.loader import load

    filenames = [f for f in ctx.params.get("filenames") or () if f != "-"]
    if not filenames:
        return None
    namespace = ctx.params.get("namespace") or "default"
    try:
        return load(filenames, stdin=None, default_namespace=namespace, limits=DEFAULT_LIMITS).cluster
    except (PolicyctlError, OSError, ValueError):
        return None


def endpoint_names(cluster: Cluster, namespace: str) -> set[str]:
    """What ``explain`` and ``verify path`` accept for a pod or node end
    (:func:`policyctl.policy.endpoints.resolve_endpoint`): ``NAMESPACE/NAME``, ``NAME`` in the
    namespace of ``-n`` and ``node/NAME``. A workload's pod already has the workload's name, so
    the ``KIND/NAME`` spellings would only repeat each candidate."""
    names = {pod.key for pod in cluster.pods}
    names |= {pod.name for pod in cluster.pods if pod.namespace == namespace}
    names |= {f"node/{node.name}" for node in cluster.nodes}
    return names


def namespace_names(cluster: Cluster) -> set[str]:
    return {n.name for n in cluster.namespaces} | {p.namespace for p in cluster.pods}


def _items(names: Iterable[str], incomplete: str) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem

    return [CompletionItem(name) for name in sorted(names) if name.startswith(incomplete)]


def complete_path(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Files and directories, completed by the shell itself (click's ``file`` item)."""
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="file")]


def complete_endpoint(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    cluster = input_cluster(ctx)
    if cluster is None:
        return []
    return _items(endpoint_names(cluster, ctx.params.get("namespace") or "default"), incomplete)


def complete_namespace(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    cluster = input_cluster(ctx)
    return [] if cluster is None else _items(namespace_names(cluster), incomplete)


def port_names(cluster: Cluster) -> set[str]:
    """Every container port name of the input, ``NAME`` for TCP and ``NAME/PROTOCOL`` otherwise,
    as ``--port`` takes them."""
    return {c.name if c.protocol.value == "TCP" else f"{c.name}/{c.protocol.value}"
            for pod in cluster.pods for c in pod.ports if c.name}  # fmt: skip


def complete_port(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Named ports only: a number needs no completion."""
    cluster = input_cluster(ctx)
    return [] if cluster is None else _items(port_names(cluster), incomplete)


def lab_pod_names(lab: str) -> set[str]:
    """The pods of a lab that is up, as ``lab probe`` and ``lab exec`` accept them: every
    ``NAMESPACE/NAME`` and the bare names of the ``default`` namespace."""
    from policyctl.lab.state import load_state

    try:
        plan = load_state(lab).plan
    except (PolicyctlError, OSError, ValueError):
        return set()
    keys = set(plan.pod_by_key) if plan is not None else set()
    return keys | {key.removeprefix("default/") for key in keys if key.startswith("default/")}


def complete_lab_pod(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    return _items(lab_pod_names(ctx.params.get("name") or "default"), incomplete)
