"""Sending the drop log to an NFLOG group changes the log statements and nothing else."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

import pytest

from policyctl.compiler.compile import compile_node
from policyctl.compiler.delta import patch
from policyctl.compiler.droplog import delta_to_group, log_to_group
from policyctl.compiler.evaluator import Evaluator, Packet
from policyctl.compiler.incremental import NodeCompiler
from policyctl.compiler.render_json import to_document
from policyctl.compiler.render_text import render_text
from policyctl.compiler.ruleset import Log, Mode, Ruleset
from policyctl.manifests.loader import load
from policyctl.policy.cluster import Cluster
from tests.builders import pod

FIXTURE = Path(__file__).parents[1] / "fixtures" / "drops" / "cluster.yaml"


def addressed() -> Cluster:
    """The fixture with addresses: lab/a, shop/a on node-1, lab/e, shop/b on node-2."""
    cluster = load([str(FIXTURE)]).cluster
    ips = {"lab/a": "10.0.1.2", "shop/a": "10.0.1.3", "lab/e": "10.0.2.2", "shop/b": "10.0.2.3"}
    return replace(cluster, pods=tuple(replace(p, ips=(ipaddress.ip_address(ips[p.key]),)) for p in cluster.pods))


def logs(ruleset: Ruleset) -> list[Log]:
    return [s for c in ruleset.chains for r in c.rules for s in r.statements if isinstance(s, Log)]


def without_group(ruleset: Ruleset) -> Ruleset:
    return replace(ruleset, chains=tuple(
        replace(c, rules=tuple(replace(r, statements=tuple(replace(s, group=None) if isinstance(s, Log) else s
                                                             for s in r.statements)) for r in c.rules))
        for c in ruleset.chains))


@pytest.mark.parametrize("mode", list(Mode))
def test_every_log_statement_goes_to_the_group_and_nothing_else_changes(mode: Mode) -> None:
    plain = compile_node(addressed(), "node-1", mode=mode)
    grouped = log_to_group(plain, 7)
    assert logs(plain) and all(log.group is None for log in logs(plain))
    assert all(log.group == 7 for log in logs(grouped))
    assert without_group(grouped) == plain
    assert log_to_group(plain, None) is plain


def test_the_group_is_rendered_in_json_and_text() -> None:
    grouped = log_to_group(compile_node(addressed(), "node-1"), 7)
    rules = [i["rule"] for i in to_document(grouped)["nftables"] if "rule" in i]
    statements = [s["log"] for r in rules for s in r["expr"] if "log" in s]
    assert statements and all(s["group"] == 7 and s["prefix"].startswith("policyctl drop ") for s in statements)
    assert 'log prefix "policyctl drop egress lab/a " group 7' in render_text(grouped)


@pytest.mark.parametrize("group", [-1, 65536])
def test_a_group_outside_sixteen_bits_is_refused(group: int) -> None:
    with pytest.raises(ValueError, match="0-65535"):
        log_to_group(compile_node(addressed(), "node-1"), group)


@pytest.mark.parametrize(
    ("source", "destination", "accepted"),
    [("10.0.1.2", "10.0.1.3", False), ("10.0.1.3", "10.0.2.3", True), ("10.0.1.2", "10.0.2.3", True)],
)
def test_the_compiled_engine_decides_a_grouped_ruleset_as_the_plain_one(
    source: str, destination: str, accepted: bool
) -> None:
    plain = compile_node(addressed(), "node-1")
    packet = Packet(ipaddress.ip_address(source), ipaddress.ip_address(destination), 6, 80)
    outcomes = [Evaluator(to_document(r)).evaluate("postrouting", packet) for r in (plain, log_to_group(plain, 9))]
    assert outcomes[0] == outcomes[1]
    assert outcomes[0].accepted is accepted


def test_grouped_deltas_patch_the_grouped_ruleset_step_by_step() -> None:
    compiler = NodeCompiler("node-2")
    first = addressed()
    more = replace(first, pods=first.pods + (pod("shop/c", {"pod": "b"}, node="node-2", ips=["10.0.2.4"]),))
    steps = [first, more, first]
    old = log_to_group(compiler.ruleset, 3)
    for cluster in steps:
        delta = delta_to_group(compiler.update(cluster), 3)
        new = log_to_group(compile_node(cluster, "node-2"), 3)
        assert patch(old, delta) == new
        old = new
