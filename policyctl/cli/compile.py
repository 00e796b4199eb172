"""``policyctl compile``: the nftables ruleset one node must enforce, as nft text or JSON."""

from __future__ import annotations

import click

from policyctl.cli.inputs import (
    fail,
    filename_option,
    identity_mark_option,
    input_errors,
    load_cluster,
    namespace_option,
    output_option,
)
from policyctl.policy.suggest import did_you_mean
from policyctl.compiler.ruleset import Mode


@click.command(name="compile")
@filename_option
@namespace_option
@click.option("--node", "node_name", required=True, metavar="NODE", help="The node whose ruleset to print.")
@output_option(("nft", "json"), versioned=False)
@click.option("--table", default="policyctl", show_default=True, help="Name of the inet table.")
@click.option(
    "--mode",
    type=click.Choice([m.value for m in Mode]),
    default=Mode.ENFORCE.value,
    show_default=True,
    help="enforce: denied new connections are logged and dropped. audit: logged and counted only.",
)
@click.option(
    "--new-pod-window",
    type=click.Choice(["deny", "allow"]),
    default="deny",
    show_default=True,
    help="deny: addresses of the node's spec.podCIDRs that no pod in the input holds are denied, when "
    "any policy exists (no pod CIDRs: no effect). allow: they are not isolated. See docs/agent.md.",
)
@identity_mark_option
def compile_command(
    filenames: tuple[str, ...], namespace: str, node_name: str, output: str, table: str, mode: str,
    new_pod_window: str, identity_mark: int | None,
) -> None:
    """Print the nftables table NODE enforces: its egress and ingress checks for local pods.

    \b
    Comments map every rule to its policy, rule index, file and line. -o json is libnftables
    JSON ('nft -j -f' applies it). See docs/ruleset.md for the layout.
    """
    cluster = load_cluster(filenames, namespace=namespace)
    known = sorted({n.name for n in cluster.nodes} | {p.node for p in cluster.pods if p.node})
    if node_name not in known:
        shown = ", ".join(known[:10]) + (f", ... ({len(known)} in all)" if len(known) > 10 else "")
        raise fail(f"no node {node_name!r} in the manifests (nodes: {shown or 'none'}){did_you_mean(node_name, known)}")
    if not table or len(table) > 255 or not all(c.isalnum() or c in "-_." for c in table):
        raise fail(f"--table {table!r}: use 1-255 letters, digits, '-', '_' or '.'")
    with input_errors():
        from policyctl.compiler.compile import compile_node
        from policyctl.compiler.render_json import render_json
        from policyctl.compiler.render_text import render_text

        from policyctl.compiler.newpods import NewPodWindow

        from policyctl.compiler.markedpeers import IdentityMark

        mark = IdentityMark(identity_mark) if identity_mark is not None else None
        ruleset = compile_node(cluster, node_name, table=table, mode=Mode(mode), new_pods=NewPodWindow(new_pod_window),
                               identity_mark=mark)
    click.echo(render_json(ruleset, indent=2) if output == "json" else render_text(ruleset), nl=output == "json")
