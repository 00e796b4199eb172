"""Properties of the reference semantics on random clusters, one test per invariant.

The invariants come from the API's structure: policies only add allowed traffic to a pod that
is already isolated ("Network policies do not conflict; they are additive"), isolation needs a
selecting policy, and a connection needs both halves.
"""

from __future__ import annotations

import re
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.policy.model import (
    Direction,
    Labels,
    LabelSelector,
    NetworkPolicy,
    OwnNamespace,
    Pod,
    PodPeer,
    Protocol,
    Rule,
    SelectedNamespaces,
)
from policyctl.policy.ipblocks import end_address
from policyctl.policy.semantics import evaluate, evaluate_direction, is_isolated, selecting_policies
from policyctl.policy.verdicts import Connection
from tests.strategies import (
    NAMESPACE_LABEL_KEYS,
    EXTERNAL_ADDRESSES,
    cluster_families,
    clusters,
    connections,
    policies,
    selectors,
)

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scenarios(draw, **cluster_options):
    cluster = draw(clusters(**cluster_options))
    return cluster, draw(connections(cluster))


def _deciding_pod(connection: Connection, direction: Direction):
    return connection.source if direction is Direction.EGRESS else connection.destination


def _possible(cluster, connection) -> bool:
    """No end has addresses only in the other family (``policy.ipblocks.end_address``)."""
    ends = (connection.source, connection.destination)
    return not any(end_address(cluster, end, connection.family).impossible for end in ends)


@PROPERTY
@given(scenarios())
def test_empty_ingress_rule_allows_all_ingress_to_selected_pods(scenario):
    cluster, connection = scenario
    destination = connection.destination
    if not isinstance(destination, Pod) or destination.host_network:
        return
    open_all = NetworkPolicy(
        destination.namespace,
        "open-all",
        LabelSelector.from_labels(destination.labels),
        frozenset({Direction.INGRESS}),
        ingress=(Rule(Direction.INGRESS, 0),),
    )
    opened = replace(cluster, policies=(*cluster.policies, open_all))
    assert evaluate_direction(opened, connection, Direction.INGRESS).allowed


@PROPERTY
@given(st.data(), st.sampled_from(list(Direction)))
def test_adding_a_policy_never_removes_allowed_traffic_of_isolated_pod(data, direction):
    cluster, connection = data.draw(scenarios())
    pod = _deciding_pod(connection, direction)
    if not isinstance(pod, Pod) or not is_isolated(cluster, pod, direction):
        return
    before = evaluate_direction(cluster, connection, direction)
    if not before.allowed:
        return
    pool = [a for p in cluster.pods for a in p.ips]
    extra = data.draw(
        policies(namespaces=[n.name for n in cluster.namespaces], pool=pool or EXTERNAL_ADDRESSES, name="extra")
    )
    after = evaluate_direction(replace(cluster, policies=(*cluster.policies, extra)), connection, direction)
    assert after.allowed


@PROPERTY
@given(scenarios(), st.sampled_from(list(Direction)))
def test_pod_selected_by_no_policy_is_allowed_in_that_direction(scenario, direction):
    cluster, connection = scenario
    pod = _deciding_pod(connection, direction)
    if isinstance(pod, Pod) and any(p.isolates(direction) for p in selecting_policies(cluster, pod)):
        return
    half = evaluate_direction(cluster, connection, direction)
    assert half.allowed and not half.isolated


@PROPERTY
@given(scenarios(addressless=True))
def test_removing_all_policies_allows_every_possible_connection(scenario):
    cluster, connection = scenario
    verdict = evaluate(replace(cluster, policies=()), connection)
    assert verdict.allowed == _possible(cluster, connection)


@PROPERTY
@given(scenarios(addressless=True))
def test_verdict_allowed_iff_both_halves_and_possible(scenario):
    cluster, connection = scenario
    verdict = evaluate(cluster, connection)
    assert verdict.allowed == (verdict.egress.allowed and verdict.ingress.allowed and _possible(cluster, connection))


