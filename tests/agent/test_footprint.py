"""The footprint decides when the agent may skip a recompile: it must never skip one that
would have changed the ruleset, and must skip the changes that cannot."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.agent.footprint import Footprints, footprint, relevant_cluster, selecting_local
from policyctl.compiler.compile import compile_node, local_pods
from policyctl.compiler.render_json import to_document
from policyctl.policy.model import Cluster, Labels, Namespace
from tests import builders as b
from tests.strategies import clusters, labels

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _document(cluster: Cluster, node: str) -> dict[str, object]:
    return to_document(compile_node(cluster, node))


@st.composite
def mutations(draw: st.DrawFn) -> tuple[Cluster, Cluster]:
    """A cluster and the same cluster after one API event: a pod relabelled, deleted or
    moved, a namespace relabelled, a policy deleted."""
    before = draw(clusters(max_pods=5, max_policies=3))
    kind = draw(st.sampled_from(["relabel-pod", "delete-pod", "relabel-namespace", "delete-policy"]))
    after = before
    if kind in ("relabel-pod", "delete-pod"):
        victim = draw(st.sampled_from(before.pods))
        if kind == "relabel-pod":
            moved = dataclasses.replace(victim, labels=draw(labels()))
            pods = tuple(moved if p is victim else p for p in before.pods)
        else:
            pods = tuple(p for p in before.pods if p is not victim)
        after = dataclasses.replace(before, pods=pods)
    elif kind == "relabel-namespace":
        victim_ns = draw(st.sampled_from(before.namespaces))
        extra = draw(labels(("ns", "env")))
        relabelled = Namespace(victim_ns.name, Labels({**extra, "kubernetes.io/metadata.name": victim_ns.name}))
        after = dataclasses.replace(before, namespaces=tuple(relabelled if n is victim_ns else n for n in before.namespaces))
    elif before.policies:
        victim_policy = draw(st.sampled_from(before.policies))
        after = dataclasses.replace(before, policies=tuple(p for p in before.policies if p is not victim_policy))
    return before, after


@SETTINGS
@given(mutations())
def test_equal_footprints_mean_equal_rulesets(pair: tuple[Cluster, Cluster]) -> None:
    before, after = pair
    for node in sorted(n.name for n in before.nodes):
        if footprint(before, node) == footprint(after, node):
            assert _document(before, node) == _document(after, node), node


@SETTINGS
@given(clusters(max_pods=5, max_policies=4))
def test_dropping_policies_that_select_no_local_pod_keeps_the_ruleset(cluster: Cluster) -> None:
    for node in sorted(n.name for n in cluster.nodes):
        assert _document(relevant_cluster(cluster, node), node) == _document(cluster, node), node


def _two_node_cluster(*policies: object) -> Cluster:
    return b.cluster(
        b.namespace("x", team="a"),
        b.namespace("y", team="b"),
        b.node("node-1", "192.168.0.1"),
        b.node("node-2", "192.168.0.2"),
        b.pod("x/web", {"app": "web"}, node="node-1", ips=["10.0.1.10"]),
        b.pod("x/db", {"app": "db"}, node="node-2", ips=["10.0.2.10"]),
        b.pod("y/client", {"app": "db"}, node="node-2", ips=["10.0.2.11"]),
        *policies,  # type: ignore[arg-type]
    )


WEB_FROM_TEAM_A = b.policy("x/web-from-db-of-team-a", {"app": "web"}, ingress=[b.rule(b.pod_peer({"app": "db"}, {"team": "a"}))])


def _relabel_namespace(cluster: Cluster, name: str, **extra: str) -> Cluster:
    namespaces = tuple(
        Namespace(n.name, Labels({**extra, "kubernetes.io/metadata.name": n.name})) if n.name == name else n
        for n in cluster.namespaces
    )
    return dataclasses.replace(cluster, namespaces=namespaces)


def _relabel_pod(cluster: Cluster, key: str, **new: str) -> Cluster:
    pods = tuple(dataclasses.replace(p, labels=Labels(new)) if p.key == key else p for p in cluster.pods)
    return dataclasses.replace(cluster, pods=pods)


@pytest.mark.parametrize(
    ("change", "node", "moves"),
    [
        pytest.param(lambda c: _relabel_pod(c, "y/client", app="other"), "node-1", False, id="remote-pod-outside-every-peer"),
        pytest.param(lambda c: _relabel_pod(c, "x/db", app="cache"), "node-1", True, id="remote-pod-leaves-a-peer"),
        pytest.param(lambda c: _relabel_namespace(c, "y", team="a"), "node-1", True, id="namespace-joins-a-peer"),
        pytest.param(lambda c: _relabel_namespace(c, "y", team="c"), "node-1", False, id="namespace-relabel-outside-peers"),
        pytest.param(lambda c: _relabel_pod(c, "x/web", app="web", tier="front"), "node-1", True, id="local-pod-relabelled"),
        pytest.param(lambda c: _relabel_pod(c, "x/db", app="cache"), "node-2", True, id="local-pod-counts-even-unisolated"),
        pytest.param(lambda c: dataclasses.replace(c, policies=()), "node-2", False, id="policy-selecting-no-local-pod"),
        pytest.param(lambda c: dataclasses.replace(c, policies=()), "node-1", True, id="policy-selecting-a-local-pod"),
    ],
)
def test_footprint_moves_only_for_changes_that_reach_the_node(change, node: str, moves: bool) -> None:
    before = _two_node_cluster(WEB_FROM_TEAM_A)
    after = change(before)
    assert (footprint(before, node) != footprint(after, node)) is moves
    if not moves:
        assert _document(before, node) == _document(after, node)


def test_selecting_local_reads_the_policy_namespace_only() -> None:
    same_labels_elsewhere = b.policy("y/web", {"app": "web"}, ingress=[b.rule()])
    cluster = _two_node_cluster(WEB_FROM_TEAM_A, same_labels_elsewhere)
    chosen = selecting_local(cluster, local_pods(cluster, "node-1"))
    assert [str(p.ref) for p in chosen] == ["x/web-from-db-of-team-a"]


@SETTINGS
@given(mutations())
def test_the_incremental_footprint_equals_a_fresh_one(pair: tuple[Cluster, Cluster]) -> None:
    before, after = pair
    for node in sorted(n.name for n in before.nodes):
        stream = Footprints(node)
        for snapshot in (before, after, before, after):
            assert stream(snapshot) == footprint(snapshot, node), node


def test_a_relabelled_peer_moves_between_cached_selectors() -> None:
    """The incremental path must drop a pod from a selector it left and add it to one it
    joined, though its key, addresses and ports stay the same."""
    cluster = b.cluster(
        b.namespace("x"),
        b.node("n1", "192.168.0.1"),
        b.pod("x/web", {"app": "web"}, node="n1", ips=["10.0.0.1"]),
        b.pod("x/peer", {"role": "a"}, node="n1", ips=["10.0.0.2"]),
        b.policy("x/web", {"app": "web"}, ingress=[b.rule(b.pod_peer({"role": "a"})), b.rule(b.pod_peer({"role": "b"}))]),
    )
    moved = dataclasses.replace(cluster, pods=tuple(
        dataclasses.replace(p, labels=Labels({"role": "b"})) if p.key == "x/peer" else p for p in cluster.pods))
    stream = Footprints("n1")
    first = stream(cluster)
    second = stream(moved)
    assert first != second
    assert second == footprint(moved, "n1")
    assert stream(cluster) == first
