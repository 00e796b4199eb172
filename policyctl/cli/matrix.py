"""``policyctl matrix``: who may connect to whom, for every ordered pair of pods or workloads."""

from __future__ import annotations

import click

from policyctl.cli.inputs import (
    PortType,
    family_option,
    filename_option,
    load_cluster,
    namespace_option,
    output_option,
    parse_family,
)
from policyctl.cli.render_matrix import render_matrix
from policyctl.cli.truthtable import build_truth_table
from policyctl.policy.model import Family, Protocol


@click.command()
@filename_option
@namespace_option
@click.option(
    "--port",
    type=PortType(),
    default=None,
    help="The port and protocol to decide, e.g. 8080/TCP. Without it a cell lists the "
    "allowed ports (exact ranges over TCP, UDP and SCTP).",
)
@family_option
@output_option(("table", "json", "csv", "markdown"))
@click.option(
    "--workloads",
    is_flag=True,
    help="Rows and columns are workloads (ns/deploy/web) instead of pods.",
)
def matrix(
    filenames: tuple[str, ...],
    namespace: str,
    port: tuple[int, Protocol] | None,
    family: str | None,
    output: str,
    workloads: bool,
) -> None:
    """The truth table of new connections between all pods (rows: from, columns: to).

    Pods that are interchangeable (the same answers to and from everyone else, and between
    each other) are grouped, and the group's members listed, so a large cluster stays
    readable; csv and the JSON 'allowed' table are always per pod. hostNetwork pods are
    marked: policies never select them, so only ipBlocks decide traffic with them. A pod
    reaching its own address is always allowed (it never leaves its network namespace).
    """
    cluster = load_cluster(filenames, namespace=namespace)
    chosen = parse_family(family) or Family.IPV4
    table = build_truth_table(cluster, port=port, family=chosen, workloads=workloads)
    render_matrix(table, output=output, port=port, family=chosen)
