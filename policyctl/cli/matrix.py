"""``policyctl matrix``: who may connect to whom, for every ordered pair of pods or workloads."""

from __future__ import annotations

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
from policyctl.cli.render_matrix import render_matrix
from policyctl.cli.truthtable import MIXED, Cell, TruthTable, build_truth_table, group_units, units_of
from policyctl.policy.model import Cluster, Family, Protocol
from policyctl.verifier.portsets import PortSet
from policyctl.verifier.relation import connectivity


def all_ports_table(cluster: Cluster, *, family: Family, workloads: bool) -> TruthTable:
    """The table of allowed port ranges from the verifier's relation: ``all``, ``none`` or
    ``TCP 80-81; UDP 53``; a workload cell whose member pairs differ is ``mixed``."""
    relation = connectivity(cluster, families=(family,))
    units = units_of(cluster, workloads=workloads)
    cells: dict[str, dict[str, Cell]] = {}
    for source in units:
        row = cells.setdefault(source.name, {})
        for destination in units:
            answers = {
                _cell(relation.ports(s, d, family=family))
                for s in source.pods
                for d in destination.pods
                if s.key != d.key or len(source.pods) == 1
            }
            row[destination.name] = answers.pop() if len(answers) == 1 else MIXED
    return TruthTable(units, cells, group_units(units, cells))


def _cell(ports: PortSet) -> str:
    """The words the per-port table uses: ``all``, ``none`` or ``TCP 80, TCP 443-444``."""
    if ports.is_all:
        return "all"
    if not ports:
        return "none"
    return ", ".join(f"{p.value} {low}" if low == high else f"{p.value} {low}-{high}" for p, low, high in ports.ranges())


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
    "--all-ports",
    is_flag=True,
    help="Cells list the allowed port ranges per protocol, proved over every port from the "
    "policies' symbolic form (fast on large clusters; the same answers as without --port).",
)
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
    all_ports: bool,
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
    if all_ports and port is not None:
        raise fail("--all-ports and --port exclude each other")
    if all_ports:
        table = all_ports_table(cluster, family=chosen, workloads=workloads)
    else:
        table = build_truth_table(cluster, port=port, family=chosen, workloads=workloads)
    render_matrix(table, output=output, port=port, family=chosen)
