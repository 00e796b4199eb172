"""Reflectors against the fake API server, through the official client: after every scenario
the store's snapshot equals what the server holds, and the change feed said what changed."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from policyctl.kubeapi.resources import Resource
from policyctl.kubeapi.store import ChangeKind, ClusterStore
from policyctl.policy.model import Labels
from tests.apiserver import FakeApiServer
from tests.kubeapi.conftest import reflecting, server_cluster, wait_until
from tests.kubeapi.objects import deny_all, namespace, node, pod, policy

PODS = Resource.PODS
POLICIES = Resource.NETWORK_POLICIES


@pytest.fixture
def shop(apiserver: FakeApiServer) -> FakeApiServer:
    apiserver.create(namespace("shop", team="shop"))
    apiserver.create(namespace("db", team="data"))
    apiserver.create(node("node-a", "192.168.0.10"))
    for i, name in enumerate(("a", "b", "c", "d")):
        apiserver.create(pod(f"shop/{name}", {"app": name}, ip=f"10.0.0.{i + 1}"))
    apiserver.create(pod("db/pg", {"app": "pg"}, ip="10.0.1.1"))
    apiserver.create(deny_all("shop/deny"))
    apiserver.create(policy("db/allow-shop", {
        "podSelector": {"matchLabels": {"app": "pg"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "shop"}}}],
                     "ports": [{"port": 5432}]}],
    }))  # fmt: skip
    return apiserver


class Feed:
    """The change feed, recorded."""

    def __init__(self) -> None:
        self.changes: list[tuple[Resource, str, ChangeKind]] = []

    def __call__(self, resource: Resource, key: str, kind: ChangeKind) -> None:
        self.changes.append((resource, key, kind))

    def since(self, mark: int) -> set[tuple[Resource, str, ChangeKind]]:
        return set(self.changes[mark:])


def watching(server: FakeApiServer, *kinds: str) -> None:
    """Wait until a watch of each kind (default: all four) is open."""
    for kind in kinds or ("Pod", "Namespace", "Node", "NetworkPolicy"):
        wait_until(lambda: server.open_watches(kind) >= 1, what=f"an open {kind} watch")


def in_sync(store: ClusterStore, server: FakeApiServer) -> None:
    wait_until(lambda: store.snapshot() == server_cluster(server), what="store == server")


def watch_requests(server: FakeApiServer, path: str) -> list[dict[str, str]]:
    return [dict(r.query) for r in server.requests if r.path == path and r.verb == "watch"]


def list_requests(server: FakeApiServer, path: str) -> list[dict[str, str]]:
    return [dict(r.query) for r in server.requests if r.path == path and r.verb == "list"]


def test_the_first_list_is_read_in_pages_and_equals_the_server(shop: FakeApiServer, api: Any) -> None:
    for i in range(3):
        shop.create(pod(f"db/replica-{i}", {"app": "pg", "role": "replica"}))
    store = ClusterStore()
    with reflecting(api, store, page_size=3) as reflectors:
        assert store.snapshot() == server_cluster(shop)
        assert [p.key for p in store.snapshot().pods] == [
            "db/pg", "db/replica-0", "db/replica-1", "db/replica-2",
            "shop/a", "shop/b", "shop/c", "shop/d",
        ]  # fmt: skip
        assert reflectors[PODS].lists == 1
    pages = list_requests(shop, "/api/v1/pods")
    assert [p.get("limit") for p in pages] == ["3", "3", "3"]
    assert "continue" not in pages[0] and pages[1]["continue"] and pages[2]["continue"]
    assert pages[1]["continue"] != pages[2]["continue"]


@pytest.mark.parametrize(
    "trigger",
    ["error-event-mid-stream", "error-event-on-reconnect", "http-410-on-reconnect"],
)
def test_410_relists_and_synthesises_the_deletions_missed_in_the_gap(
    shop: FakeApiServer, api: Any, trigger: str
) -> None:
    store, feed = ClusterStore(), Feed()
    with reflecting(api, store, on_change=feed) as reflectors:
        watching(shop)
        shop.go_silent("Pod")
        mark = len(feed.changes)
        shop.delete("Pod", "shop", "a")
        shop.delete("Pod", "shop", "b")
        shop.create(pod("shop/e", {"app": "e"}, ip="10.0.0.9"))
        shop.compact()
        if trigger == "error-event-mid-stream":
            shop.expire_watches("Pod")
        else:
            shop.gone_as_http_status = trigger == "http-410-on-reconnect"
            shop.drop_watches("Pod")
        in_sync(store, shop)
        assert feed.since(mark) == {
            (PODS, "shop/a", ChangeKind.DELETED),
            (PODS, "shop/b", ChangeKind.DELETED),
            (PODS, "shop/e", ChangeKind.ADDED),
        }
        assert reflectors[PODS].restarts["410"] == 1
        assert reflectors[PODS].lists == 2
        assert reflectors[POLICIES].lists == 1


def test_a_silent_connection_is_noticed_by_the_read_timeout_and_nothing_is_lost(
    shop: FakeApiServer, api: Any
) -> None:
    store, feed = ClusterStore(), Feed()
    with reflecting(api, store, on_change=feed) as reflectors:
        watching(shop, "Pod")
        version = reflectors[PODS].resource_version
        shop.go_silent("Pod")
        mark = len(feed.changes)
        shop.create(pod("shop/e", {"app": "e"}))
        shop.update(pod("shop/a", {"app": "a", "tier": "front"}, ip="10.0.0.1"))
        in_sync(store, shop)
        assert reflectors[PODS].restarts["timeout"] >= 1
        assert reflectors[PODS].lists == 1, "a reconnect from the last version needs no relist"
        assert feed.since(mark) == {(PODS, "shop/e", ChangeKind.ADDED), (PODS, "shop/a", ChangeKind.MODIFIED)}
    assert watch_requests(shop, "/api/v1/pods")[1]["resourceVersion"] == version


def test_a_relabelled_namespace_is_in_the_next_snapshot(shop: FakeApiServer, api: Any) -> None:
    store, feed = ClusterStore(), Feed()
    with reflecting(api, store, on_change=feed):
        before = store.snapshot()
        assert before.namespace_by_name["shop"].labels["team"] == "shop"
        mark = len(feed.changes)
        shop.update(namespace("shop", team="payments"))
        in_sync(store, shop)
        after = store.snapshot()
    assert after.namespace_by_name["shop"].labels == Labels(
        {"team": "payments", "kubernetes.io/metadata.name": "shop"}
    )
    assert feed.since(mark) == {(Resource.NAMESPACES, "shop", ChangeKind.MODIFIED)}
    assert before.namespace_by_name["shop"].labels["team"] == "shop", "snapshots are immutable"


def test_a_policy_deleted_while_disconnected_is_removed_on_reconnect(
    shop: FakeApiServer, api: Any
) -> None:
    store, feed = ClusterStore(), Feed()
    with reflecting(api, store, on_change=feed) as reflectors:
        watching(shop, "NetworkPolicy")
        shop.refuse_watches(503)
        shop.drop_watches("NetworkPolicy")
        wait_until(lambda: reflectors[POLICIES].restarts["error"] >= 1, what="a refused watch")
        mark = len(feed.changes)
        shop.delete("NetworkPolicy", "shop", "deny")
        shop.refuse_watches(None)
        in_sync(store, shop)
        assert [p.ref.name for p in store.snapshot().policies] == ["allow-shop"]
        assert feed.since(mark) == {(POLICIES, "shop/deny", ChangeKind.DELETED)}
        assert reflectors[POLICIES].restarts["dropped"] == 1
        assert reflectors[POLICIES].lists == 1, "the deletion came from the watch history"


@pytest.mark.parametrize("bookmarked", [True, False], ids=["bookmark-seen", "no-bookmark"])
def test_bookmarks_advance_the_version_so_a_reconnect_after_a_quiet_period_does_not_relist(
    shop: FakeApiServer, api: Any, bookmarked: bool
) -> None:
    shop.bookmark_interval = None
    store = ClusterStore()
    with reflecting(api, store, (POLICIES,), read_timeout=10.0) as reflectors:
        reflector = reflectors[POLICIES]
        watching(shop, "NetworkPolicy")
        listed_at = reflector.resource_version
        for i in range(3):
            shop.create(pod(f"shop/busy-{i}", {"app": "busy"}))
        if bookmarked:
            version = shop.bookmark("NetworkPolicy")
            wait_until(lambda: reflector.resource_version == str(version), what="the bookmark")
        shop.compact()
        shop.drop_watches("NetworkPolicy")
        wait_until(lambda: len(watch_requests(shop, "/apis/networking.k8s.io/v1/networkpolicies")) >= 2
                   and shop.open_watches("NetworkPolicy") == 1, what="a new watch")  # fmt: skip
        assert store.snapshot().policies == server_cluster(shop).policies
        watches = watch_requests(shop, "/apis/networking.k8s.io/v1/networkpolicies")
        if bookmarked:
            assert reflector.lists == 1 and reflector.restarts["410"] == 0
            assert watches[1]["resourceVersion"] == str(version)
        else:
            assert reflector.lists == 2 and reflector.restarts["410"] == 1
            assert watches[1]["resourceVersion"] == listed_at
        assert all(w["allowWatchBookmarks"] == "true" for w in watches)


def test_unknown_event_types_are_logged_and_skipped(
    shop: FakeApiServer, api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = ClusterStore()
    caplog.set_level(logging.WARNING, logger="policyctl.kubeapi.reflector")
    with reflecting(api, store) as reflectors:
        watching(shop, "Pod")
        stranger = pod("shop/stranger", {"app": "x"})
        stranger["metadata"]["resourceVersion"] = "999999"
        shop.inject("Pod", {"type": "SURPRISE", "object": stranger})
        created = shop.create(pod("shop/e", {"app": "e"}))
        in_sync(store, shop)
        assert "shop/stranger" not in store.keys(PODS)
        assert reflectors[PODS].resource_version == created["metadata"]["resourceVersion"]
        assert dict(reflectors[PODS].restarts) == {"410": 0, "dropped": 0, "timeout": 0, "error": 0, "malformed": 0}
    assert "unknown type 'SURPRISE'" in caplog.text


def test_an_update_the_semantics_does_not_read_is_not_a_change(shop: FakeApiServer, api: Any) -> None:
    store, feed = ClusterStore(), Feed()
    with reflecting(api, store, on_change=feed) as reflectors:
        before = store.snapshot()
        mark = len(feed.changes)
        updated = pod("shop/a", {"app": "a"}, ip="10.0.0.1")
        updated["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
        version = shop.update(updated)["metadata"]["resourceVersion"]
        wait_until(lambda: reflectors[PODS].resource_version == version, what="the update")
        assert feed.changes[mark:] == []
        assert store.snapshot() is before


def test_a_reader_needs_only_list_and_watch_on_the_four_resources(shop: FakeApiServer, api: Any) -> None:
    with reflecting(api, ClusterStore()):
        watching(shop)
    used = {(r.path, r.verb) for r in shop.requests}
    paths = {"/api/v1/pods", "/api/v1/namespaces", "/api/v1/nodes",
             "/apis/networking.k8s.io/v1/networkpolicies"}  # fmt: skip
    assert used == {(p, v) for p in paths for v in ("list", "watch")}
