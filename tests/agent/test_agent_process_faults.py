"""The ``policyctl agent`` process (the CLI, with its real backoff of 0.2 s doubling to 30 s)
against the project's API server with each fault a broken server or proxy produces injected.

For every fault: the agent keeps running with all its threads (none died, none restarted),
the ruleset it last applied stays in the kernel byte for byte (``nft list table``) while
the fault lasts, whatever changed on the server meanwhile, ``/readyz`` turns 503 naming the
cache and the failure while ``/healthz`` stays 200, ``policyctl_watch_stale_seconds`` shows
how long, and after the fault the table converges to the server's objects and ``/readyz``
is 200 again."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from policyctl.enforcer.apply import Enforcer
from tests.agent.conftest import TABLE, expected_document, seed
from tests.apiserver import FakeApiServer
from tests.apiserver.server import Fault
from tests.kubeapi import objects as raw

pytestmark = pytest.mark.kernel

POLICYCTL = str(Path(sys.executable).with_name("policyctl"))
STALE_AFTER = 1.5
HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
KINDS = ("Pod", "Namespace", "Node", "NetworkPolicy")
AGENT_POD = ("kube-system", "policyctl-agent-x7k2p")


def agent_pod() -> dict[str, Any]:
    """The agent's own pod, as the DaemonSet runs it: host network, on node-a."""
    obj = raw.pod(f"{AGENT_POD[0]}/{AGENT_POD[1]}", {"app.kubernetes.io/name": "policyctl-agent"},
                  ip="192.168.50.1", node="node-a")  # fmt: skip
    obj["spec"]["hostNetwork"] = True
    return obj


class AgentProcess:
    """``policyctl agent`` as a child process: its JSON log lines as they come, its health
    and metrics ports from the ``agent started`` line."""

    def __init__(self, argv: list[str]) -> None:
        env = {"NODE_NAME": "node-a", "POD_NAME": AGENT_POD[1], "POD_NAMESPACE": AGENT_POD[0],
               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # fmt: skip
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        started = self.wait_for(lambda line: line.get("msg") == "agent started", timeout=20)
        self.health = f"http://127.0.0.1:{started['health_port']}"
        self.metrics = f"http://127.0.0.1:{started['metrics_port']}/metrics"

    def _read(self) -> None:
        assert self.process.stderr is not None
        for text in self.process.stderr:
            self.raw.append(text)
            if text.startswith("{"):
                self.lines.append(json.loads(text))

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], *, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((line for line in list(self.lines) if predicate(line)), None)
            if found is not None:
                return found
            assert self.process.poll() is None, "".join(self.raw)
            time.sleep(0.05)
        raise AssertionError(f"no such log line within {timeout}s:\n{''.join(self.raw[-30:])}")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.health + path, timeout=3) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def samples(self, family: str) -> dict[tuple[tuple[str, str], ...], float]:
        """The samples of a metric family (a counter's family is named without ``_total``)."""
        with urllib.request.urlopen(self.metrics, timeout=3) as response:
            text = response.read().decode()
        found: dict[tuple[tuple[str, str], ...], float] = {}
        for metric in text_string_to_metric_families(text):
            if metric.name == family:
                for sample in metric.samples:
                    found[tuple(sorted(sample.labels.items()))] = sample.value
        return found

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return self.process.returncode


def nft_table(netns: str) -> str:
    """``nft list table`` in the node's namespace: what the kernel holds, as an operator sees it."""
    done = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "inet", TABLE],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait(predicate: Callable[[], bool], *, timeout: float, what: str, process: AgentProcess) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{''.join(process.raw[-20:])}")
        assert process.process.poll() is None, "".join(process.raw)
        time.sleep(0.1)


@pytest.fixture
def agent(apiserver: FakeApiServer, kernel: Enforcer, node_netns: str, tmp_path: Path) -> Iterator[AgentProcess]:
    seed(apiserver)
    apiserver.create(raw.namespace(AGENT_POD[0]))
    apiserver.create(agent_pod())
    kubeconfig = apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    running = AgentProcess([
        POLICYCTL, "agent", "--kubeconfig", kubeconfig, "--netns", node_netns, "--table", TABLE,
        "--metrics-port", "0", "--health-port", "0", "--min-interval", "0.05", "--retry-interval", "0.5",
        "--read-timeout", "1", "--stale-after", str(STALE_AFTER), "--keep-established", "--identity-mark", "none",
    ])  # fmt: skip
    try:
        wait(lambda: running.get("/readyz")[0] == 200, timeout=20, what="ready", process=running)
        assert kernel.plan(expected_document(apiserver)).empty
        yield running
    finally:
        code = running.stop()
        assert code == 0, "".join(running.raw[-30:])


