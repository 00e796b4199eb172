"""``verify assert`` over classes equals the oracle pair by pair, for existing pods.

Random assertions (``can``, ``cannot``, ``only``; ends by namespace and pod selector, or the
Internet; one edge port) on random clusters. An assertion that holds must hold for every pair
of different ends the oracle (``policy.semantics.evaluate``) is asked about: every pod pair, and
for ``only`` and Internet ends every outside address at the edges of the ipBlocks. An
assertion that fails must fail on its counterexample: the oracle decides that connection the
way the counterexample says.
"""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.policy.model import Family, IPAddress, Pod, Protocol, Provenance
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from policyctl.verifier.assertions import Assertion, Expect, Scope, check_assertions
from policyctl.verifier.ends import EndSpec
from policyctl.verifier.portsets import PortSet, parse_ports
from tests.strategies import NAMESPACE_NAMES, cluster_families, clusters, edge_addresses, edge_ports, selectors

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

End = Pod | IPAddress


@st.composite
def _ends(draw: st.DrawFn, *, outside: bool) -> EndSpec:
    if outside and draw(st.integers(0, 3)) == 0:
        return EndSpec(internet=True, text="internet")
    namespace = draw(st.sampled_from([None, *NAMESPACE_NAMES]))
    selector = draw(st.sampled_from([None]) | selectors())
    return EndSpec(namespace=namespace, pod_selector=selector, text="end")


def _named(cluster: Cluster, spec: EndSpec, family: Family) -> list[End]:
    if spec.internet:
        return list(edge_addresses(cluster, family))
    return [p for p in cluster.pods if spec.matches_pod(p, cluster)]


def _others(cluster: Cluster, spec: EndSpec, family: Family) -> list[End]:
    pods: list[End] = [p for p in cluster.pods if not spec.matches_pod(p, cluster)]
    return pods if spec.internet else pods + list(edge_addresses(cluster, family))


def _allowed(cluster: Cluster, source: End, destination: End, protocol: Protocol, port: int, family: Family) -> bool:
    return evaluate(cluster, Connection(source, destination, protocol, port, family)).allowed


def _end(cluster: Cluster, text: str) -> End:
    return cluster.pod_by_key[text] if text in cluster.pod_by_key else ipaddress.ip_address(text)


def _different(source: End, destination: End) -> bool:
    return not (isinstance(source, Pod) and isinstance(destination, Pod) and source.key == destination.key)


@SETTINGS
@given(clusters(max_pods=5, max_policies=3), st.data())
def test_an_assertion_holds_exactly_when_the_oracle_agrees_on_every_pair(cluster: Cluster, data: st.DataObject) -> None:
    expect = data.draw(st.sampled_from(list(Expect)))
    source = data.draw(_ends(outside=True))
    destination = data.draw(_ends(outside=False))
    protocol = data.draw(st.sampled_from(list(Protocol)))
    port = data.draw(st.sampled_from(edge_ports(cluster)))
    ports = parse_ports(f"{port}/{protocol.value}")
    assertion = Assertion("a", expect, source, destination, ports, True, Scope.EXISTING, (), Provenance("a.yaml", 1))
    (result,) = check_assertions(cluster, [assertion])
    if result.passed:
        for family in cluster_families(cluster):
            targets = _named(cluster, destination, family)
            sources = _others(cluster, source, family) if expect is Expect.ONLY else _named(cluster, source, family)
            for s in sources:
                for d in targets:
                    if not _different(s, d):
                        continue
                    allowed = _allowed(cluster, s, d, protocol, port, family)
                    assert allowed if expect is Expect.CAN else not allowed, (s, d, family)
        return
    example = result.counterexample
    assert example is not None and example.ports and example.ports.issubset(ports | PortSet())
    s, d = _end(cluster, example.source), _end(cluster, example.destination)
    assert _different(s, d)
    allowed = _allowed(cluster, s, d, protocol, port, example.family)
    assert (not allowed) if expect is Expect.CAN else allowed
    if expect is Expect.ONLY:
        assert not (isinstance(s, Pod) and source.matches_pod(s, cluster))
    elif isinstance(s, Pod):
        assert source.matches_pod(s, cluster)
    if isinstance(d, Pod):
        assert destination.matches_pod(d, cluster)
