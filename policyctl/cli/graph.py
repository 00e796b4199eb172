"""``policyctl graph``: the label-selector graph, exported or drawn.

``svg`` and ``html`` need Graphviz's ``dot`` on the PATH (Debian package ``graphviz``).
"""

from __future__ import annotations

import shutil
import subprocess

import click

from policyctl.cli.inputs import fail, filename_option, load_cluster, namespace_option, output_option
from policyctl.compiler.graph import PolicyGraph
from policyctl.compiler.graph_export import to_dot, to_graphml, to_html, to_json


def _svg(dot: str) -> str:
    binary = shutil.which("dot")
    if binary is None:
        raise fail("-o svg/html needs Graphviz's 'dot' (apt-get install graphviz)")
    done = subprocess.run([binary, "-Tsvg"], input=dot, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise fail(f"dot failed: {done.stderr.strip()}")
    return done.stdout


@click.command()
@filename_option
@namespace_option
@output_option(("dot", "graphml", "json", "svg", "html"))
def graph(filenames: tuple[str, ...], namespace: str, output: str) -> None:
    """Who selects whom and which rules allow which peers on which ports.

    \b
    Nodes: namespaces, nodes, pods, identities (pods with equal labels in one namespace),
    selectors (deduplicated), policies, rules, ipBlocks. Edges: member-of, runs-on, in,
    selects, targets, has, allows-from/allows-to (with ports).
    """
    cluster = load_cluster(filenames, namespace=namespace)
    built = PolicyGraph(cluster)
    if output == "json":
        click.echo(to_json(built))
    elif output == "graphml":
        click.echo(to_graphml(built), nl=False)
    elif output == "dot":
        click.echo(to_dot(built), nl=False)
    elif output == "svg":
        click.echo(_svg(to_dot(built)), nl=False)
    else:
        click.echo(to_html(_svg(to_dot(built)), title="policyctl graph"), nl=False)
