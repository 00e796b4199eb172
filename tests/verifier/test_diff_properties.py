"""``diff`` over classes, expanded to pod pairs, equals the oracle for every pair.

Two snapshots of one random cluster: the second drops policies or rules (only policies
differ: the incremental comparison), or also relabels a pod (the ends differ: the whole
comparison). Every difference names groups of sources and destinations and a port set; expanded
to every pair of different pods no pod-pair bypass decides, the differences must give exactly
the (pair, family, protocol, port) that ``policy.semantics.evaluate`` allows in one snapshot and
not the other, on the cluster's edge ports. Differences towards and from outside addresses
must equal the whole comparison's, address by address.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.policy.model import Direction, Labels, Pod, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from policyctl.verifier.comparison import Difference, any_differences, differences, same_ends
from policyctl.verifier.relation import Relation, cluster_families
from policyctl.verifier.semdiff import FlowDiff, semantic_diff
from policyctl.verifier.viewclasses import view_classes
from tests.cluster_strategies import tiered_clusters
from tests.strategies import clusters, edge_ports, labels

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def _changed(draw: st.DrawFn, cluster: Cluster) -> Cluster:
    policies = list(cluster.policies)
    kept = [p for p in policies if draw(st.booleans())]
    if kept and draw(st.booleans()):
        chosen = draw(st.sampled_from(kept))
        direction = draw(st.sampled_from([Direction.INGRESS, Direction.EGRESS]))
        rules = chosen.rules(direction)
        if rules:
            dropped = draw(st.sampled_from(rules))
            rest = tuple(r for r in rules if r.index != dropped.index)
            changed = replace(chosen, ingress=rest) if direction is Direction.INGRESS else replace(chosen, egress=rest)
            kept = [changed if p.ref == chosen.ref else p for p in kept]
    result = replace(cluster, policies=tuple(kept))
    if draw(st.booleans()):
        pod = draw(st.sampled_from(cluster.pods))
        relabelled = replace(pod, labels=Labels(draw(labels())))
        result = replace(result, pods=tuple(relabelled if p.key == pod.key else p for p in result.pods))
    return result


Point = tuple[str, str, str, Protocol, int]


def _expanded(a: Relation, found: list[Difference], ports: tuple[int, ...]) -> set[Point]:
    points: set[Point] = set()
    for difference in found:
        classes = view_classes(a, difference.family)
        for source in difference.sources:
            for destination in difference.destinations:
                if not (isinstance(source, Pod) and isinstance(destination, Pod)):
                    continue
                if classes.bypass(source, destination) is not None:
                    continue
                for protocol in Protocol:
                    for port in ports:
                        if difference.ports.contains(protocol, port):
                            points.add((source.key, destination.key, difference.family.value, protocol, port))
    return points


def _oracle(a: Cluster, b: Cluster, ports: tuple[int, ...]) -> set[Point]:
    points: set[Point] = set()
    for family in cluster_families(a):
        for source in a.pods:
            for destination in a.pods:
                if source.key == destination.key:
                    continue
                other_source, other_destination = b.pod_by_key[source.key], b.pod_by_key[destination.key]
                for protocol in Protocol:
                    for port in ports:
                        before = evaluate(a, Connection(source, destination, protocol, port, family)).allowed
                        after = evaluate(b, Connection(other_source, other_destination, protocol, port, family)).allowed
                        if before and not after:
                            points.add((source.key, destination.key, family.value, protocol, port))
    return points


def _outside(found: list[Difference]) -> set[tuple[str, str, str, str]]:
    return {
        (
            str(s if not isinstance(s, Pod) else s.key),
            str(d if not isinstance(d, Pod) else d.key),
            x.family.value,
            str(x.ports),
        )
        for x in found
        for s in x.sources
        for d in x.destinations
        if not (isinstance(s, Pod) and isinstance(d, Pod))
    }


@SETTINGS
@given(clusters(max_pods=5, max_policies=4), st.data())
def test_differences_expanded_to_pairs_equal_the_oracle(cluster: Cluster, data: st.DataObject) -> None:
    other = data.draw(_changed(cluster))
    families = cluster_families(cluster)
    ports = edge_ports(cluster)
    for first, second in ((cluster, other), (other, cluster)):
        a, b = Relation(first, families=families), Relation(second, families=families)
        found = list(any_differences(a, b))
        assert _expanded(a, found, ports) == _oracle(first, second, ports)
        assert _outside(found) == _outside(list(differences(a, b)))


@SETTINGS
@given(clusters(max_pods=5, max_policies=4), st.data())
def test_only_policy_changes_take_the_incremental_comparison(cluster: Cluster, data: st.DataObject) -> None:
    other = data.draw(_changed(cluster))
    relabelled = any(cluster.pod_by_key[p.key].labels != p.labels for p in other.pods)
    assert same_ends(cluster, other) is not relabelled


def _report_points(diff: FlowDiff, classes_of: Relation, ports: tuple[int, ...], removed: bool) -> set[Point]:
    points: set[Point] = set()
    for change in diff.removed if removed else diff.added:
        sources = change.source_pods or (change.source,)
        destinations = change.destination_pods or (change.destination,)
        classes = view_classes(classes_of, change.family)
        for s in sources:
            for d in destinations:
                if s not in classes.class_of or d not in classes.class_of or s == d:
                    continue
                pods = classes_of.cluster.pod_by_key
                if classes.bypass(pods[s], pods[d]) is not None:
                    continue
                for protocol in Protocol:
                    for port in ports:
                        if change.ports.contains(protocol, port):
                            points.add((s, d, change.family.value, protocol, port))
    return points


@SETTINGS
@given(clusters(max_pods=5, max_policies=4), st.data())
def test_the_grouped_report_of_pods_without_workloads_expands_to_the_oracle(
    cluster: Cluster, data: st.DataObject
) -> None:
    """Groups of pods are folded only where every member pair has the same ports, so the
    report itself, expanded to its pods, is exact."""
    other = data.draw(_changed(cluster))
    assert all(p.workload is None for p in cluster.pods)
    ports = edge_ports(cluster)
    found = semantic_diff(cluster, other)
    families = cluster_families(cluster)
    base = Relation(cluster, families=families)
    assert _report_points(found, base, ports, removed=True) == _oracle(cluster, other, ports)
    assert _report_points(found, base, ports, removed=False) == _oracle(other, cluster, ports)


@SETTINGS
@given(tiered_clusters(max_pods=4, max_policies=3, min_policies=1, max_cluster_policies=2), st.data())
def test_differences_with_cluster_policy_tiers_equal_the_oracle(cluster: Cluster, data: st.DataObject) -> None:
    """Cluster-scoped policies stay; NetworkPolicies change: the changed cells are decided
    through the tiers, as everything else."""
    other = data.draw(_changed(cluster))
    families = cluster_families(cluster)
    ports = edge_ports(cluster)
    for first, second in ((cluster, other), (other, cluster)):
        a, b = Relation(first, families=families), Relation(second, families=families)
        found = list(any_differences(a, b))
        assert _expanded(a, found, ports) == _oracle(first, second, ports)
        assert _outside(found) == _outside(list(differences(a, b)))


NodePoint = tuple[str, str, str, str]
"""(pod, node, family, direction): a connection between a pod and a node's address."""