@PROPERTY
@given(scenarios())
def test_evaluate_is_deterministic_under_reordering(scenario):
    cluster, connection = scenario
    shuffled = replace(
        cluster,
        namespaces=tuple(reversed(cluster.namespaces)),
        pods=tuple(reversed(cluster.pods)),
        policies=tuple(reversed(cluster.policies)),
    )
    assert evaluate(cluster, connection) == evaluate(cluster, connection) == evaluate(shuffled, connection)


_ADD = re.compile(r"^add label (?P<key>[^=\s]+)=(?P<value>\S*) to (?P<pod>\S+/\S+)$")
_REMOVE = re.compile(r"^remove label (?P<key>\S+) from (?P<pod>\S+/\S+)$")
_NS_ADD = re.compile(r"^label namespace (?P<ns>\S+) with (?P<key>[^=\s]+)=(?P<value>\S*)$")
_NS_REMOVE = re.compile(r"^remove label (?P<key>\S+) from namespace (?P<ns>\S+)$")


def _apply_label_hint(cluster, connection, text):
    """Applies a label hint read from its words alone; None when it is not a label hint."""
    pods = {p.key: p for p in cluster.pods}
    for end in (connection.source, connection.destination):
        if isinstance(end, Pod):
            pods.setdefault(end.key, end)
    namespaces = {n.name: n for n in cluster.namespaces}
    pod_labels = {key: dict(p.labels) for key, p in pods.items()}
    ns_labels = {name: dict(n.labels) for name, n in namespaces.items()}
    for part in text.split(" and "):
        if m := _NS_ADD.match(part):
            ns_labels[m["ns"]][m["key"]] = m["value"]
        elif m := _NS_REMOVE.match(part):
            del ns_labels[m["ns"]][m["key"]]
        elif m := _ADD.match(part):
            pod_labels[m["pod"]][m["key"]] = m["value"]
        elif m := _REMOVE.match(part):
            del pod_labels[m["pod"]][m["key"]]
        else:
            return None
    relabelled = {key: replace(p, labels=Labels(pod_labels[key])) for key, p in pods.items()}

    def swap(end):
        return relabelled[end.key] if isinstance(end, Pod) else end

    changed = replace(
        cluster,
        pods=tuple(relabelled[p.key] for p in cluster.pods),
        namespaces=tuple(replace(n, labels=Labels(ns_labels[n.name])) for n in cluster.namespaces),
    )
    return changed, replace(connection, source=swap(connection.source), destination=swap(connection.destination))


@st.composite
def near_misses(draw):
    """A connection between two pods plus a policy selecting the destination whose only
    ingress rule has one random pod peer and no ports: denials it causes are label denials."""
    cluster = draw(clusters(host_network=False))
    source = draw(st.sampled_from(cluster.pods))
    destination = draw(st.sampled_from(cluster.pods))
    scope = draw(
        st.one_of(
            st.just(OwnNamespace(destination.namespace)), st.builds(SelectedNamespaces, selectors(NAMESPACE_LABEL_KEYS))
        )
    )
    near = NetworkPolicy(
        destination.namespace,
        "near",
        LabelSelector.from_labels(destination.labels),
        frozenset({Direction.INGRESS}),
        ingress=(Rule(Direction.INGRESS, 0, (PodPeer(scope, draw(selectors())),)),),
    )
    connection = Connection(
        source, destination, Protocol.TCP, 80, cluster_families(cluster)[0], via_service=draw(st.booleans())
    )
    return replace(cluster, policies=(*cluster.policies, near)), connection


@PROPERTY
@given(st.one_of(scenarios(), near_misses()), st.sampled_from(list(Direction)))
def test_label_hints_flip_the_half(scenario, direction):
    cluster, connection = scenario
    half = evaluate_direction(cluster, connection, direction)
    for hint in half.hints:
        applied = _apply_label_hint(cluster, connection, hint.text)
        if applied is not None:
            assert evaluate_direction(*applied, direction).allowed, hint.text
