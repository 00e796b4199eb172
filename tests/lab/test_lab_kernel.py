"""Real packets in real namespaces: probes, the lab engine, the shared probe cases, cleanup.

Expectations are written from the rules under test, never from the lab's own output: a
hand-written ruleset that drops new connections to pods labelled ``deny: "yes"`` must deny
exactly the pairs whose destination carries the label (a pod reaching itself never leaves its
namespace), for every probe method, family and CNI style.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from policyctl.lab import netns
from policyctl.lab.engine import LabEngine
from policyctl.lab.rulesets import table_name
from policyctl.lab.state import LEASES, load_state
from policyctl.lab.topology import Cni
from policyctl.probecases.engines import Probe
from policyctl.policy.model import Family, Labels, Pod, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.probecases.cases import load_probe_case
from policyctl.probecases.runner import run_case

pytestmark = pytest.mark.kernel

CASES = Path(__file__).resolve().parents[1] / "cases" / "examples"
POLICYCTL = str(Path(sys.executable).with_name("policyctl"))


def drop_new_to_denied(prefix: str) -> Any:
    """A stand-in compiler: every node drops new TCP, UDP and SCTP connections (forward
    hook, after routing or bridging) to pods labelled deny=yes, in both families. ICMPv6 is
    left alone: a neighbour advertisement is not a reply to conntrack, and dropping it would
    cut the pod off its link instead of denying connections."""

    def compile_json(cluster: Cluster, node: str) -> Mapping[str, Any]:
        table = table_name(prefix)
        base = {"family": "inet", "table": table}
        rules = [
            {
                "rule": {
                    **base,
                    "chain": "forward",
                    "expr": [
                        {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}},
                        {
                            "match": {
                                "op": "==",
                                "left": {"meta": {"key": "l4proto"}},
                                "right": {"set": ["tcp", "udp", "sctp"]},
                            }
                        },
                        {
                            "match": {
                                "op": "==",
                                "left": {"payload": {"protocol": "ip6" if a.version == 6 else "ip", "field": "daddr"}},
                                "right": str(a),
                            }
                        },
                        {"drop": None},
                    ],
                }
            }
            for pod in sorted(cluster.pods, key=lambda p: p.key)
            if pod.labels.get("deny") == "yes"
            for a in pod.ips
        ]
        return {"nftables": [
            {"table": {"family": "inet", "name": table}},
            {"chain": {**base, "name": "forward", "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
            *rules,
        ]}

    return compile_json


def expected(cluster: Cluster) -> dict[str, dict[str, bool]]:
    keys = sorted(p.key for p in cluster.pods)
    denied = {p.key for p in cluster.pods if p.labels.get("deny") == "yes"}
    return {s: {d: s == d or d not in denied for d in keys} for s in keys}


def small_cluster() -> Cluster:
    pods = [Pod(ns, name, Labels({"pod": name})) for ns in ("x", "y") for name in ("a", "b")]
    return Cluster(pods=tuple(pods))


@pytest.mark.parametrize("cni", list(Cni), ids=lambda c: c.value)
def test_every_probe_method_sees_allowed_and_denied_pairs_in_both_families(
    cni: Cni, state_root: Path, lab_namespaces: set[str]
) -> None:
    with LabEngine(cni=cni, families=(Family.IPV4, Family.IPV6)) as engine:
        engine._compiler = drop_new_to_denied(engine.state.prefix)
        cluster = small_cluster()
        # x/b (node-2) is denied: same-node (y/b) and cross-node (x/a, y/a) sources.
        step1 = replace(cluster, pods=tuple(
            replace(p, labels=p.labels.with_label("deny", "yes")) if p.key == "x/b" else p for p in cluster.pods))
        for protocol in Protocol:
            for family in Family:
                observation = engine.observe(step1, Probe(80, protocol, family))
                assert (
                    observation.method
                    == {"TCP": "tcp-connect", "UDP": "udp-echo", "SCTP": "sctp-raw-init"}[protocol.value]
                )
                assert observation.allowed == expected(step1), (protocol, family)
        # Next step: the label moves to y/a, x/a goes away, z/c arrives.
        step2 = Cluster(pods=(
            Pod("x", "b", Labels({"pod": "b"})),
            Pod("y", "a", Labels({"pod": "a", "deny": "yes"})),
            Pod("y", "b", Labels({"pod": "b"})),
            Pod("z", "c", Labels({"pod": "c"})),
        ))
        observation = engine.observe(step2, Probe(81, Protocol.TCP, Family.IPV6))
        assert observation.allowed == expected(step2)
        plan = engine.state.plan
        assert plan is not None and "x/a" not in plan.pod_by_key
        assert not (netns.NETNS_DIR / f"{engine.state.prefix}pod-x.a").exists()
        prefix = engine.state.prefix
    assert netns.list_netns(prefix) == []
    assert not (LEASES / prefix).exists()
    assert list(state_root.iterdir()) == []


def test_bridged_nodes_pass_same_node_traffic_to_the_inet_hooks(state_root: Path, lab_namespaces: set[str]) -> None:
    with LabEngine(cni=Cni.BRIDGED) as engine:
        engine._compiler = drop_new_to_denied(engine.state.prefix)
        cluster = small_cluster()
        engine.observe(cluster, Probe(80, Protocol.TCP, Family.IPV4))
        plan = engine.state.plan
        assert plan is not None
        for node in plan.nodes:
            for key in ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"):
                with netns.inside(node.netns):
                    assert Path("/proc/sys", *key.split(".")).read_text().strip() == "1"
        # x/a and y/a share node-1's bridge: only the forward hook can deny this pair.
        same_node = {p.key for p in plan.pods if p.node == plan.pod_by_key["x/a"].node}
        assert same_node == {"x/a", "y/a"}
        denied = replace(cluster, pods=tuple(
            replace(p, labels=Labels({"deny": "yes"})) if p.key == "y/a" else p for p in cluster.pods))
        assert engine.observe(denied, Probe(80, Protocol.TCP, Family.IPV4)).allowed["x/a"]["y/a"] is False


SHARED = sorted(p.name for p in CASES.glob("*.yaml"))


@pytest.mark.parametrize("cni", list(Cni), ids=lambda c: c.value)
@pytest.mark.parametrize("case", SHARED)
def test_shared_probe_cases_pass_with_the_compiler_and_enforcer(
    case: str, cni: Cni, state_root: Path, lab_namespaces: set[str]
) -> None:
    loaded = load_probe_case(CASES / case)
    with LabEngine(cni=cni) as engine:
        result = run_case(loaded, engine)
    assert result.to_json()["passed"], result.to_json()


MANIFEST = """
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {pod: b}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: w, labels: {pod: c}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {pod: a}}}], ports: [{port: 81}]}]
"""


def cli(*args: str, env: Mapping[str, str], check: int | None = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [POLICYCTL, "lab", *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )
    if check is not None:
        assert done.returncode == check, (args, done.stdout, done.stderr)
    return done


def _peer_structures(node_netns: str, table: str) -> set[str]:
    """Which peer layout a node's table holds: its identity maps (marked) or peer maps (jumping)."""
    listed = subprocess.run(["ip", "netns", "exec", node_netns, "nft", "-j", "list", "table", "inet", table],
                            capture_output=True, text=True, check=True).stdout
    names = {item[kind]["name"] for item in json.loads(listed)["nftables"] for kind in ("set", "map") if kind in item}
    return {n for n in names if n.startswith(("in-identities-", "in-peers-v", "eg-identities-", "eg-peers-v"))}


