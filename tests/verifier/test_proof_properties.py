"""Properties of the proofs, each checked against ``policy.semantics.evaluate``."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from policyctl.policy.model import Family, LabelSelector, Pod, Protocol, Provenance
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from policyctl.verifier.assertions import Assertion, Expect, Scope, check_assertions
from policyctl.verifier.ends import EndSpec
from policyctl.verifier.portsets import parse_ports
from policyctl.verifier.queries import compare, redundant_policies
from tests.strategies import NAMESPACE_NAMES, cluster_families, clusters, edge_ports, labels, selectors

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _allowed_somewhere(
    cluster: Cluster, source: Pod, destination: Pod, family: Family, ports: tuple[int, ...]
) -> set[tuple[Protocol, int]]:
    return {
        (p, n)
        for p in Protocol
        for n in ports
        if evaluate(cluster, Connection(source, destination, p, n, family)).allowed
    }


@SETTINGS
@given(clusters(max_pods=4, max_policies=3))
def test_equivalence_is_reflexive(cluster: Cluster) -> None:
    assert compare(cluster, cluster).equivalent


@SETTINGS
@given(clusters(max_pods=4, max_policies=3), st.data())
def test_equivalence_is_symmetric_and_its_witnesses_are_real(cluster: Cluster, data: st.DataObject) -> None:
    dropped = data.draw(st.sampled_from(cluster.policies))
    other = replace(cluster, policies=tuple(p for p in cluster.policies if p.ref != dropped.ref))
    there, back = compare(cluster, other), compare(other, cluster)
    assert there.equivalent == back.equivalent
    assert there.only_first == back.only_second and there.only_second == back.only_first
    for first, second, found in ((cluster, other, there.only_first), (other, cluster, there.only_second)):
        if found is None:
            continue
        protocol, port = found.ports.first()
        connection = Connection(found.source, found.destination, protocol, port, found.family)
        assert evaluate(first, connection).allowed and not evaluate(second, connection).allowed


@SETTINGS
@given(clusters(max_pods=4, max_policies=3))
def test_a_redundant_policy_changes_nothing_when_removed(cluster: Cluster) -> None:
    for finding in redundant_policies(cluster):
        name = finding.object.removeprefix("NetworkPolicy ")
        without = replace(cluster, policies=tuple(p for p in cluster.policies if str(p.ref) != name))
        for family in cluster_families(cluster):
            for source in cluster.pods:
                for destination in cluster.pods:
                    ports = edge_ports(cluster)
                    assert _allowed_somewhere(cluster, source, destination, family, ports) == _allowed_somewhere(
                        without, source, destination, family, ports
                    )


@st.composite
def _new_pods(draw: st.DrawFn, cluster: Cluster, selector: LabelSelector, namespace: str) -> Pod:
    """A pod that does not exist yet, in ``namespace``, with labels ``selector`` matches, at an
    address of the cluster's families (or none)."""
    chosen = draw(labels().filter(selector.matches))
    family = draw(st.sampled_from(cluster_families(cluster)))
    address = ipaddress.ip_address("10.99.0.7" if family is Family.IPV4 else "fd00:99::7")
    ips = draw(st.sampled_from([(), (address,)]))
    node = draw(st.sampled_from([n.name for n in cluster.nodes]))
    return Pod(namespace, "new-pod", chosen, node=node, ips=ips)


@SETTINGS
@given(
    clusters(max_pods=4, max_policies=3),
    st.sampled_from(NAMESPACE_NAMES),
    selectors(),
    st.sampled_from(["cannot", "can"]),
    st.data(),
)
def test_label_space_proofs_hold_for_new_pods(
    cluster: Cluster, namespace: str, selector: LabelSelector, expect: str, data: st.DataObject
) -> None:
    destination = data.draw(st.sampled_from([p for p in cluster.pods if not p.host_network] or list(cluster.pods)))
    ports = parse_ports("80/TCP")
    assertion = Assertion(
        "new pods",
        Expect(expect),
        EndSpec(namespace=namespace, pod_selector=selector),
        EndSpec(pod=destination.key),
        ports,
        True,
        Scope.ANY,
        (),
        Provenance("a.yaml", 1),
    )
    (result,) = check_assertions(cluster, [assertion])
    assume(result.passed)
    new = data.draw(_new_pods(cluster, selector, namespace))
    grown = replace(cluster, pods=(*cluster.pods, new))
    for family in cluster_families(cluster):
        allowed = evaluate(grown, Connection(new, grown.pod_by_key[destination.key], Protocol.TCP, 80, family)).allowed
        possible = not new.ips or any(Family.of(a) is family for a in new.ips)
        if expect == "cannot":
            assert not allowed
        elif possible and (not destination.ips or destination.ip(family) is not None):
            assert allowed