@dataclass(frozen=True)
class Scenario:
    """A fault, how it is brought on, the restart reason it shows and the words /readyz says."""

    faults: tuple[Fault, ...]
    trigger: str
    reason: str
    says: str


def each_kind(**fields: Any) -> tuple[Fault, ...]:
    return (Fault(**fields),)


SCENARIOS = [
    pytest.param(Scenario(each_kind(verb="list", body=HTML, content_type="text/html"), "relist", "malformed",
                          "is not JSON"), id="an-html-page-with-200-after-a-410"),
    pytest.param(Scenario(each_kind(verb="list", truncate=100, honest_length=True), "relist", "malformed",
                          "is not JSON"), id="a-truncated-list"),
    pytest.param(Scenario(each_kind(verb="list", body=b"{}"), "relist", "malformed",
                          "has no metadata"), id="an-empty-json-object-for-a-list"),
    pytest.param(Scenario(each_kind(verb="watch", body=b'{"type": "ADDED", "object": {"metadata": []}}\n'),
                          "inject", "malformed", "has no metadata.name"), id="malformed-watch-events"),
    pytest.param(Scenario(each_kind(status=500), "reconnect", "error", "API request failed: 500"),
                 id="http-500-on-every-request"),
    pytest.param(Scenario(each_kind(stall=math.inf), "reconnect", "timeout", "no answer in time"),
                 id="a-silent-server"),
    pytest.param(Scenario(each_kind(verb="list", trickle=0.02), "relist", "timeout", "not read whole within"),
                 id="a-server-sending-a-byte-at-a-time"),
]


#: The resources whose objects the fault tests change while the fault lasts.
CHANGED = ("pods", "networkpolicies")


def bring_on(server: FakeApiServer, scenario: Scenario, agent: AgentProcess) -> None:
    """Put the fault in place. A relist is forced by compacting and expiring the open watches,
    until every resource the test then changes has relisted into the fault: a watch that ended
    by its timeout and reconnects just then, from the current version (which compaction leaves
    valid), escapes one expiry and would see the changes."""
    for fault in scenario.faults:
        server.add_fault(fault)
    if scenario.trigger == "relist":

        def relisted_into_the_fault() -> bool:
            server.compact()
            server.expire_watches()
            restarts = agent.samples("policyctl_watch_restarts")
            return all(
                any(dict(labels) == {"resource": r, "reason": scenario.reason} for labels in restarts) for r in CHANGED
            )

        wait(relisted_into_the_fault, timeout=25, what="every changed resource to relist into the fault", process=agent)
    elif scenario.trigger == "reconnect":
        server.drop_watches()
    else:
        for kind in KINDS:
            server.inject_raw(kind, b'{"type": "MODIFIED", "object": "not an object"}')


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_fault_keeps_the_last_ruleset_fails_readiness_and_converges_after(
    apiserver: FakeApiServer, kernel: Enforcer, node_netns: str, agent: AgentProcess, scenario: Scenario
) -> None:
    before = nft_table(node_netns)
    bring_on(apiserver, scenario, agent)
    if scenario.trigger != "inject":
        apiserver.delete("Pod", "edge", "gw-1")
        apiserver.delete("NetworkPolicy", "other", "deny-all")
    wait(lambda: scenario.says in agent.get("/readyz")[1], timeout=25, what="/readyz to fail saying why",
         process=agent)  # fmt: skip
    status, reasons = agent.get("/readyz")
    assert status == 503 and "out of sync for" in reasons, reasons
    assert agent.get("/healthz") == (200, "ok\n")
    assert nft_table(node_netns) == before, "the ruleset changed during the fault"
    # Polled, not read once: where only watches break, each relist puts a cache back in sync
    # for a moment, so the gauge readiness read can restart before a single later reading.
    wait(lambda: max(agent.samples("policyctl_watch_stale_seconds").values()) > STALE_AFTER, timeout=25,
         what="policyctl_watch_stale_seconds to pass --stale-after", process=agent)  # fmt: skip
    restarts = agent.samples("policyctl_watch_restarts")
    assert sum(v for labels, v in restarts.items() if ("reason", scenario.reason) in labels) >= 1, restarts

    if scenario.trigger == "inject":
        apiserver.delete("Pod", "edge", "gw-1")
        apiserver.delete("NetworkPolicy", "other", "deny-all")
    apiserver.clear_faults()
    wait(lambda: kernel.plan(expected_document(apiserver)).empty, timeout=45, what="the table to converge",
         process=agent)  # fmt: skip
    assert "10.50.1.11" not in nft_table(node_netns), "the deleted peer is still allowed"
    wait(lambda: agent.get("/readyz") == (200, "ok\n"), timeout=45, what="/readyz to pass again", process=agent)
    wait(lambda: set(agent.samples("policyctl_watch_stale_seconds").values()) == {0.0}, timeout=10,
         what="every cache in sync", process=agent)  # fmt: skip
    assert not agent.samples("policyctl_thread_restarts"), "a thread died"
    assert not [line for line in agent.lines if line.get("msg", "").startswith("thread")], "a thread died"


