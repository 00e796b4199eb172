"""The enforcement latency bench at a tiny size: agents fed by the API server, real packets.

What is held here is the verdicts, never the times (speed targets live in the bench's JSON):
each write must flip what the prober sees, and the old verdict must have held before it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from policyctl.bench.latency import Probing, Run, Shape, run

pytestmark = pytest.mark.kernel

DEFAULT_CONNTRACK = (("net.netfilter.nf_conntrack_tcp_loose", "1"),)
"""The kernel's default, written out so that no host setting can hide the case it decides: with
it conntrack picks a TCP flow up again from any mid-stream packet, in whichever direction that
packet goes (the ruleset's mid-stream rules answer it, ``docs/ruleset.md``)."""


def _flipped(result: Run, kind: str) -> list[tuple[bool, bool]]:
    return [(m.baseline_ok, m.latency is not None) for m in result.measurements[kind]]


def test_each_write_flips_what_probes_see(state_root: Path, lab_namespaces: set[str]) -> None:
    """A repetition whose old verdict was not seen before the write is void (the bench reports
    how many); every other one must show the new verdict, and each kind needs one."""
    result = run(Shape(pods=8, reps=3, node_sysctls=DEFAULT_CONNTRACK), Probing(deadline=10.0))
    for kind in ("policy_create", "pod_create", "policy_delete"):
        seen = _flipped(result, kind)
        assert (True, True) in seen, (kind, seen)
        assert all(flipped for valid, flipped in seen if valid), (kind, seen)


def test_revoked_flow_stops_under_the_default_conntrack_settings(state_root: Path, lab_namespaces: set[str]) -> None:
    """The server's next packet after revocation (its echo or ACK) would be picked up as a new
    flow from the server, whose egress nothing isolates; it is dropped as a mid-stream pickup
    from a pod with an ingress chain, so the flow stays stopped (``o`` then only ``x``). A
    repetition whose flow could not be opened before the write is void (nothing to revoke)."""
    result = run(Shape(pods=6, reps=3, node_sysctls=DEFAULT_CONNTRACK), Probing(deadline=3.0))
    seen = _flipped(result, "policy_delete")
    assert all(flipped for valid, flipped in seen if valid), seen
    assert sum(valid for valid, _ in seen) >= 2, seen
