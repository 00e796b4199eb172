"""``policyctl enforce``: put one node's ruleset into the kernel and keep it right.

The ruleset comes either from manifests (``-f``: loaded, compiled for ``--node``) or ready-made
(``--ruleset FILE`` or ``-`` for stdin, in the ``nft -j list table`` format). It is applied as
the difference to what the table holds, in one atomic transaction; then tracked connections
that the new ruleset no longer allows are cut, unless ``--keep-established``. ``--dry-run``
prints the transaction and applies nothing (the kernel still validates it). ``--cleanup``
deletes our table and nothing else. Run it inside the node's network namespace
(``ip netns exec NODE_NS policyctl enforce ...``).

Manifests that hold nothing for ``--node`` (``-f /dev/null``, a mistyped node name, the wrong
directory) compile to an empty ruleset, and applying it would remove the rules of every pod on
the node. So ``-f`` input in which no pod runs on ``--node`` is refused before the kernel is
touched, naming the nodes the input does have (and the closest one to a mistyped name);
``--allow-empty`` applies the empty ruleset when that is what is meant.

Exit status: 0 applied (or nothing to do), 2 bad input (including input with no pod on
``--node``), a transaction nft rejected (the previous ruleset then stays in force), or a
machine without root or nftables (the message says what to install).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from click.core import ParameterSource

from policyctl.cli.completion import complete_path
from policyctl.policy.suggest import did_you_mean
from policyctl.cli.inputs import fail, identity_mark_option, input_errors, load_cluster
from policyctl.enforcer.errors import NftApplyError
from policyctl.enforcer.requirements import missing
from policyctl.policy.cluster import Cluster


def read_ruleset(path: str) -> tuple[dict[str, Any], str]:
    """The ruleset document and the name to report it by; errors name the file and line."""
    source = "<stdin>" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as error:
        raise fail(f"{source}: cannot read the ruleset: {error.strerror}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise fail(f"{source}:{error.lineno}: not JSON: {error.msg} (column {error.colno})") from None
    return document, source

_NODES_SHOWN = 10
def nothing_for_node(cluster: Cluster, node: str) -> str | None:
    """Why ``cluster`` holds nothing ``node`` enforces for (no pod of the node's own network
    is scheduled there, ``compile.local_pods``), or None when it does. The reason names the
    nodes the input knows, and suggests the closest to a mistyped ``node``."""
    from policyctl.compiler.compile import local_pods

    if local_pods(cluster, node):
        return None
    known = sorted({n.name for n in cluster.nodes} | {p.node for p in cluster.pods if p.node})
    if node in known:
        return (f"no pod in the input runs on node {node!r} (outside the host network): its ruleset "
                "would be empty, and applying it would remove the rules of every pod on the node")
    if not known:
        return (f"node {node!r} is not in the input: it has no Node object and no pod with "
                "spec.nodeName; applying its empty ruleset would remove the rules of every pod on the node")
    hint = did_you_mean(node, known)
    shown = ", ".join(known[:_NODES_SHOWN]) + (f", ... ({len(known)} in all)" if len(known) > _NODES_SHOWN else "")
    return f"node {node!r} is not in the input (its nodes: {shown}){hint}"


def compiled_ruleset(
    filenames: tuple[str, ...], *, node: str, table: str, mode: str, namespace: str, allow_empty: bool = False,
    new_pod_window: str = "deny", identity_mark: int | None = None,
) -> tuple[dict[str, Any], Any]:
    """Compile the manifests for ``node``; returns the document and the compiled ruleset.
    Input with nothing for ``node`` exits 2 unless ``allow_empty``."""
    from policyctl.compiler.compile import compile_node
    from policyctl.compiler.newpods import NewPodWindow
    from policyctl.compiler.render_json import to_document
    from policyctl.compiler.ruleset import Mode

    cluster = load_cluster(filenames, namespace=namespace)
    reason = nothing_for_node(cluster, node)
    if reason is not None and not allow_empty:
        end = " " if reason.endswith("?") else ". "
        raise fail(f"{reason}{end}Nothing was changed (--allow-empty applies an empty ruleset on purpose)")
    from policyctl.compiler.markedpeers import IdentityMark

    mark = IdentityMark(identity_mark) if identity_mark is not None else None
    ruleset = compile_node(cluster, node, table=table, mode=Mode(mode), new_pods=NewPodWindow(new_pod_window),
                           identity_mark=mark)
    return to_document(ruleset), cluster


@click.command()
@click.option("--node", required=True, help="The node whose ruleset this is (as in the manifests).")
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    metavar="PATH",
    shell_complete=complete_path,
    help="Manifests to compile for --node (file, directory or '-'). Repeatable.",
)
@click.option(
    "--ruleset", "ruleset_path", metavar="FILE", shell_complete=complete_path,
    help="A compiled ruleset (nft -j list table format), '-' for stdin."
)
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace for objects without one (-f).")
@click.option("--table", default="policyctl", show_default=True, help="The inet table we own.")
@click.option(
    "--mode",
    type=click.Choice(["enforce", "audit"]),
    default=None,
    help="enforce: drop what policy denies; audit: count and log it, let it through (-f only). "
    "Default: enforce.",
)
@click.option(
    "--new-pod-window",
    type=click.Choice(["deny", "allow"]),
    default=None,
    help="deny: addresses of the node's spec.podCIDRs that no pod in the input holds are denied, when any "
    "policy exists; allow: they are not isolated (-f only). Default: deny. See docs/agent.md.",
)
@identity_mark_option
@click.option("--dry-run", is_flag=True, help="Print the transaction (validated by the kernel) and apply nothing.")
@click.option("--keep-established", is_flag=True, help="Do not cut tracked connections the new ruleset denies.")
@click.option("--cleanup", is_flag=True, help="Delete our table (everything policyctl owns) and exit.")
@click.option(
    "--allow-empty",
    is_flag=True,
    help="With -f: apply even when no pod in the input runs on --node (an empty ruleset, which "
    "removes the rules of every pod on the node). Without it such input is refused (exit 2).",
)
def enforce(
    node: str,
    filenames: tuple[str, ...],
    ruleset_path: str | None,
    namespace: str,
    table: str,
    mode: str | None,
    new_pod_window: str | None,
    identity_mark: int | None,
    dry_run: bool,
    keep_established: bool,
    cleanup: bool,
    allow_empty: bool,
) -> None:
    """Apply the ruleset of NODE to this network namespace, as one atomic change.

    \b
    Examples:
      policyctl gen --scale tiny > cluster.yaml
      policyctl enforce --node node-1 -f cluster.yaml
      policyctl compile --node node-1 -f cluster.yaml -o json > node-1.json
      policyctl enforce --node node-1 --ruleset node-1.json
      policyctl enforce --node node-1 -f cluster.yaml --dry-run
      policyctl enforce --node node-1 --cleanup
      policyctl enforce --node node-1 -f /dev/null --allow-empty   # empty the node's ruleset
    """
    from policyctl.enforcer.apply import Enforcer
    from policyctl.enforcer.backend import default_backend
    from policyctl.enforcer.enforcement import enforce_ruleset

    reason = missing()
    if reason:
        raise fail(f"cannot enforce here: {reason}")
    with input_errors():
        if cleanup:
            removed = Enforcer(default_backend(), table=table).cleanup()
            click.echo(f"table inet {table} {'deleted' if removed else 'was not there'}")
            return
        if bool(filenames) == bool(ruleset_path):
            raise fail("give either -f PATH (manifests to compile) or --ruleset FILE, not both or neither")
        if ruleset_path is not None:
            if mode is not None:
                raise fail("--mode applies when compiling with -f; a --ruleset file already has its mode")
            source_of_mark = click.get_current_context().get_parameter_source("identity_mark")
            mark_given = source_of_mark is not ParameterSource.DEFAULT
            if new_pod_window is not None or mark_given:
                flag = "--new-pod-window" if new_pod_window is not None else "--identity-mark"
                raise fail(f"{flag} applies when compiling with -f; a --ruleset file already has its rules")
            document, source = read_ruleset(ruleset_path)
        else:
            document, _ = compiled_ruleset(
                filenames, node=node, table=table, mode=mode or "enforce", namespace=namespace, allow_empty=allow_empty,
                new_pod_window=new_pod_window or "deny", identity_mark=identity_mark,
            )
            source = f"<compiled for {node}>"
        try:
            done = enforce_ruleset(
                document, table=table, source=source, keep_established=keep_established, dry_run=dry_run
            )
        except NftApplyError as error:
            raise fail(str(error)) from None
        report = done.report
        if dry_run:
            click.echo(json.dumps(report.transaction.payload(), indent=2, sort_keys=True))
            return
        summary = report.summary()
        click.echo(
            f"node {node}: "
            + (
                f"transaction {summary['transaction_id']}: {summary['commands']} commands, "
                f"+{summary['elements_added']}/-{summary['elements_removed']} elements, "
                f"{len(summary['chains_replaced'])} chains replaced"
                + (", table created" if summary["created_table"] else "")
                if report.changed
                else "up to date, nothing sent"
            )
        )
        if done.revoke_error is not None:
            click.echo(f"warning: established connections were not re-checked: {done.revoke_error}", err=True)
        for flow in done.revoked:
            click.echo(f"cut {flow}")


