"""ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy read from the API
server: discovery of the served kinds and versions, projection through the one parser,
failing closed on what the parser refuses, tier order in snapshots, reflectors that follow
CRDs installed and removed, and the live-cluster CLI."""

from __future__ import annotations

import ipaddress
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config

from policyctl.kubeapi.discovery import discover
from policyctl.kubeapi.errors import ReadError
from policyctl.kubeapi.projections import project
from policyctl.kubeapi.resources import CUSTOM_RESOURCES, RBAC_RULES, Resource
from policyctl.kubeapi.served import Discovery, ServedReflector
from policyctl.kubeapi.snapshot import read_cluster
from policyctl.kubeapi.store import ClusterStore
from policyctl.kubeapi.unreadable import unreadable
from policyctl.policy.clustermodel import Action, Tier
from policyctl.policy.diagnostics import Severity
from policyctl.manifests.loader import load
from policyctl.policy.model import IPBlockPeer, LabelSelector, PodPeer, SelectedNamespaces
from policyctl.policy.semantics import evaluate
from tests.apiserver import FakeApiServer
from tests.builders import connect
from tests.kubeapi import objects as raw
from tests.kubeapi.cluster_objects import anp, banp, cnp, pods_of
from tests.kubeapi.conftest import BOOKMARK_INTERVAL, READ_TIMEOUT, wait_until
from tests.kubeapi.test_cli_live import WEBSHOP, no_ambient_kubeconfig, run, webshop

__all__ = ["no_ambient_kubeconfig", "webshop"]

CNPS, ANPS, BANPS = CUSTOM_RESOURCES
ALL_PODS = PodPeer(SelectedNamespaces(LabelSelector()), LabelSelector())
DENY_EDGE = {"action": "Deny", "name": "no-edge", "from": [{"namespaces": {"matchLabels": {"team": "edge"}}}]}


def client_for(server: FakeApiServer, tmp_path: Path) -> Any:
    return config.new_client_from_config(config_file=server.write_kubeconfig(tmp_path / "kubeconfig"))


@pytest.mark.parametrize(
    ("crds", "expected"),
    [
        pytest.param({"ClusterNetworkPolicy": ("v1alpha2", "v1beta1"), "AdminNetworkPolicy": ("v1alpha1",),
                      "BaselineAdminNetworkPolicy": ("v1alpha1",)},
                     {CNPS: "v1beta1", ANPS: "v1alpha1", BANPS: "v1alpha1"}, id="all-v1beta1-preferred"),
        pytest.param({"ClusterNetworkPolicy": ("v1alpha2",)}, {CNPS: "v1alpha2"}, id="only-v1alpha2"),
        pytest.param({"ClusterNetworkPolicy": ("v1beta1",)}, {CNPS: "v1beta1"}, id="only-v1beta1"),
        pytest.param({"AdminNetworkPolicy": ("v1alpha1",)}, {ANPS: "v1alpha1"}, id="only-the-old-admin-kind"),
        pytest.param({}, {}, id="no-crds"),
    ],
)
def test_discovery_finds_the_served_kinds_at_the_preferred_version(
    crds: dict[str, tuple[str, ...]], expected: dict[Resource, str], tmp_path: Path
) -> None:
    with FakeApiServer(crds=crds) as server:
        api = client_for(server, tmp_path)
        try:
            assert dict(discover(api).versions) == expected
        finally:
            api.close()


def test_discovery_of_an_unreachable_server_is_a_read_error(tmp_path: Path) -> None:
    server = FakeApiServer().start()
    api = client_for(server, tmp_path)
    server.stop()
    api.configuration.retries = 0
    try:
        with pytest.raises(ReadError, match="API discovery"):
            discover(api, request_timeout=(0.5, 0.5))
    finally:
        api.close()


def test_the_rbac_rules_are_list_and_watch_on_the_three_kinds() -> None:
    assert {(g, r) for g, r, verbs in RBAC_RULES if g == "policy.networking.k8s.io" and verbs == ("list", "watch")} == {
        ("policy.networking.k8s.io", "clusternetworkpolicies"), ("policy.networking.k8s.io", "adminnetworkpolicies"),
        ("policy.networking.k8s.io", "baselineadminnetworkpolicies")}  # fmt: skip


