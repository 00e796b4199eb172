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

FOREIGN_MARK = 0xA5A0A5A5
"""Bits other components set (kube-proxy's 0x4000 among them), none of them in 0x000F0000,
the identity mark the marked-layout tests give."""


def arriving_marks(mask: int) -> st.SearchStrategy[int]:
    """The marks packets arrive with: :data:`FOREIGN_MARK`, with any of ``mask``'s bits set
    too (a component that uses them as well sends its packets down the path that finds
    peers without marks) or none (the marked path)."""
    return st.integers(0, 0xFFFFFFFF).map(lambda bits: FOREIGN_MARK & ~mask | bits & mask)


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
