"""The grouped matrix, expanded to pairs, is the oracle's verdict for every pair and probed port.

The table is built from classes (``cli.truthtable``); the reference is
``policy.semantics.evaluate`` per pod pair, at the edge ports of the policies and pods and at
the ends of every allowed run. Clusters come with hostNetwork pods on shared nodes and pods
without an address, where the pod-pair bypasses decide.
"""

from __future__ import annotations

import csv
import dataclasses
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.cli.render_matrix import matrix_document, write_csv
from policyctl.cli.truthtable import MIXED, build_truth_table
from policyctl.policy.endpoints import workload_label
from policyctl.policy.model import Family, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from policyctl.verifier.portsets import ALL, FIRST_PORT, LAST_PORT, NONE, PortSet, parse_ports
from tests.cli.matrixdoc import expanded_table, row_cell
from tests.strategies import clusters, edge_ports

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ports_of(words: str) -> PortSet:
    """The cell words back to a port set (``all``, ``none``, ``TCP 80, UDP 53-54``)."""
    if words in ("all", "none"):
        return ALL if words == "all" else NONE
    found = NONE
    for piece in words.split(", "):
        protocol, span = piece.split(" ")
        found = found | parse_ports(f"{span}/{protocol}")
    return found


def _probes(cluster: Cluster, found: PortSet) -> set[tuple[Protocol, int]]:
    points = {(p, n) for p in Protocol for n in (*edge_ports(cluster), FIRST_PORT, LAST_PORT)}
    for protocol, low, high in found.ranges():
        points |= {(protocol, n) for n in (low - 1, low, high, high + 1) if FIRST_PORT <= n <= LAST_PORT}
    return points


def _with_workloads(cluster: Cluster, owners: list[int]) -> Cluster:
    """Pods given to workloads ``deploy/w<k>`` of their namespace (so a workload has 1-3 pods)."""
    pods = tuple(
        dataclasses.replace(p, workload=f"deploy/w{owners[i % len(owners)]}") for i, p in enumerate(cluster.pods)
    )
    return dataclasses.replace(cluster, pods=pods)


@SETTINGS
@given(clusters(max_pods=6, addressless=True), st.sampled_from(tuple(Family)))
def test_all_ports_cells_are_the_oracle_at_every_probed_port(cluster: Cluster, family: Family) -> None:
    document = matrix_document(build_truth_table(cluster, port=None, family=family), port=None, family=family)
    pods = {p.key: p for p in cluster.pods}
    for source, row in expanded_table(document).items():
        for destination, words in row.items():
            found = _ports_of(words)
            for protocol, number in sorted(_probes(cluster, found)):
                connection = Connection(pods[source], pods[destination], protocol, number, family)
                expected = evaluate(cluster, connection).allowed
                assert found.contains(protocol, number) is expected, (source, destination, protocol, number, words)


@SETTINGS
@given(clusters(max_pods=6, addressless=True), st.data())
def test_one_port_cells_are_the_oracle(cluster: Cluster, data: st.DataObject) -> None:
    family = data.draw(st.sampled_from(tuple(Family)))
    port = (data.draw(st.sampled_from(edge_ports(cluster))), data.draw(st.sampled_from(tuple(Protocol))))
    document = matrix_document(build_truth_table(cluster, port=port, family=family), port=port, family=family)
    pods = {p.key: p for p in cluster.pods}
    for source, row in expanded_table(document).items():
        for destination, cell in row.items():
            expected = evaluate(cluster, Connection(pods[source], pods[destination], port[1], port[0], family)).allowed
            assert cell is expected, (source, destination, port)


@SETTINGS
@given(clusters(max_pods=7), st.lists(st.integers(0, 2), min_size=1, max_size=4), st.data())
def test_workload_cells_are_the_oracle_over_their_member_pairs(
    cluster: Cluster, owners: list[int], data: st.DataObject
) -> None:
    cluster = _with_workloads(cluster, owners)
    port = (data.draw(st.sampled_from(edge_ports(cluster))), data.draw(st.sampled_from(tuple(Protocol))))
    document = matrix_document(
        build_truth_table(cluster, port=port, family=Family.IPV4, workloads=True), port=port, family=Family.IPV4
    )
    members: dict[str, list] = {}
    for pod in cluster.pods:
        members.setdefault(workload_label(pod), []).append(pod)
    for source, row in expanded_table(document).items():
        for destination, cell in row.items():
            answers = {
                evaluate(cluster, Connection(s, d, port[1], port[0], Family.IPV4)).allowed
                for s in members[source]
                for d in members[destination]
                if s.key != d.key or len(members[source]) == 1
            }
            assert cell == (answers.pop() if len(answers) == 1 else MIXED), (source, destination, port)


@SETTINGS
@given(clusters(max_pods=6), st.booleans())
def test_grouped_csv_holds_the_json_group_table(cluster: Cluster, with_port: bool) -> None:
    port = (80, Protocol.TCP) if with_port else None
    table = build_truth_table(cluster, port=port, family=Family.IPV4)
    document = matrix_document(table, port=port, family=Family.IPV4)
    buffer = io.StringIO()
    write_csv(table, buffer, expand=False)
    rows = list(csv.reader(io.StringIO(buffer.getvalue())))
    names = rows[0][2:]
    for row in rows[1:]:
        group = next(g for g in document["groups"] if g["name"] == row[0])
        assert row[1].split(" ") == group["members"]
        expected = [row_cell(document["allowed"][row[0]], n) for n in names]
        assert row[2:] == [("true" if v else "false") if isinstance(v, bool) else v for v in expected]


@SETTINGS
@given(clusters(max_pods=6, addressless=True))
def test_groups_are_maximal(cluster: Cluster) -> None:
    """No two groups could be merged: some unit answers them differently."""
    table = build_truth_table(cluster, port=None, family=Family.IPV4)
    full = dict(zip((u.name for u in table.units), (cells for _, cells in table.rows())))
    names = [u.name for u in table.units]
    position = {n: i for i, n in enumerate(names)}
    for a, first in enumerate(table.groups):
        for second in table.groups[a + 1 :]:
            u, v = position[first.members[0].name], position[second.members[0].name]
            swapped = list(range(len(names)))
            swapped[u], swapped[v] = v, u
            indices = range(len(names))
            same = all(full[names[swapped[s]]][swapped[d]] == full[names[s]][d] for s in indices for d in indices)
            assert not same, (first.name, second.name)
