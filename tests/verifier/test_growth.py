"""The growth law: with the policies fixed, more pods of the same kinds add no classes.

Pods are doubled by giving every pod of a generated cluster a twin (same namespace, labels,
node and container ports; a fresh address in the same pod network, which no ipBlock tells
apart). Everything the class engine computes is counted: pod classes, rows and columns of the
relation, pod groups and the groups the matrix shows. Time is checked with a generous ratio
only: pod pairs would grow fourfold.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from policyctl.bench.gen import ClusterShape, generate
from policyctl.cli.truthtable import build_truth_table
from policyctl.manifests.loader import load
from policyctl.policy.model import Family, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.verifier.classes import PodGroups
from policyctl.verifier.relation import connectivity

TWIN_OFFSET = 1 << 22


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    shape = ClusterShape(pods=400, namespaces=6, nodes=3, policies=40)
    path = Path(tmp_path_factory.mktemp("growth")) / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": generate(shape)}), encoding="utf-8")
    loaded = load([str(path)])
    assert loaded.ok
    return loaded.cluster


def _twinned(cluster: Cluster, times: int) -> Cluster:
    pods = list(cluster.pods)
    for copy in range(1, times):
        pods += [
            dataclasses.replace(p, name=f"{p.name}-twin{copy}", ips=tuple(a + copy * TWIN_OFFSET for a in p.ips))
            for p in cluster.pods
        ]
    return dataclasses.replace(cluster, pods=tuple(sorted(pods, key=lambda p: p.key)))


def _counts(cluster: Cluster) -> dict[str, int]:
    relation = connectivity(cluster, families=(Family.IPV4,))
    groups = PodGroups(relation, Family.IPV4)
    matrix = relation.of(Family.IPV4)
    return {
        "classes": len(matrix.views),
        "rows": len(matrix.cells),
        "columns": len(matrix.cells[0]),
        "pod groups": len(groups),
        "shown, all ports": len(build_truth_table(cluster, port=None, family=Family.IPV4, groups=groups).groups),
        "shown, 8080/TCP": len(
            build_truth_table(cluster, port=(8080, Protocol.TCP), family=Family.IPV4, groups=groups).groups
        ),
    }


@pytest.mark.parametrize("times", [2, 4])
def test_more_pods_of_the_same_kinds_add_no_classes(base: Cluster, times: int) -> None:
    grown = _twinned(base, times)
    assert len(grown.pods) == times * len(base.pods)
    assert _counts(grown) == _counts(base)


def _seconds(cluster: Cluster) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        build_truth_table(cluster, port=None, family=Family.IPV4)
        best = min(best, time.perf_counter() - start)
    return best


def test_doubling_pods_far_less_than_doubles_the_class_computation_twice(base: Cluster) -> None:
    """Relation, groups and table from scratch: per-pod work doubles, per-class work does not,
    so the ratio stays well under the fourfold growth of pod pairs."""
    assert _seconds(_twinned(base, 2)) < 3.0 * _seconds(base)
