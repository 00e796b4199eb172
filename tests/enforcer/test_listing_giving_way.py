"""A listing that may give way runs as a child process: its output when left alone, and when
told to give way it is stopped at once (killed and reaped, so it does nothing after)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from policyctl.enforcer.givingway import GaveWay, listing_giving_way


def test_left_alone_it_returns_the_child_s_status_output_and_errors() -> None:
    asked: list[float] = []

    def interrupted() -> bool:
        asked.append(time.monotonic())
        return False

    rc, out, err = listing_giving_way(["sh", "-c", "sleep 0.05; echo '{}'; echo warned >&2; exit 3"], interrupted)
    assert (rc, out, err) == (3, b"{}\n", "warned\n")
    assert asked, "a child that runs for a while is asked about between polls"


def test_told_to_give_way_it_stops_the_child_before_the_child_finishes(tmp_path: Path) -> None:
    marker = tmp_path / "finished"
    with pytest.raises(GaveWay):
        listing_giving_way(["sh", "-c", f"sleep 0.3; touch {marker}"], lambda: True)
    time.sleep(0.6)
    assert not marker.exists(), "the child went on after the listing gave way"


def test_a_child_that_finishes_before_the_first_poll_is_never_interrupted() -> None:
    assert listing_giving_way(["true"], lambda: True, poll=5.0) == (0, b"", "")