@pytest.mark.parametrize(
    ("resource", "obj", "tier", "priority", "action", "api_version"),
    [
        pytest.param(CNPS, cnp("c", tier="Baseline", priority=7, ingress=[DENY_EDGE]), Tier.BASELINE, 7, Action.DENY,
                     "policy.networking.k8s.io/v1beta1", id="cluster-network-policy-v1beta1"),
        pytest.param(CNPS, cnp("c", ingress=[DENY_EDGE], api_version="policy.networking.k8s.io/v1alpha2"), Tier.ADMIN,
                     10, Action.DENY, "policy.networking.k8s.io/v1alpha2", id="cluster-network-policy-v1alpha2"),
        pytest.param(ANPS, anp("a", priority=3, ingress=[{**DENY_EDGE, "action": "Allow"}]), Tier.ADMIN, 3,
                     Action.ACCEPT, "policy.networking.k8s.io/v1alpha1", id="admin-network-policy-allow-is-accept"),
        pytest.param(BANPS, banp([DENY_EDGE]), Tier.BASELINE, 1000, Action.DENY, "policy.networking.k8s.io/v1alpha1",
                     id="baseline-admin-network-policy"),
    ],
)
def test_a_cluster_policy_is_projected_by_the_one_parser(
    resource: Resource, obj: dict[str, Any], tier: Tier, priority: int, action: Action, api_version: str
) -> None:
    projection, diagnostics = project(resource, {**obj, "metadata": {**obj["metadata"], "uid": "u1",
                                                                      "resourceVersion": "5"}})  # fmt: skip
    assert diagnostics == [] and projection is not None
    policy = projection.value
    assert (projection.key, projection.uid, projection.resource_version) == (obj["metadata"]["name"], "u1", "5")
    assert (policy.tier, policy.priority, policy.ingress[0].action, policy.api_version) == (
        tier, priority, action, api_version)
    assert str(policy.provenance).startswith(f"cluster:{resource.value}/{obj['metadata']['name']}")


def test_node_labels_are_projected_for_nodes_peers() -> None:
    node = raw.node("node-a", "192.168.1.1")
    node["metadata"]["labels"] = {"zone": "a", "kubernetes.io/hostname": "node-a"}
    projection, _ = project(Resource.NODES, node)
    assert projection is not None and dict(projection.value.labels) == node["metadata"]["labels"]


UNKNOWN_PEER = {"futurePeer": {"x": "y"}}


@pytest.mark.parametrize(
    ("spec_change", "expected_ingress", "expected_subject"),
    [
        pytest.param({"ingress": [{"action": "Deny", "name": "new", "from": [UNKNOWN_PEER]}, DENY_EDGE]},
                     [("new", Action.DENY, (ALL_PODS,)), ("no-edge", Action.DENY, None)], None,
                     id="unreadable-deny-rule-denies-everything"),
        pytest.param({"ingress": [{"action": "Pass", "name": "new", "from": [UNKNOWN_PEER]}]},
                     [("new", Action.DENY, (ALL_PODS,))], None, id="unreadable-pass-rule-denies-everything"),
        pytest.param({"ingress": [{"action": "Accept", "name": "new", "from": [UNKNOWN_PEER]}, DENY_EDGE]},
                     [("no-edge", Action.DENY, None)], None, id="unreadable-accept-rule-matches-nothing"),
        pytest.param({"ingress": [{"action": "Redirect", "name": "new", "from": [{"namespaces": {}}]}]},
                     [("new", Action.DENY, (ALL_PODS,))], None, id="unknown-action-denies-everything"),
        pytest.param({"subject": {"futureSubject": {}}, "ingress": [DENY_EDGE]}, [("no-edge", Action.DENY, None)],
                     ALL_PODS, id="unreadable-subject-is-every-pod"),
    ],
)
def test_a_refused_cluster_policy_fails_closed(
    spec_change: dict[str, Any], expected_ingress: list[tuple[str, Action, Any]], expected_subject: Any
) -> None:
    obj = cnp("future", subject=pods_of({"team": "shop"}, {"app": "web"}), ingress=[DENY_EDGE])
    obj["spec"].update(spec_change)
    projection, diagnostics = project(CNPS, obj)
    assert any(d.severity is Severity.ERROR for d in diagnostics), "the parser must refuse it"
    assert [d.code for d in diagnostics if d.code == "fails-closed"] == ["fails-closed"]
    assert projection is not None
    policy = projection.value
    got = [(r.name, r.action, r.peers if peers is not None else None)
           for r, (_, _, peers) in zip(policy.ingress, expected_ingress)]  # fmt: skip
    assert got == expected_ingress and len(policy.ingress) == len(expected_ingress)
    if expected_subject is not None:
        assert policy.subject == expected_subject
    assert "refused by policyctl's parser" in policy.warnings[-1]


