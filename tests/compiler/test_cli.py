"""``policyctl compile`` and ``policyctl graph`` on a small manifest."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyctl.cli.main import main

MANIFEST = """\
apiVersion: v1
kind: Node
metadata: {name: node-1}
status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {podIPs: [{ip: 10.244.1.5}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {nodeName: node-1, containers: [{name: c}]}
status: {podIPs: [{ip: 10.244.1.6}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: http}]
"""


@pytest.fixture()
def manifest(tmp_path: Path) -> str:
    path = tmp_path / "shop.yaml"
    path.write_text(MANIFEST)
    return str(path)


def test_compile_nft_comments_name_policy_rule_file_and_line(manifest: str) -> None:
    result = CliRunner().invoke(main, ["compile", "--node", "node-1", "-f", manifest, "-o", "nft"])
    assert result.exit_code == 0, result.output
    assert f'comment "shop/web-in ingress[0] {manifest}:' in result.output
    assert "10.244.1.5 . tcp . 8080" in result.output  # web admits the client identity on http
    assert "elements = { 10.244.1.6 }" in result.output  # the client's number, in its bits' sets,
    assert ": jump in-marked-from-" in result.output  # reaches that identity's chain
    jumping = CliRunner().invoke(main, ["compile", "--node", "node-1", "-f", manifest, "--identity-mark", "none"])
    assert "10.244.1.6 : jump in-from-" in jumping.output  # or, with --identity-mark none, the peer map does


def test_compile_json_is_a_libnftables_document_with_the_chosen_table(manifest: str) -> None:
    result = CliRunner().invoke(main, ["compile", "--node", "node-1", "-f", manifest, "-o", "json", "--table", "pc"])
    assert result.exit_code == 0, result.output
    objects = json.loads(result.output)["nftables"]
    assert objects[1] == {"table": {"family": "inet", "name": "pc"}}
    assert all(next(iter(o.values())).get("table", "pc") == "pc" for o in objects[2:])


def test_compile_unknown_node_exits_2_naming_known_nodes(manifest: str) -> None:
    result = CliRunner().invoke(main, ["compile", "--node", "node-9", "-f", manifest])
    assert result.exit_code == 2
    assert "node-1" in result.output


@pytest.mark.parametrize("output", ["dot", "graphml", "json"])
def test_graph_exports_parse_and_contain_the_policy(manifest: str, output: str) -> None:
    result = CliRunner().invoke(main, ["graph", "-f", manifest, "--objects", "-o", output])
    assert result.exit_code == 0, result.output
    if output == "json":
        ids = {n["id"] for n in json.loads(result.output)["nodes"]}
        assert {"policy:shop/web-in", "pod:shop/web", "rule:shop/web-in:ingress[0]"} <= ids
    elif output == "graphml":
        assert ElementTree.fromstring(result.output).tag.endswith("graphml")
        assert "policy:shop/web-in" in result.output
    else:
        assert result.output.startswith("digraph policyctl {") and '"policy:shop/web-in" -> ' in result.output


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_graph_html_is_self_contained(manifest: str) -> None:
    result = CliRunner().invoke(main, ["graph", "-f", manifest, "--objects", "-o", "html"])
    assert result.exit_code == 0, result.output
    assert (
        "<svg" in result.output and "<script" not in result.output and "http://" not in result.output.split("<svg")[0]
    )
