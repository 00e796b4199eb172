"""``explain`` of a CIDR range, expanded to addresses, is the oracle's verdict at every edge.

The range is drawn around addresses the cluster uses, so it holds ipBlock boundaries, node
addresses (the destination's own node among them) and pod addresses; probed addresses are the
range's ends, every ipBlock edge (:func:`tests.strategies.edge_addresses`) and every node
address inside it.
"""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.verifier.explanations import Finding, Query, compute_findings
from policyctl.policy.endpoints import ResolvedEndpoint
from policyctl.policy.model import Family, IPAddress, IPNetwork, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from tests.strategies import clusters, edge_addresses, edge_ports

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cases(draw: st.DrawFn) -> tuple[Cluster, Query, IPNetwork]:
    """A cluster, a pod, a network around an address of the cluster, and which end it is."""
    cluster = draw(clusters(max_pods=4, families=(Family.IPV4,)))
    pod = draw(st.sampled_from(cluster.pods))
    pool = [a for p in cluster.pods for a in p.ips] + [a for n in cluster.nodes for a in n.addresses]
    pool += list(edge_addresses(cluster, Family.IPV4))
    around = draw(st.sampled_from(pool))
    network = ipaddress.ip_network(f"{around}/{draw(st.integers(20, 32))}", strict=False)
    port = draw(st.none() | st.tuples(st.sampled_from(edge_ports(cluster)), st.sampled_from(tuple(Protocol))))
    pod_end = ResolvedEndpoint(pod.key, endpoint=pod)
    range_end = ResolvedEndpoint(str(network), network=network)
    if draw(st.booleans()):
        return cluster, Query(range_end, pod_end, Family.IPV4, port), network
    return cluster, Query(pod_end, range_end, Family.IPV4, port), network


def _range_of(finding: Finding, query: Query):
    return finding.source_range if query.source.network is not None else finding.destination_range


def _probes(cluster: Cluster, network: IPNetwork) -> list[IPAddress]:
    inside = {network.network_address, network.broadcast_address}
    inside |= {a for a in edge_addresses(cluster, Family.IPV4) if a in network}
    inside |= {a for n in cluster.nodes for a in n.addresses if a in network}
    return sorted(inside)


def _covering(findings: tuple[Finding, ...], query: Query, address: IPAddress) -> Finding:
    (found,) = [f for f in findings if any(r.first <= address <= r.last for r in _range_of(f, query).ranges)]
    return found


@SETTINGS
@given(cases())
def test_the_ranges_of_the_explanations_partition_the_range(case: tuple[Cluster, Query, IPNetwork]) -> None:
    cluster, query, network = case
    found = compute_findings(cluster, query)
    ranges = sorted((r for f in found for r in _range_of(f, query).ranges), key=lambda r: r.first)
    assert ranges[0].first == network.network_address and ranges[-1].last == network.broadcast_address
    assert all(int(a.last) + 1 == int(b.first) for a, b in zip(ranges, ranges[1:]))


@SETTINGS
@given(cases())
def test_every_probed_address_gets_the_oracles_verdict(case: tuple[Cluster, Query, IPNetwork]) -> None:
    cluster, query, network = case
    findings = compute_findings(cluster, query)
    for address in _probes(cluster, network):
        finding = _covering(findings, query, address)
        pod = query.destination.endpoint if query.source.network is not None else query.source.endpoint
        ends = (address, pod) if query.source.network is not None else (pod, address)
        if query.port is not None:
            number, protocol = query.port
            expected = evaluate(cluster, Connection(ends[0], ends[1], protocol, number, Family.IPV4))
            assert finding.verdict is not None and finding.verdict.allowed is expected.allowed, (address, query.port)
            continue
        assert finding.summary is not None
        for interval in finding.summary.intervals:
            for number in {interval.first, interval.last}:
                expected = evaluate(cluster, Connection(ends[0], ends[1], interval.protocol, number, Family.IPV4))
                assert interval.verdict.allowed is expected.allowed, (address, interval.protocol, number)


@SETTINGS
@given(cases())
def test_no_two_findings_tell_the_same_explanation(case: tuple[Cluster, Query, IPNetwork]) -> None:
    """Reported once: distinct findings differ in an answer, a bypass or a matched peer."""
    from policyctl.verifier.explanations import outcome_key

    cluster, query, _ = case
    keys = [outcome_key(f) for f in compute_findings(cluster, query)]
    assert len(keys) == len(set(keys))