def _node_oracle(a: Cluster, b: Cluster, ports: tuple[int, ...]) -> set[NodePoint]:
    """Pod <-> node-address connections ``a`` allows on some edge port and ``b`` does not."""
    points: set[NodePoint] = set()
    taken = {x for p in a.pods for x in p.ips}
    for family in cluster_families(a):
        for node in a.nodes:
            if node.ip(family) is None or node.ip(family) in taken:
                continue
            for pod in a.pods:
                other = b.pod_by_key[pod.key]
                halves = (("egress", (pod, node), (other, node)), ("ingress", (node, pod), (node, other)))
                for direction, there, back in halves:
                    if any(
                        evaluate(a, Connection(*there, protocol, port, family)).allowed
                        and not evaluate(b, Connection(*back, protocol, port, family)).allowed
                        for protocol in Protocol
                        for port in ports
                    ):
                        points.add((pod.key, node.name, family.value, direction))
    return points


def _node_reported(a: Relation, b: Relation, found: list[Difference]) -> set[NodePoint]:
    """The node points the differences stand for: a difference names one node address per
    joint view (what every policy of both sets sees of it), so it stands for every node
    address with that view; its pods are the group it names, minus, for ingress, the pods
    on that node (the node bypass)."""
    cluster = a.cluster
    taken = {x for p in cluster.pods for x in p.ips}
    views = {
        (n.name, f): (a.index.view_of_address(x), b.index.view_of_address(x))
        for n in cluster.nodes
        for f in cluster_families(cluster)
        if (x := n.ip(f)) is not None and x not in taken
    }
    points: set[NodePoint] = set()
    for x in found:
        egress = isinstance(x.source, Pod)
        address = x.destination if egress else x.source
        if isinstance(address, Pod) or not a.is_node_address(address):
            continue
        seen = (a.index.view_of_address(address), b.index.view_of_address(address))
        for (name, family), view in views.items():
            if family is not x.family or view != seen:
                continue
            for pod in x.sources if egress else x.destinations:
                assert isinstance(pod, Pod)
                if egress or pod.node != name:
                    points.add((pod.key, name, family.value, "egress" if egress else "ingress"))
    return points


def _node_differences_match_the_oracle(cluster: Cluster, other: Cluster) -> None:
    families = cluster_families(cluster)
    ports = edge_ports(cluster)
    for first, second in ((cluster, other), (other, cluster)):
        a, b = Relation(first, families=families), Relation(second, families=families)
        for found in (list(any_differences(a, b)), list(differences(a, b))):
            assert _node_reported(a, b, found) == _node_oracle(first, second, ports)


@SETTINGS
@given(clusters(max_pods=5, max_policies=4), st.data())
def test_differences_towards_and_from_node_addresses_equal_the_oracle(cluster: Cluster, data: st.DataObject) -> None:
    """Node addresses are neither pods nor outside addresses, yet ipBlocks match them: the
    comparison reports exactly the pod <-> node connections the oracle allows in one
    snapshot and not the other."""
    _node_differences_match_the_oracle(cluster, data.draw(_changed(cluster)))


@SETTINGS
@given(tiered_clusters(max_pods=4, max_policies=3, min_policies=1, max_cluster_policies=2), st.data())
def test_node_address_differences_under_cluster_policy_tiers_equal_the_oracle(
    cluster: Cluster, data: st.DataObject
) -> None:
    """The same with ClusterNetworkPolicies, whose ``nodes`` peers match node addresses."""
    _node_differences_match_the_oracle(cluster, data.draw(_changed(cluster)))
