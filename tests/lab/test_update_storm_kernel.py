"""No packet lost, no window open: allowed streams keep flowing and denied traffic never
passes while the rules change under them, with real packets between lab pods
(:mod:`policyctl.bench.storm` lays out the pods, the policies, the rounds and the traffic).

Applied by the agent's sync step (every tenth round a full resync, new enforcers halfway), in
the default (marked) peer layout and the jumping one, and by ``policyctl agent`` processes in
the default layout reading the project's API server, one stopped with
SIGTERM and one killed with SIGKILL halfway: in both, the TCP stream retransmits nothing and
is never reset, every UDP datagram arrives in order (a datagram the reader's socket buffer
had no room for is counted by the kernel, apart), every new allowed connection is accepted
and no denied one gets through.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from policyctl.bench.agentlab import AgentLab
from policyctl.bench.storm import AgentProcesses, NodeSyncs, Traffic, expected_document, run_storm, storm_lab
from policyctl.compiler.markedpeers import DEFAULT_IDENTITY_MARK, IdentityMark

pytestmark = pytest.mark.kernel


@pytest.fixture
def lab(state_root: Path, lab_namespaces: set[str]) -> Iterator[AgentLab]:
    with storm_lab() as built:
        yield built


def check(seen: Traffic) -> None:
    assert seen.wrong == []
    assert seen.tcp_sent > 0 and seen.tcp_received == seen.tcp_sent and seen.tcp_retransmitted == 0
    assert seen.udp_reordered == 0
    assert seen.udp_lost == seen.udp_receive_buffer_errors, "datagrams lost in the network, not by the reader"
    assert seen.allowed_attempts > 0 and seen.denied_attempts > 0
    assert seen.allowed_refused == seen.denied_passed == 0


def storm_of_syncs(lab: AgentLab, rounds: int, identity_mark: IdentityMark | None = DEFAULT_IDENTITY_MARK) -> None:
    syncs = NodeSyncs(lab, identity_mark)
    check(run_storm(lab, syncs, rounds))
    assert syncs.sent >= rounds, "every round must change x/b's node's table"
    assert syncs.resyncs == rounds // 10


@pytest.mark.parametrize("identity_mark", [DEFAULT_IDENTITY_MARK, None], ids=["marked", "jumping"])
def test_streams_lose_nothing_and_denied_traffic_never_passes_across_200_updates(
    lab: AgentLab, identity_mark: IdentityMark | None
) -> None:
    storm_of_syncs(lab, 200, identity_mark)


@pytest.mark.slow
def test_streams_lose_nothing_and_denied_traffic_never_passes_across_1000_updates(lab: AgentLab) -> None:
    storm_of_syncs(lab, 1000)


def test_streams_lose_nothing_and_denied_traffic_never_passes_while_agent_processes_restart(
    lab: AgentLab, tmp_path: Path
) -> None:
    agents = AgentProcesses(lab, lab.server.write_kubeconfig(tmp_path / "kubeconfig"))
    rounds = 200
    check(run_storm(lab, agents, rounds))
    assert agents.retired == {"node-1": 0, "node-2": -signal.SIGKILL}
    assert agents.restarted_at is not None
    assert expected_document(lab, rounds, "node-2") != expected_document(lab, agents.restarted_at - 1, "node-2"), (
        "the last round must change what the restarted agents program"
    )
    assert agents.final_converged, "the restarted agents never programmed the last round"
