"""``policyctl matrix``: who may connect to whom, for every ordered pair of pods or workloads.

Wiring only: the class relation (``verifier.relation``) refined into pod groups
(``verifier.classes``), the grouped table (``cli.truthtable``) and its formats
(``cli.render_matrix``). Nothing here visits pod pairs; ``--expand`` streams the per-unit
table row by row. Those are imported when the command runs, not when its command line is
completed.
"""

from __future__ import annotations

import click

from policyctl.cli.completion import complete_port
from policyctl.cli.inputs import (
    fail,
    family_option,
    filename_option,
    load_cluster,
    namespace_option,
    output_option,
    parse_family,
)
from policyctl.cli.namedports import NamedPort, PortOrNameType
from policyctl.cli.progress import Progress, quiet_option
from policyctl.policy.model import Family, Protocol


@click.command()
@filename_option
@namespace_option
@click.option(
    "--port",
    type=PortOrNameType(),
    shell_complete=complete_port,
    default=None,
    help="The port and protocol to decide, e.g. 8080/TCP, or a container port's name (http), decided "
    "on each destination's own port of that name. Without it a cell lists the allowed ports (exact "
    "ranges over TCP, UDP and SCTP).",
)
@family_option
@output_option(("table", "json", "csv", "markdown"))
@click.option(
    "--all-ports",
    is_flag=True,
    help="Cells list the allowed port ranges per protocol (the default without --port), proved "
    "over every port from the policies' symbolic form.",
)
@click.option(
    "--workloads",
    is_flag=True,
    help="Rows and columns are workloads (ns/deploy/web) instead of pods.",
)
@click.option(
    "--expand",
    is_flag=True,
    help="json and csv: the full per-pod (or per-workload) table, written row by row, instead of "
    "groups. Its size is the number of units squared.",
)
@quiet_option
def matrix(
    filenames: tuple[str, ...],
    namespace: str,
    port: tuple[int, Protocol] | NamedPort | None,
    family: str | None,
    output: str,
    workloads: bool,
    all_ports: bool,
    expand: bool,
    quiet: bool,
) -> None:
    """The truth table of new connections between all pods (rows: from, columns: to).

    Pods that are interchangeable (the same answers to and from everyone else, and between
    each other) are grouped, in every format, and the groups' members listed, so a large
    cluster stays readable; --expand writes the full table (json, csv). hostNetwork pods are
    marked: policies never select them, so only ipBlocks decide traffic with them. A pod
    reaching its own address is always allowed (it never leaves its network namespace).
    """
    from policyctl.cli.namedmatrix import resolve_for_matrix
    from policyctl.cli.render_matrix import render_matrix
    from policyctl.cli.truthtable import build_truth_table
    from policyctl.verifier.classes import PodGroups
    from policyctl.verifier.relation import connectivity

    if all_ports and port is not None:
        raise fail("--all-ports and --port exclude each other")
    if expand and output not in ("json", "csv"):
        raise fail("--expand is for -o json and -o csv")
    progress = Progress.for_terminal(quiet=quiet)
    with progress.phase("loading manifests"):
        cluster = load_cluster(filenames, namespace=namespace)
    chosen = parse_family(family) or Family.IPV4
    with progress.phase("computing the relation over classes"):
        groups = PodGroups(connectivity(cluster, families=(chosen,)), chosen)
    shown: tuple[int | str, Protocol] | None = port if not isinstance(port, NamedPort) else (port.name, port.protocol)
    if isinstance(port, NamedPort):
        groups = resolve_for_matrix(port, cluster, groups)
        port = groups.decided
    with progress.phase(f"grouping {len(groups)} pod classes"):
        table = build_truth_table(cluster, port=port, family=chosen, workloads=workloads, groups=groups)
    with progress.phase("writing the table"):
        render_matrix(table, output=output, port=shown, family=chosen, expand=expand)