@pytest.mark.parametrize(
    ("cni", "layout", "structures"),
    [(Cni.BRIDGED, (), {"in-identities-v4"}), (Cni.ROUTED, ("--identity-mark", "none"), {"in-peers-v4"})],
    ids=["bridged-agent-layout", "routed-jumping-peer-maps"],
)
def test_lab_up_probe_exec_down_leaves_nothing(
    cni: Cni, layout: tuple[str, ...], structures: set[str], tmp_path: Path, lab_namespaces: set[str]
) -> None:
    env = {"POLICYCTL_LAB_STATE": str(tmp_path / "labs")}
    manifest = tmp_path / "lab.yaml"
    manifest.write_text(MANIFEST)
    name = f"t{os.getpid()}"
    cli("up", "-f", str(manifest), "--cni", cni.value, "--name", name, *layout, env=env)
    state = load_state(tmp_path / "labs" / name)
    try:
        assert state.plan is not None and state.server_pid is not None
        assert len(netns.list_netns(state.prefix)) == 1 + 2 + 3
        held = [_peer_structures(n.netns, table_name(state.prefix)) for n in state.plan.nodes]
        assert structures in held, held
        cases = [
            ("x/a", "x/b", "80/TCP", 1, "tcp-connect"),
            ("x/a", "x/b", "81/TCP", 0, "tcp-connect"),
            ("w/c", "x/b", "81/TCP", 1, "tcp-connect"),
            ("x/b", "x/a", "80/TCP", 0, "tcp-connect"),
            ("w/c", "x/b", "80/SCTP", 1, "sctp-raw-init"),
            ("w/c", "x/a", "80/SCTP", 0, "sctp-raw-init"),
            ("x/b", "w/c", "53/UDP", 0, "udp-echo"),
            ("w/c", "x/b", "53/UDP", 1, "udp-echo"),
        ]
        for source, destination, port, code, used in cases:
            done = cli("probe", "--name", name, source, destination, "--port", port, env=env, check=code)
            assert f"({used})" in done.stdout and ("allowed" if code == 0 else "denied") in done.stdout
        inside = cli("exec", "--name", name, "x/a", "--", "ip", "-o", "addr", "show", env=env)
        assert str(state.plan.pod_by_key["x/a"].addresses[0]) in inside.stdout
        assert name in cli("status", env=env).stdout
    finally:
        cli("down", "--name", name, env=env)
    assert netns.list_netns(state.prefix) == []
    assert not netns_process_alive(state.server_pid)
    assert not (tmp_path / "labs" / name).exists()
    assert not (LEASES / state.prefix).exists()


def netns_process_alive(pid: int | None) -> bool:
    return (
        pid is not None
        and Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
    )


def test_down_all_removes_what_a_killed_lab_up_left_behind(tmp_path: Path, lab_namespaces: set[str]) -> None:
    env = {"POLICYCTL_LAB_STATE": str(tmp_path / "labs")}
    manifest = tmp_path / "lab.yaml"
    manifest.write_text(MANIFEST)
    process = subprocess.Popen([POLICYCTL, "lab", "up", "-f", str(manifest), "--name", "crash"],
                               env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_file = tmp_path / "labs" / "crash" / "lab.json"
    deadline = time.monotonic() + 30
    prefix = None
    while time.monotonic() < deadline:
        if prefix is None and state_file.exists():
            prefix = load_state(tmp_path / "labs" / "crash").prefix
        if prefix and netns.list_netns(prefix):
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert prefix is not None and netns.list_netns(prefix), "the lab was killed before it created anything"
    # The description is lost too: only the prefix on the namespaces is left to go by.
    state_file.unlink()
    done = cli("down", "--all", env=env)
    assert "removed" in done.stdout
    assert netns.list_netns(prefix) == []
    assert not (LEASES / prefix).exists()
