"""Packets of drawn connections, for comparing two rulesets' evaluators packet by packet."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import strategies as st

from policyctl.compiler.elements import PROTOCOL_NUMBERS
from policyctl.compiler.evaluator import Packet
from policyctl.policy.cluster import Cluster
from policyctl.policy.ipblocks import end_address
from policyctl.policy.verdicts import Connection
from tests.strategies import connections

HOOKS = ("postrouting", "input", "prerouting", "output")


def drawn_packets(
    data: st.DataObject, cluster: Cluster, count: int, *, mark: int = 0
) -> Iterator[tuple[Connection, Packet]]:
    """Up to ``count`` connections drawn in ``cluster``, each with its first packet (carrying
    ``mark``); connections with an end that has no address are skipped."""
    for _ in range(count):
        connection = data.draw(connections(cluster))
        source = end_address(cluster, connection.source, connection.family).address
        destination = end_address(cluster, connection.destination, connection.family).address
        if source is None or destination is None:
            continue
        yield connection, Packet(source, destination, PROTOCOL_NUMBERS[connection.protocol], connection.port, mark=mark)
