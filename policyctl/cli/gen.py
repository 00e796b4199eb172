"""``policyctl gen``: a seeded, realistic cluster as manifests that every command can read."""

from __future__ import annotations

import dataclasses
import json
import sys

import click

from policyctl.bench.gen import SCALES, ShapeError, generate
from policyctl.cli.inputs import fail, output_option


@click.command(name="gen")
@click.option("--scale", type=click.Choice(sorted(SCALES)), default="small", show_default=True,
              help="Preset size: tiny 60 pods, small 1k, full 10k (100 namespaces, 50 nodes, 1k policies), huge 100k.")
@click.option("--pods", type=click.IntRange(min=1), help="Pods (overrides the preset).")
@click.option("--namespaces", type=click.IntRange(min=1), help="Namespaces, kube-system and monitoring included.")
@click.option("--nodes", type=click.IntRange(min=1), help="Nodes.")
@click.option("--policies", type=click.IntRange(min=0), help="NetworkPolicies.")
@click.option("--dual-stack", is_flag=True, help="Give pods and nodes IPv6 addresses too.")
@click.option("--seed", type=int, default=1, show_default=True, help="The same seed gives the same manifests.")
@output_option(("yaml", "json"), versioned=False)
def gen(scale: str, pods: int | None, namespaces: int | None, nodes: int | None, policies: int | None,
        dual_stack: bool, seed: int, output: str) -> None:
    """Print a generated cluster: Namespaces, Nodes, Pods (with nodeName and status.podIPs)
    and NetworkPolicies.

    \b
    Teams own namespaces; apps of five tiers carry app/tier/team/version labels and named
    container ports; every namespace has a default deny, DNS egress and app-to-app allows
    using namespace selectors, ipBlocks with except, named ports and port ranges.

    \b
    Examples:
      policyctl gen --scale small > cluster.yaml
      policyctl gen --pods 500 --nodes 3 --policies 40 --dual-stack -o json | policyctl matrix -f - --port 8080/TCP
    """
    base = SCALES[scale]
    overrides = {
        k: v
        for k, v in (("pods", pods), ("namespaces", namespaces), ("nodes", nodes), ("policies", policies))
        if v is not None
    }
    shape = dataclasses.replace(base, **overrides, dual_stack=dual_stack or base.dual_stack, seed=seed)
    try:
        manifests = generate(shape)
    except ShapeError as error:
        raise fail(f"cannot generate this cluster: {error}") from None
    if output == "json":
        json.dump({"apiVersion": "v1", "kind": "List", "items": manifests}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        import yaml

        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's when PyYAML was built with it
        yaml.dump_all(manifests, sys.stdout, Dumper=dumper, sort_keys=False, default_flow_style=False)
