"""The compile, apply and data-plane sections measure the ruleset users get: the document
``policyctl compile --node NODE`` prints by default for the same manifests. Their linear-list
baseline is written from the layout whose peer maps jump (the same policies)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from policyctl.bench.gen import SCALES, generate
from policyctl.bench.linear import KEPT_SETS, rule_count
from policyctl.bench.run import EFFORT, TABLE, Context, busiest_node, linear_baseline, section_compile, write_manifests
from policyctl.compiler.compile import compile_node
from policyctl.compiler.graph import PolicyGraph
from policyctl.compiler.render_json import to_document
from policyctl.manifests.loader import load


def _context(tmp_path: Path) -> Context:
    shape = SCALES["tiny"]
    path = write_manifests(generate(shape), tmp_path / "manifests")
    cluster = load([str(path)]).cluster
    return Context(shape, EFFORT["tiny"], tmp_path, path, cluster, PolicyGraph(cluster), busiest_node(cluster))


def test_the_compile_section_s_document_is_what_policyctl_compile_prints(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    section_compile(ctx)
    printed = subprocess.run(
        [sys.executable, "-m", "policyctl", "compile", "-f", str(ctx.manifests), "--node", ctx.node,
         "--table", TABLE, "-o", "json"],
        capture_output=True, text=True, check=False,
    )
    assert printed.returncode == 0, printed.stderr
    document = ctx.documents[ctx.node]
    assert json.loads(printed.stdout) == document
    assert any("identities" in c.get("map", {}).get("name", "") for c in document["nftables"]), "not the marked layout"


def test_the_linear_baseline_is_a_rule_list_of_the_same_policies(tmp_path: Path) -> None:
    """Every lookup and verdict map of the jumping layout unrolled: no map, only the node's
    own address sets, and a rule per element where the compiled table has a lookup."""
    ctx = _context(tmp_path)
    linear = linear_baseline(ctx.cluster, ctx.node, ctx.graph)["nftables"]
    jumping = to_document(compile_node(ctx.cluster, ctx.node, table=TABLE, graph=ctx.graph))
    assert not any("map" in c for c in linear)
    assert {c["set"]["name"] for c in linear if "set" in c} <= set(KEPT_SETS)
    assert rule_count({"nftables": linear}) > rule_count(jumping)