def test_an_unreadable_egress_deny_denies_every_address() -> None:
    obj = cnp("future", egress=[{"action": "Deny", "name": "new", "to": [UNKNOWN_PEER]}])
    projection, _ = project(CNPS, obj)
    assert projection is not None
    everywhere = (IPBlockPeer(ipaddress.ip_network("0.0.0.0/0"), ()), IPBlockPeer(ipaddress.ip_network("::/0"), ()))
    assert (projection.value.egress[0].action, projection.value.egress[0].peers) == (Action.DENY, everywhere)


def test_a_failing_closed_deny_denies_in_the_semantics() -> None:
    """The oracle: the stand-in of an unreadable Admin Deny denies what an Accept would not."""
    store = ClusterStore()
    for resource, objects in ((Resource.NAMESPACES, [raw.namespace("shop", team="shop"),
                                                     raw.namespace("edge", team="edge")]),
                              (Resource.PODS, [raw.pod("shop/web", {"app": "web"}, ip="10.0.0.1"),
                                               raw.pod("edge/gw", {"role": "gw"}, ip="10.0.0.2")])):  # fmt: skip
        store.replace(resource, [p for p, _ in (project(resource, o) for o in objects) if p is not None])
    open_cluster = store.snapshot()
    assert evaluate(open_cluster, connect(open_cluster, "edge/gw", "shop/web")).allowed
    refused = cnp("future", ingress=[{"action": "Deny", "from": [UNKNOWN_PEER]}])
    projection, _ = project(CNPS, refused)
    assert projection is not None
    store.upsert(CNPS, projection)
    closed = store.snapshot()
    assert not evaluate(closed, connect(closed, "edge/gw", "shop/web")).allowed


def test_a_cluster_policy_whose_name_is_refused_is_left_out_with_an_error() -> None:
    projection, diagnostics = project(BANPS, {**banp([DENY_EDGE]), "metadata": {"name": "not-default"}})
    assert projection is None
    assert any(d.code == "left-out" and d.severity is Severity.ERROR for d in diagnostics)


def test_snapshots_order_the_three_kinds_as_the_file_loader_does(tmp_path: Path) -> None:
    objects = [cnp("base-5", tier="Baseline", priority=5, ingress=[DENY_EDGE]),
               cnp("admin-7", priority=7, ingress=[DENY_EDGE]), anp("old-3", priority=3, ingress=[DENY_EDGE]),
               banp([DENY_EDGE]), cnp("admin-3", priority=3, ingress=[DENY_EDGE])]  # fmt: skip
    store = ClusterStore()
    for resource in CUSTOM_RESOURCES:
        kind = {CNPS: "ClusterNetworkPolicy", ANPS: "AdminNetworkPolicy", BANPS: "BaselineAdminNetworkPolicy"}[resource]
        store.replace(resource, [p for p, _ in (project(resource, o) for o in objects if o["kind"] == kind) if p])
    live = store.snapshot().cluster_policies
    path = tmp_path / "policies.yaml"
    path.write_text(yaml.safe_dump_all([{k: v for k, v in o.items() if k != "status"} for o in objects]))
    from_files = load([str(path)]).cluster.cluster_policies
    assert [str(p) for p in live] == [str(p) for p in from_files] == [
        "AdminNetworkPolicy old-3", "ClusterNetworkPolicy admin-3", "ClusterNetworkPolicy admin-7",
        "ClusterNetworkPolicy base-5", "BaselineAdminNetworkPolicy default"]  # fmt: skip
    assert [(p.tier, p.order, p.ingress) for p in live] == [(p.tier, p.order, p.ingress) for p in from_files]
    assert store.snapshot() is store.snapshot()


# -- reflectors that follow the CRDs -------------------------------------------------------------


@contextmanager
def following(api: Any, store: ClusterStore, discovery: Discovery) -> Iterator[dict[Resource, ServedReflector]]:
    reflectors = {r: ServedReflector(r, api=api, store=store, discovery=discovery, read_timeout=READ_TIMEOUT,
                                     connect_timeout=2.0, backoff=(0.05, 0.2)) for r in CUSTOM_RESOURCES}  # fmt: skip
    stop = threading.Event()
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in reflectors.values()]
    for thread in threads:
        thread.start()
    try:
        for reflector in reflectors.values():
            assert reflector.wait_synced(10), f"{reflector.resource} never synced"
        yield reflectors
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        assert not any(t.is_alive() for t in threads), "a reflector did not stop"