def test_a_view_without_this_node_never_reaches_the_kernel(
    apiserver: FakeApiServer, kernel: Enforcer, node_netns: str, agent: AgentProcess
) -> None:
    """A proxy answering the Nodes list with a well-formed empty list: the nodes cache empties
    out, every sync refuses a view without this node (changes that arrive meanwhile
    included), and the ruleset stays until the node is back."""
    before = nft_table(node_netns)
    empty = json.dumps({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []})
    apiserver.add_fault(Fault(verb="list", kind="Node", body=empty.encode()))
    apiserver.compact()
    apiserver.expire_watches("Node")
    agent.wait_for(lambda line: line.get("msg") == "sync failed; the previous ruleset stays in force"
                   and "node node-a is not among the 0 nodes" in line.get("error", ""), timeout=20)  # fmt: skip
    apiserver.delete("Pod", "edge", "gw-1")
    wait(lambda: agent.get("/readyz")[0] == 503, timeout=20, what="/readyz to fail", process=agent)
    assert "syncs have failed for" in agent.get("/readyz")[1]
    assert nft_table(node_netns) == before, "an empty view reached the kernel"
    apiserver.clear_faults()
    apiserver.compact()
    apiserver.expire_watches()
    wait(lambda: agent.get("/readyz") == (200, "ok\n"), timeout=45, what="/readyz to pass again", process=agent)
    assert kernel.plan(expected_document(apiserver)).empty


def test_well_formed_empty_lists_of_pods_namespaces_and_nodes_never_empty_the_table(
    apiserver: FakeApiServer, kernel: Enforcer, node_netns: str, agent: AgentProcess
) -> None:
    """A proxy answering lists with well-formed empty lists: whichever cache empties first,
    the view lacks this node, this agent's pod or its namespace, and is never applied."""
    before = nft_table(node_netns)
    for kind in ("Pod", "Namespace", "Node"):
        body = json.dumps({"kind": f"{kind}List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                           "items": []}).encode()  # fmt: skip
        apiserver.add_fault(Fault(verb="list", kind=kind, body=body))
    apiserver.compact()
    apiserver.expire_watches()
    agent.wait_for(lambda line: line.get("msg") == "sync failed; the previous ruleset stays in force", timeout=20)
    wait(lambda: "syncs have failed for" in agent.get("/readyz")[1], timeout=20, what="/readyz to fail",
         process=agent)  # fmt: skip
    assert nft_table(node_netns) == before, "an empty view reached the kernel"
    errors = {line.get("error", "") for line in agent.lines if line.get("msg", "").startswith("sync failed")}
    assert all("nothing applied" in e for e in errors), errors
    apiserver.clear_faults()
    apiserver.compact()
    apiserver.expire_watches()
    wait(lambda: agent.get("/readyz") == (200, "ok\n"), timeout=45, what="/readyz to pass again", process=agent)
    assert kernel.plan(expected_document(apiserver)).empty
