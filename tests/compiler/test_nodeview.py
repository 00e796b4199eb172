"""The node view: what one snapshot changes of a node's pods, selecting policies and selector
use, reported as a ViewChange."""

from __future__ import annotations

import dataclasses

from policyctl.compiler.identities import Identity
from policyctl.compiler.nodeview import NodeView
from policyctl.policy.model import Direction
from policyctl.policy.cluster import Cluster
from tests.builders import cluster, namespace, node, pod, pod_peer, policy, port, rule

WEB_1 = pod("x/web-1", {"app": "web"}, node="node-1", ips=["10.0.1.10"])
API_1 = pod("x/api-1", {"app": "api"}, node="node-2", ips=["10.0.2.10"])
ALLOW_API = policy("x/allow-api", {"app": "web"}, ingress=[rule(pod_peer({"app": "api"}), ports=[port(80)])])


def _world(*extra: object) -> Cluster:
    return cluster(namespace("x"), node("node-1", "192.168.0.1"), node("node-2", "192.168.0.2"), *extra)  # type: ignore[arg-type]


def _view(first: Cluster) -> NodeView:
    view = NodeView("node-1", {n.name: n.labels for n in first.namespaces})
    view.follow(first)
    return view


def test_a_policy_selecting_a_local_pod_isolates_it_and_brings_its_peer_selector_into_use() -> None:
    before = _world(WEB_1, API_1)
    view = _view(before)
    change = view.follow(dataclasses.replace(before, policies=(ALLOW_API,)))
    assert change.reselected == {("x/web-1", Direction.INGRESS), ("x/web-1", Direction.EGRESS)}
    assert not change.toggled[Direction.EGRESS]
    (selector,) = change.toggled[Direction.INGRESS]
    assert change.reach[selector] == {Identity("x", API_1.labels)}
    assert view.users[Direction.INGRESS] == {selector: {"x/web-1"}}
    assert set(view.isolated) == {("x/web-1", Direction.INGRESS)}
    assert dict(view.selecting) == {"x/web-1": (ALLOW_API,)}
    assert not change.changed_pods and not change.local_changed


def test_the_last_user_of_a_selector_leaving_takes_it_out_of_use() -> None:
    before = _world(WEB_1, API_1, ALLOW_API)
    view = _view(before)
    change = view.follow(dataclasses.replace(before, pods=(API_1,)))
    assert change.local_changed == {"x/web-1"}
    assert change.changed_pods == {"x/web-1"}
    assert change.candidates == (WEB_1,)
    (selector,) = change.toggled[Direction.INGRESS]
    assert change.reach[selector] == {Identity("x", API_1.labels)}
    assert view.users[Direction.INGRESS] == {}
    assert view.local_pods == () and dict(view.selecting) == {} and view.isolated == {}


def test_a_remote_pod_changes_the_membership_and_reselects_nothing() -> None:
    before = _world(WEB_1, API_1, ALLOW_API)
    view = _view(before)
    api_2 = pod("x/api-2", {"app": "api"}, node="node-2", ips=["10.0.2.11"])
    change = view.follow(dataclasses.replace(before, pods=(*before.pods, api_2)))
    assert change.changed_pods == {"x/api-2"} and not change.local_changed
    assert not change.reselected and not any(change.toggled.values()) and not change.everyone_toggled
    assert set(view.membership.members[Identity("x", API_1.labels)]) == {"x/api-1", "x/api-2"}


def test_an_unchanged_snapshot_changes_nothing() -> None:
    before = _world(WEB_1, API_1, ALLOW_API)
    view = _view(before)
    change = view.follow(before)
    assert not (change.changed_pods or change.candidates or change.reselected or change.reach)
    assert not change.host_changed and not change.gone_identities