def names(store: ClusterStore) -> list[str]:
    return [p.name for p in store.snapshot().cluster_policies]


def test_absent_crds_are_no_error_and_a_crd_installed_later_is_picked_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="policyctl.kubeapi.served")
    with FakeApiServer(crds={}, bookmark_interval=BOOKMARK_INTERVAL) as server:
        api = client_for(server, tmp_path)
        store = ClusterStore()
        with following(api, store, Discovery(api, max_age=0.2)) as reflectors:
            assert all(r.synced and r.in_sync and not r.served and r.last_error is None for r in reflectors.values())
            assert [r for r in server.requests if not r.discovery] == [], "a kind not served was listed"
            server.install_crd("ClusterNetworkPolicy", ("v1alpha2",))
            server.create(cnp("late", ingress=[DENY_EDGE]))
            wait_until(lambda: names(store) == ["late"], what="the policy of a CRD installed later")
            assert reflectors[CNPS].served_version == "v1alpha2"
            assert store.snapshot().cluster_policies[0].api_version == "policy.networking.k8s.io/v1alpha2"
            server.install_crd("ClusterNetworkPolicy", ("v1alpha2", "v1beta1"))
            wait_until(lambda: reflectors[CNPS].served_version == "v1beta1", what="the upgrade to v1beta1")
            wait_until(lambda: store.snapshot().cluster_policies[0].api_version.endswith("v1beta1"), what="relist")
            server.remove_crd("ClusterNetworkPolicy")
            wait_until(lambda: names(store) == [] and not reflectors[CNPS].served, what="the CRD's removal")
        api.close()
    absent = [r.getMessage() for r in caplog.records if "not served" in r.getMessage()]
    assert sum(m.startswith("adminnetworkpolicies:") for m in absent) == 1, "the absence is logged once"
    assert any("clusternetworkpolicies: served at policy.networking.k8s.io/v1beta1" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_a_cluster_policy_added_modified_and_deleted_reaches_the_store(tmp_path: Path) -> None:
    with FakeApiServer(bookmark_interval=BOOKMARK_INTERVAL) as server:
        api = client_for(server, tmp_path)
        store = ClusterStore()
        with following(api, store, Discovery(api, max_age=30.0)):
            server.create(cnp("deny-edge", priority=20, ingress=[DENY_EDGE]))
            server.create(anp("old", priority=5, ingress=[{**DENY_EDGE, "action": "Allow"}]))
            server.create(banp([DENY_EDGE]))
            wait_until(lambda: names(store) == ["old", "deny-edge", "default"], what="three kinds in tier order")
            server.update(cnp("deny-edge", priority=1, ingress=[DENY_EDGE]))
            wait_until(lambda: names(store) == ["deny-edge", "old", "default"], what="the new priority")
            before = store.snapshot()
            server.update({**cnp("deny-edge", priority=1, ingress=[DENY_EDGE]), "status": {"conditions": []}})
            server.delete("AdminNetworkPolicy", None, "old")
            wait_until(lambda: names(store) == ["deny-edge", "default"], what="the deletion")
            assert store.snapshot().cluster_policies[0] == before.cluster_policies[0], "a status change is no change"
        api.close()


# -- the live-cluster CLI -------------------------------------------------------------------------

SHOP = {"kubernetes.io/metadata.name": "shop"}
SHOP_DENY = cnp("shop-guard", priority=5, subject=pods_of(SHOP, {"app": "payments"}),
                ingress=[{"action": "Deny", "name": "not-from-frontend", "from": [pods_of(SHOP, {"app": "frontend"})]}])


def test_live_explain_and_matrix_see_a_cluster_network_policy(webshop: str, apiserver: FakeApiServer,
                                                              tmp_path: Path) -> None:  # fmt: skip
    args = ("frontend", "payments", "--kubeconfig", webshop, "--port", "8443/TCP", "-o", "json")
    before = run("explain", *args)
    assert before.exit_code == 0, before.stderr
    assert json.loads(before.stdout)["allowed"] is True
    apiserver.create(SHOP_DENY)
    after = run("explain", *args)
    assert after.exit_code == 0, after.stderr
    assert json.loads(after.stdout)["allowed"] is False
    assert "shop-guard" in after.stdout and "not-from-frontend" in after.stdout
    files = tmp_path / "manifests"
    shutil.copytree(WEBSHOP, files)
    (files / "zz-shop-guard.yaml").write_text(yaml.safe_dump({k: v for k, v in SHOP_DENY.items() if k != "status"}))
    live = run("matrix", "--kubeconfig", webshop, "-A", "--port", "8443/TCP", "-o", "json")
    from_files = run("matrix", "-f", str(files), "--port", "8443/TCP", "-o", "json")
    assert live.exit_code == from_files.exit_code == 0, live.stderr + from_files.stderr
    assert json.loads(live.stdout)["allowed"] == json.loads(from_files.stdout)["allowed"]
    unguarded = run("matrix", "-f", str(WEBSHOP), "--port", "8443/TCP", "-o", "json")
    assert json.loads(live.stdout)["allowed"] != json.loads(unguarded.stdout)["allowed"]


def test_live_reading_without_the_crds_is_no_error(tmp_path: Path) -> None:
    with FakeApiServer(crds={}) as server:
        server.create(raw.namespace("shop"))
        api = client_for(server, tmp_path)
        try:
            snapshot = read_cluster(api)
        finally:
            api.close()
    assert snapshot.cluster.cluster_policies == ()
    assert all(d.severity is Severity.INFO and d.code == "not-served" for d in snapshot.diagnostics)
    assert len(snapshot.diagnostics) == 3


@pytest.mark.parametrize(
    ("forbidden", "warning"),
    [
        pytest.param("clusternetworkpolicies", "cannot list clusternetworkpolicies (403 Forbidden): left out; "
                     "verdicts do not include their tier", id="cluster-network-policies"),
        pytest.param("adminnetworkpolicies", "cannot list adminnetworkpolicies (403 Forbidden): left out",
                     id="admin-network-policies"),
    ],
)
def test_a_refused_cluster_policy_list_is_a_warning_never_silent(
    webshop: str, apiserver: FakeApiServer, forbidden: str, warning: str
) -> None:
    apiserver.create(SHOP_DENY)
    apiserver.forbid(forbidden)
    result = run("matrix", "--kubeconfig", webshop, "-A", "--port", "8443/TCP", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert warning in result.stderr


@pytest.mark.parametrize(
    ("status", "exit_code", "message"),
    [
        pytest.param(403, 0, "ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy left out",
                     id="forbidden-is-a-warning"),
        pytest.param(503, 2, "cannot discover the API groups", id="failing-is-an-input-error"),
    ],
)
def test_live_reading_when_discovery_fails(
    webshop: str, apiserver: FakeApiServer, status: int, exit_code: int, message: str
) -> None:
    apiserver.fail_discovery(status)
    result = run("matrix", "--kubeconfig", webshop, "-A", "--port", "8443/TCP")
    assert result.exit_code == exit_code, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_failing_discovery_keeps_the_reflector_unsynced_and_out_of_sync(tmp_path: Path) -> None:
    with FakeApiServer(bookmark_interval=BOOKMARK_INTERVAL) as server:
        server.create(cnp("guard", ingress=[DENY_EDGE]))
        server.fail_discovery(503)
        api = client_for(server, tmp_path)
        store = ClusterStore()
        reflector = ServedReflector(CNPS, api=api, store=store, discovery=Discovery(api, max_age=0.2),
                                    read_timeout=READ_TIMEOUT, backoff=(0.05, 0.2))  # fmt: skip
        stop = threading.Event()
        thread = threading.Thread(target=reflector.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_until(lambda: reflector.restarts["error"] >= 2, what="discovery retried")
            assert not reflector.synced and not reflector.in_sync
            assert reflector.last_error is not None and "discovery failed" in reflector.last_error
            assert reflector.stale_seconds() > 0
            server.fail_discovery(None)
            assert reflector.wait_synced(10)
            wait_until(lambda: names(store) == ["guard"], what="the policy after discovery recovered")
            assert reflector.in_sync and reflector.last_error is None and reflector.stale_seconds() == 0
        finally:
            stop.set()
            thread.join(timeout=5)
            api.close()
        assert not thread.is_alive()


def test_a_cluster_policy_whose_reading_raises_fails_closed() -> None:
    """A parser bug met in the reflector (:mod:`kubeapi.unreadable`): the stand-in denies as the
    refused policy's does, never leaving an Admin Deny out."""
    stand_in = unreadable(CNPS, cnp("guard", subject=pods_of({"team": "shop"}, {"app": "web"}),
                                    ingress=[{"action": "Deny", "from": [UNKNOWN_PEER]}]))  # fmt: skip
    assert stand_in is not None
    policy = stand_in.value
    assert (policy.name, policy.tier, policy.ingress[0].action, policy.ingress[0].peers) == (
        "guard", Tier.ADMIN, Action.DENY, (ALL_PODS,))
