"""``policyctl agent`` as the DaemonSet runs it: a process that enforces, logs JSON, and on
SIGTERM exits 0 leaving its rules in the kernel (``--cleanup`` is what removes them)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from policyctl.enforcer.apply import Enforcer
from tests.agent.conftest import TABLE, expected_document, seed
from tests.apiserver import FakeApiServer

pytestmark = pytest.mark.kernel

POLICYCTL = str(Path(sys.executable).with_name("policyctl"))


def test_sigterm_leaves_the_rules_in_place_and_cleanup_removes_them(
    apiserver: FakeApiServer, kernel: Enforcer, node_netns: str, tmp_path: Path
) -> None:
    seed(apiserver)
    kubeconfig = apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    argv = [POLICYCTL, "agent", "--kubeconfig", kubeconfig, "--netns", node_netns, "--table", TABLE,
            "--metrics-port", "-1", "--health-port", "0", "--min-interval", "0.05", "--keep-established",
            "--identity-mark", "none"]
    process = subprocess.Popen(argv, env={"NODE_NAME": "node-a", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        expected = expected_document(apiserver)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (kernel.current() is not None and kernel.plan(expected).empty):
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        assert kernel.plan(expected).empty, "the agent never applied the ruleset"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert kernel.current() is not None and kernel.plan(expected).empty, "rules changed on shutdown"
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(line["msg"] == "agent stopped; the ruleset stays in force" for line in lines), stderr
    assert all(line["node"] == "node-a" for line in lines)

    done = subprocess.run([POLICYCTL, "agent", "--cleanup", "--netns", node_netns, "--table", TABLE],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert kernel.current() is None
