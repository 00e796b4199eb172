"""The delta between two rulesets of a node: ``patch(old, diff(old, new)) == new``, and what a
delta carries for the changes an event brings."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.compiler.chains import dispatch_map
from policyctl.compiler.compile import compile_node
from policyctl.compiler.delta import RulesetDelta, diff, empty_ruleset, patch
from policyctl.compiler.ruleset import Jump, Mode, Ruleset
from policyctl.policy.model import Direction, Family
from policyctl.policy.cluster import Cluster
from tests.builders import cluster, pod, pod_peer, policy, port, rule
from tests.strategies import clusters


def _compiled(c: Cluster, node: str) -> Ruleset:
    return compile_node(c, node)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_patching_with_the_diff_of_two_rulesets_gives_the_second(data: st.DataObject) -> None:
    first = data.draw(clusters())
    second = data.draw(clusters())
    node = first.nodes[0].name
    old, new = _compiled(first, node), _compiled(second, node)
    delta = diff(old, new)
    assert patch(old, delta) == new
    assert delta.empty == (old == new)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_a_delta_from_the_empty_ruleset_carries_everything_whole(c: Cluster) -> None:
    node = c.nodes[0].name
    new = _compiled(c, node)
    delta = diff(empty_ruleset(new.table, new.node, new.mode), new)
    assert patch(empty_ruleset(new.table, new.node, new.mode), delta) == new
    assert len(delta.sets) == len(new.sets) and len(delta.maps) == len(new.maps)
    assert [c.name for c in delta.chains] == [c.name for c in new.chains]
    assert not (delta.added_elements or delta.added_entries or delta.removed)


def _web_cluster(*, replicas: int, from_app: str = "api") -> Cluster:
    pods = [pod(f"x/web-{i}", {"app": "web"}, ips=[f"10.0.1.{10 + i}"], node="node-1") for i in range(replicas)]
    pods += [pod("x/api-0", {"app": "api"}, ips=["10.0.2.10"], node="node-2")]
    allow = policy("x/allow-web", {"app": "web"}, ingress=[rule(pod_peer({"app": from_app}), ports=[port(80)])])
    return cluster(*pods, allow)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(
            _web_cluster(replicas=1), _web_cluster(replicas=2),
            {"chains": 0, "added_elements": 2, "added_entries": 1, "removed": 0},
            id="a-local-replica-shares-its-pod-chain-and-adds-its-dispatch-entry-set-element-and-policed-address",
        ),
        pytest.param(
            _web_cluster(replicas=2), _web_cluster(replicas=1),
            {"removed_chains": 0, "removed_elements": 2, "removed_entries": 1, "removed": 0},
            id="a-deleted-local-replica-takes-exactly-its-own-objects-away-and-leaves-the-shared-chain",
        ),
        pytest.param(
            _web_cluster(replicas=1), _web_cluster(replicas=1, from_app="db"),
            {"removed": 2},
            id="a-rule-that-now-selects-no-pod-removes-its-identity-sets-and-peer-map",
        ),
    ],
)
def test_the_delta_of_an_event_is_as_small_as_the_event(
    before: Cluster, after: Cluster, expected: dict[str, int]
) -> None:
    old, new = _compiled(before, "node-1"), _compiled(after, "node-1")
    delta = diff(old, new)
    assert patch(old, delta) == new
    counts = {
        "chains": len(delta.chains),
        "removed_chains": len(delta.removed_chains),
        "added_elements": sum(len(e) for _, e in delta.added_elements),
        "removed_elements": sum(len(e) for _, e in delta.removed_elements),
        "added_entries": sum(len(e) for _, e in delta.added_entries),
        "removed_entries": sum(len(e) for _, e in delta.removed_entries),
        "removed": len(delta.removed),
    }
    assert {k: counts[k] for k in expected} == expected


def test_a_set_whose_interval_flag_changes_is_recreated_with_the_chains_that_read_it() -> None:
    single = _web_cluster(replicas=1)
    ranged = replace(single, policies=tuple(
        replace(p, ingress=(replace(p.ingress[0], ports=(port(80, end_port=90),)),)) for p in single.policies
    ))
    old, new = _compiled(single, "node-1"), _compiled(ranged, "node-1")
    delta = diff(old, new)
    assert patch(old, delta) == new
    recreated = [s.name for s in delta.sets]
    assert recreated and all(name in {s.name for s in old.sets} for name in recreated)
    readers = {c.name for c in new.chains if any(name in repr(c.rules) for name in recreated)}
    assert readers and readers <= {c.name for c in delta.chains}


def test_an_unchanged_ruleset_gives_an_empty_delta() -> None:
    ruleset = _compiled(_web_cluster(replicas=2), "node-1")
    assert diff(ruleset, ruleset) == RulesetDelta()
    assert RulesetDelta().empty and patch(ruleset, RulesetDelta()) == ruleset
    assert compile_node(_web_cluster(replicas=2), "node-1", mode=Mode.AUDIT) != ruleset


def test_entries_sharing_an_address_are_in_one_order_however_they_were_gathered_or_patched() -> None:
    """Two local pods holding one address (a ruleset the enforcer refuses until one is gone)
    give the dispatch map two entries for one key: whole compiles and patches order them
    alike, by target, whatever order they came in (a patch rebuilds entries from sets)."""
    address = ipaddress.ip_address("10.0.1.12")
    a, b = (address, Jump("out-a")), (address, Jump("out-b"))
    gathered = [dispatch_map(Direction.EGRESS, Family.IPV4, order).elements for order in ([a, b], [b, a])]
    assert gathered == [(a, b), (a, b)]
    old = replace(empty_ruleset("policyctl", "node-1", Mode.ENFORCE),
                  maps=(dispatch_map(Direction.EGRESS, Family.IPV4, [b]),))
    for added in ((a,), (b, a)):
        delta = RulesetDelta(added_entries=(("egress-v4", added),))
        assert next(m for m in patch(old, delta).maps if m.name == "egress-v4").elements == (a, b)
