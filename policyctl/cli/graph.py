"""``policyctl graph``: who may connect to whom, drawn; or the label-selector graph (``--objects``).

The default view is connectivity (``cli.flowgraph``): workloads, or groups of interchangeable
ones, per namespace; allowed flows labelled with their ports. ``--objects`` keeps the older
graph of policies, rules, selectors and identities. ``svg`` needs Graphviz's ``dot`` on the PATH
(Debian package ``graphviz``), and so does ``html`` with ``--objects``.
"""

from __future__ import annotations

import shutil
import subprocess

import click

from policyctl.cli.inputs import (
    PortType,
    fail,
    family_option,
    filename_option,
    load_cluster,
    namespace_option,
    output_option,
    parse_family,
)
from policyctl.cli.progress import Progress, quiet_option
from policyctl.policy.model import Family, Protocol


def _svg(dot: str) -> str:
    binary = shutil.which("dot")
    if binary is None:
        raise fail("-o svg needs Graphviz's 'dot' (apt-get install graphviz)")
    done = subprocess.run([binary, "-Tsvg"], input=dot, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise fail("dot failed: " + " / ".join(done.stderr.strip().splitlines()[:3]))
    return done.stdout


@click.command()
@filename_option
@namespace_option
@output_option(("dot", "graphml", "json", "svg", "html"))
@click.option(
    "--objects",
    is_flag=True,
    help="The label-selector graph instead: namespaces, pods, identities, selectors, policies, rules, "
    "ipBlocks and how they refer to each other.",
)
@click.option(
    "--port",
    type=PortType(),
    default=None,
    help="Draw the flows allowed to this port, e.g. 8080/TCP. Without it edges carry every allowed port.",
)
@family_option
@click.option(
    "--no-explain",
    is_flag=True,
    help="html: leave out the explanation of each edge (faster on large clusters; the page shows the command).",
)
@quiet_option
def graph(
    filenames: tuple[str, ...],
    namespace: str,
    output: str,
    objects: bool,
    port: tuple[int, Protocol] | None,
    family: str | None,
    no_explain: bool,
    quiet: bool,
) -> None:
    """Who may connect to whom: workloads as nodes, allowed flows as edges, namespaces as boxes.

    \b
    A node is a workload (ns/deploy/web) or a group of workloads of one namespace that no
    connection tells apart (the classes of `policyctl matrix`); an edge is allowed for every
    member pair, labelled with the allowed ports. -o html is one self-contained page: pan,
    zoom, search; click a workload for its flows, a flow for its `policyctl explain`.

    \b
    Examples:
      policyctl graph -f examples/webshop -o html > flows.html
      policyctl graph -f examples/webshop -o svg --port 8080/TCP > flows.svg
      policyctl graph -f examples/webshop --objects -o json
    """
    if no_explain and (objects or output != "html"):
        raise fail("--no-explain is for -o html of the connectivity view")
    if objects:
        if port is not None or family is not None:
            raise fail("--port and --family are for the connectivity view, not --objects")
        _objects(filenames, namespace, output)
        return
    if output == "graphml":
        raise fail("-o graphml is for the label-selector graph: add --objects")
    from policyctl.cli.flowgraph import build_flow_graph
    from policyctl.cli.flowgraph_export import to_dot, to_json

    progress = Progress.for_terminal(quiet=quiet)
    with progress.phase("loading manifests"):
        cluster = load_cluster(filenames, namespace=namespace)
    chosen = parse_family(family) or Family.IPV4
    with progress.phase("computing the flows over classes"):
        flows = build_flow_graph(cluster, family=chosen, port=port)
    if output == "json":
        click.echo(to_json(flows), nl=False)
    elif output == "dot":
        click.echo(to_dot(flows), nl=False)
    elif output == "svg":
        with progress.phase(f"drawing {len(flows.nodes)} nodes and {len(flows.edges)} edges with dot"):
            click.echo(_svg(to_dot(flows)), nl=False)
    else:
        from policyctl.cli.flowexplain import explain_edges
        from policyctl.cli.flowgraph_html import to_page

        with progress.phase(f"explaining {0 if no_explain else len(flows.edges)} edges"):
            texts = [] if no_explain else list(explain_edges(cluster, flows))
        click.echo(to_page(flows, texts, title=f"policyctl graph: allowed connections ({flows.asked})"), nl=False)


def _objects(filenames: tuple[str, ...], namespace: str, output: str) -> None:
    from policyctl.compiler.graph import PolicyGraph
    from policyctl.compiler.graph_export import to_dot, to_graphml, to_html, to_json

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
