"""Whole-process measurement: peak memory is the child's own, a stopped child is reported so."""

from __future__ import annotations

import sys

import pytest

from policyctl.bench.commands import assertions_document, pair_for_explain, run_process
from policyctl.bench.gen import SCALES, generate


def test_peak_memory_is_the_childs_own_not_the_parents() -> None:
    ballast = bytearray(300 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])
    small = run_process([sys.executable, "-c", "pass"], timeout=60)
    large = run_process(
        [sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"], timeout=60
    )
    assert small.returncode == large.returncode == 0
    assert small.rss_mb < 100, small
    assert large.rss_mb >= 200, large
    del ballast


def test_a_child_over_its_time_is_stopped_and_reported_as_such() -> None:
    done = run_process([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert done.timed_out and not done.ok((0,))
    assert done.seconds < 10


@pytest.mark.parametrize(
    ("code", "stderr", "ok"),
    [
        pytest.param(1, "", True, id="exit-1-is-an-answer"),
        pytest.param(1, "Traceback (most recent call last):\\n  boom", False, id="exit-1-with-traceback-is-a-crash"),
        pytest.param(2, "", False, id="exit-2-is-bad-input"),
    ],
)
def test_exit_status_and_tracebacks_decide_whether_a_run_counts(code: int, stderr: str, ok: bool) -> None:
    script = f"import sys; sys.stderr.write({stderr!r}); sys.exit({code})"
    assert run_process([sys.executable, "-c", script], timeout=60).ok((0, 1)) is ok


def test_generated_assertions_and_explain_pair_name_real_ends() -> None:
    manifests = generate(SCALES["tiny"])
    namespaces = {m["metadata"]["name"] for m in manifests if m["kind"] == "Namespace"}
    pods = {f"{m['metadata']['namespace']}/{m['metadata']['name']}" for m in manifests if m["kind"] == "Pod"}
    document = assertions_document(manifests)
    assert {a["to"]["namespace"] for a in document["assertions"]} <= namespaces
    source, destination = pair_for_explain(manifests)
    assert {source, destination} <= pods and source != destination
