"""The rendered JSON is accepted by the real kernel and lists back as the same table.

Each ruleset is applied with ``nft -j -f`` inside a throwaway network namespace
(``unshare -n``: the namespace, and the table with it, is gone when the command exits, also on
failure), then ``nft -j list table`` is parsed and compared with what was sent, handles and
metainfo aside.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.compiler.compile import compile_node
from policyctl.compiler.render_json import render_json, replace_batch
from policyctl.compiler.ruleset import Mode
from policyctl.policy.cluster import Cluster
from tests.builders import cluster, container_port, ip_block, node, pod, pod_peer, policy, port, rule, standard_cluster
from tests.cluster_strategies import tiered_clusters
from tests.strategies import clusters

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="applying nftables needs root"),
    pytest.mark.skipif(
        shutil.which("nft") is None or shutil.which("unshare") is None, reason="nft or unshare is not installed"
    ),
]


def apply_and_list(document: str, table: str, *, twice: bool = False) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        f.write(document)
        f.flush()
        again = f" && nft -j -f {f.name}" if twice else ""
        script = f"nft -j -f {f.name}{again} && nft -j list table inet {table}"
        done = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def normalised(document: dict[str, Any]) -> list[str]:
    found = []
    for item in document["nftables"]:
        (kind, body), = item.items()
        if kind == "metainfo":
            continue
        body = {k: v for k, v in body.items() if k != "handle"}
        if "elem" in body:  # hash sets list in hash order
            body["elem"] = sorted(body["elem"], key=lambda e: json.dumps(e, sort_keys=True))
        found.append(json.dumps({kind: body}, sort_keys=True))
    return sorted(found)


def dual_stack_cluster() -> Cluster:
    return cluster(
        node("n1", "192.168.0.1", "fd00:192::1"),
        node("n2", "192.168.0.2", "fd00:192::2"),
        pod(
            "x/a",
            {"app": "a"},
            node="n1",
            ips=["10.0.1.1", "fd00:10:1::1"],
            ports=[container_port(8080, "TCP", "http")],
        ),
        pod(
            "x/b", {"app": "b"}, node="n1", ips=["10.0.1.2", "fd00:10:1::2"], ports=[container_port(5353, "UDP", "dns")]
        ),
        pod(
            "y/c",
            {"app": "c"},
            node="n2",
            ips=["10.0.2.1", "fd00:10:2::1"],
            ports=[container_port(9000, "SCTP", "sig")],
        ),
        pod("y/h", {"app": "c"}, node="n2", ips=["192.168.0.2", "fd00:192::2"], host_network=True),
        policy(
            "x/a",
            {"app": "a"},
            ingress=[
                rule(
                    pod_peer({"app": "b"}),
                    ip_block("10.0.0.0/8", "10.0.2.0/24", "10.0.3.128/25"),
                    ports=[port("http"), port(9000, "SCTP", 9100)],
                ),
                rule(ip_block("fd00::/16", "fd00:10:2::/64")),
            ],
            egress=[
                rule(pod_peer({}, {}), ports=[port("dns", "UDP"), port("sig", "SCTP")]),
                rule(ports=[port(53, "UDP"), port(None, "TCP")]),
            ],
        ),
        policy("y/none", {}, types=["Ingress", "Egress"]),
    )


RULESETS = [
    pytest.param(lambda: compile_node(standard_cluster(), "node-1"), id="no-policies"),
    pytest.param(
        lambda: compile_node(standard_cluster(policy("x/deny", {})), "node-1", table="pc-test"),
        id="deny-all-other-table-name",
    ),
    pytest.param(lambda: compile_node(dual_stack_cluster(), "n1"), id="dual-stack-n1"),
    pytest.param(lambda: compile_node(dual_stack_cluster(), "n2", mode=Mode.AUDIT), id="dual-stack-n2-audit"),
]


@pytest.mark.parametrize("make", RULESETS)
def test_kernel_accepts_ruleset_and_lists_it_back(make: Any) -> None:
    ruleset = make()
    sent = json.loads(render_json(ruleset))
    listed = apply_and_list(render_json(ruleset), ruleset.table)
    assert normalised(listed) == normalised(sent)


def test_replace_batch_applies_twice_to_one_table() -> None:
    ruleset = compile_node(dual_stack_cluster(), "n1")
    listed = apply_and_list(json.dumps(replace_batch(ruleset)), ruleset.table, twice=True)
    assert normalised(listed) == normalised(json.loads(render_json(ruleset)))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(max_pods=6, max_policies=4))
def test_kernel_accepts_rulesets_of_random_clusters(random_cluster: Cluster) -> None:
    ruleset = compile_node(random_cluster, random_cluster.nodes[0].name)
    listed = apply_and_list(render_json(ruleset), ruleset.table)
    assert normalised(listed) == normalised(json.loads(render_json(ruleset)))


def test_kernel_accepts_the_text_rendering() -> None:
    from policyctl.compiler.render_text import render_text

    text = render_text(compile_node(dual_stack_cluster(), "n1", mode=Mode.AUDIT))
    done = subprocess.run(["unshare", "-n", "nft", "-f", "-"], input=text, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiered_clusters(max_pods=6, max_policies=3, max_cluster_policies=4), st.sampled_from(list(Mode)))
def test_kernel_accepts_rulesets_of_random_tiered_clusters(random_cluster: Cluster, mode: Mode) -> None:
    """Admin and Baseline rules: per-rule interval sets (addresses, and address . protocol .
    port), goto to the Pass and deny chains, counter-only rules for domainNames."""
    for each in random_cluster.nodes:
        ruleset = compile_node(random_cluster, each.name, mode=mode)
        listed = apply_and_list(render_json(ruleset), ruleset.table)
        assert normalised(listed) == normalised(json.loads(render_json(ruleset)))


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiered_clusters(max_pods=6, max_policies=3, max_cluster_policies=4))
def test_kernel_accepts_the_text_rendering_of_tiered_clusters(random_cluster: Cluster) -> None:
    from policyctl.compiler.render_text import render_text

    text = render_text(compile_node(random_cluster, random_cluster.nodes[0].name))
    done = subprocess.run(["unshare", "-n", "nft", "-f", "-"], input=text, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
