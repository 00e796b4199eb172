"""``policyctl enforce``: put one node's ruleset into the kernel and keep it right.

The ruleset comes either from manifests (``-f``: loaded, compiled for ``--node``) or ready-made
(``--ruleset FILE`` or ``-`` for stdin, in the ``nft -j list table`` format). It is applied as
the difference to what the table holds, in one atomic transaction; then tracked connections
that the new ruleset no longer allows are cut, unless ``--keep-established``. ``--dry-run``
prints the transaction and applies nothing (the kernel still validates it). ``--cleanup``
deletes our table and nothing else. Run it inside the node's network namespace
(``ip netns exec NODE_NS policyctl enforce ...``).

Exit status: 0 applied (or nothing to do), 2 bad input, a transaction nft rejected (the
previous ruleset then stays in force), or a machine without root or nftables (the message
says what to install).
"""

from __future__ import annotations

import ipaddress
import json
import sys
from typing import Any

import click

from policyctl.cli.inputs import fail, input_errors, load_cluster
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import default_backend
from policyctl.enforcer.conntrack import ConntrackTool, IPAddress, revoke, ruleset_judge
from policyctl.enforcer.errors import NftApplyError
from policyctl.enforcer.requirements import missing
from policyctl.policy.diagnostics import PolicyctlError


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


def compiled_ruleset(filenames: tuple[str, ...], *, node: str, table: str, mode: str, namespace: str) -> tuple[dict[str, Any], Any]:
    """Compile the manifests for ``node``; returns the document and the compiled ruleset."""
    from policyctl.compiler.compile import compile_node
    from policyctl.compiler.render_json import to_document
    from policyctl.compiler.ruleset import Mode

    cluster = load_cluster(filenames, namespace=namespace)
    if node not in {n.name for n in cluster.nodes} and not any(p.node == node for p in cluster.pods):
        click.echo(f"warning: no node or pod in the input is on node {node!r}", err=True)
    ruleset = compile_node(cluster, node, table=table, mode=Mode(mode))
    return to_document(ruleset), cluster


def local_addresses(document: dict[str, Any]) -> frozenset[IPAddress]:
    """Addresses of the local pods: the keys of the ruleset's verdict maps (its dispatch from
    local pod address to that pod's chains)."""
    found: set[IPAddress] = set()
    for item in document.get("nftables", []):
        body = item.get("map") if isinstance(item, dict) else None
        if isinstance(body, dict) and body.get("map") == "verdict":
            for element in body.get("elem", []):
                try:
                    found.add(ipaddress.ip_address(element[0]))
                except (ValueError, TypeError, IndexError, KeyError):
                    continue
    return frozenset(found)


@click.command()
@click.option("--node", required=True, help="The node whose ruleset this is (as in the manifests).")
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    metavar="PATH",
    help="Manifests to compile for --node (file, directory or '-'). Repeatable.",
)
@click.option("--ruleset", "ruleset_path", metavar="FILE", help="A compiled ruleset (nft -j list table format), '-' for stdin.")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace for objects without one (-f).")
@click.option("--table", default="policyctl", show_default=True, help="The inet table we own.")
@click.option(
    "--mode",
    type=click.Choice(["enforce", "audit"]),
    default=None,
    help="enforce: drop what policy denies; audit: count and log it, let it through (-f only). "
    "Default: enforce.",
)
@click.option("--dry-run", is_flag=True, help="Print the transaction (validated by the kernel) and apply nothing.")
@click.option("--keep-established", is_flag=True, help="Do not cut tracked connections the new ruleset denies.")
@click.option("--cleanup", is_flag=True, help="Delete our table (everything policyctl owns) and exit.")
def enforce(
    node: str,
    filenames: tuple[str, ...],
    ruleset_path: str | None,
    namespace: str,
    table: str,
    mode: str | None,
    dry_run: bool,
    keep_established: bool,
    cleanup: bool,
) -> None:
    """Apply the ruleset of NODE to this network namespace, as one atomic change.

    \b
    Examples:
      policyctl enforce --node node-1 -f examples/webshop
      ip netns exec lab-node-1 policyctl enforce --node node-1 --ruleset node-1.json
      policyctl enforce --node node-1 -f examples/webshop --dry-run
      policyctl enforce --node node-1 --cleanup
    """
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
            document, source = read_ruleset(ruleset_path)
        else:
            document, _ = compiled_ruleset(filenames, node=node, table=table, mode=mode or "enforce", namespace=namespace)
            source = f"<compiled for {node}>"
        enforcer = Enforcer(default_backend(), table=table)
        try:
            report = enforcer.apply(document, dry_run=dry_run, source=source)
        except NftApplyError as error:
            raise fail(str(error)) from None
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
        if report.changed and not keep_established:
            cut(document)


def cut(document: dict[str, Any]) -> None:
    """Delete tracked connections the applied ruleset no longer allows; a failure here is
    reported but does not undo the apply."""
    try:
        result = revoke(ConntrackTool(), ruleset_judge(document), local=local_addresses(document))
    except PolicyctlError as error:
        click.echo(f"warning: established connections were not re-checked: {error}", err=True)
        return
    for flow in result.revoked:
        click.echo(f"cut {flow}")
