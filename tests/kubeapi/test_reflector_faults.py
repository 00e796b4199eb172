"""Reflectors survive whatever the API server (or a proxy in front of it) answers: each fault
below is injected into the fake API server while a reflector runs. In every case the
reflector keeps its thread, logs, backs off and retries, counts the restart by its reason,
leaves the store exactly as it was (never a partial or empty list in its place), reports
itself out of sync for as long as the fault lasts, and after the fault converges to the
server, changes made meanwhile included."""

from __future__ import annotations

import json
import logging
import math
import threading
from typing import Any

import pytest
from kubernetes import client

import policyctl.kubeapi.reflector as reflector_module
from policyctl.kubeapi.errors import MalformedResponse
from policyctl.kubeapi.listwatch import lines, watch_event
from policyctl.kubeapi.reflector import Reflector
from policyctl.kubeapi.resources import Resource
from policyctl.kubeapi.store import ClusterStore
from policyctl.policy.model import Direction
from tests.apiserver import FakeApiServer
from tests.apiserver.server import Fault
from tests.kubeapi.conftest import READ_TIMEOUT, reflecting, server_cluster, wait_until
from tests.kubeapi.objects import namespace, node, pod, policy

PODS = Resource.PODS
POLICIES = Resource.NETWORK_POLICIES
HTML = b"<html><head><title>502 Bad Gateway</title></head><body>upstream unavailable</body></html>"


def pod_list(items: object, *, version: object = "5") -> bytes:
    return json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": version},
                       "items": items}).encode()  # fmt: skip


@pytest.fixture
def shop(apiserver: FakeApiServer) -> FakeApiServer:
    apiserver.create(namespace("shop", team="shop"))
    apiserver.create(node("node-a", "192.168.0.10"))
    for i, name in enumerate(("a", "b", "c", "d")):
        apiserver.create(pod(f"shop/{name}", {"app": name}, ip=f"10.0.0.{i + 1}"))
    apiserver.create(policy("shop/web", {"podSelector": {"matchLabels": {"app": "a"}}}))
    return apiserver


def same(store: ClusterStore, server: FakeApiServer, *, policies: bool = True) -> bool:
    """The store's pods (and policies) equal the server's: the resources these tests reflect."""
    mine, theirs = store.snapshot(), server_cluster(server)
    return mine.pods == theirs.pods and (not policies or mine.policies == theirs.policies)


def watching(server: FakeApiServer, kind: str) -> None:
    wait_until(lambda: server.open_watches(kind) >= 1, what=f"an open {kind} watch")


def force_relist(server: FakeApiServer, kind: str) -> None:
    """Expire the watch so the next step is a list (which the fault then answers)."""
    server.compact()
    server.expire_watches(kind)


LIST_FAULTS = [
    pytest.param(Fault(verb="list", kind="Pod", body=HTML, content_type="text/html"), "malformed",
                 id="an-html-page-with-200"),
    pytest.param(Fault(verb="list", kind="Pod", truncate=120), "dropped", id="truncated-connection-cut"),
    pytest.param(Fault(verb="list", kind="Pod", truncate=120, honest_length=True), "malformed",
                 id="truncated-body-whole-length"),
    pytest.param(Fault(verb="list", kind="Pod", body=b"{}"), "malformed", id="an-empty-json-object"),
    pytest.param(Fault(verb="list", kind="Pod", body=b"null"), "malformed", id="json-null"),
    pytest.param(Fault(verb="list", kind="Pod", body=pod_list([], version="")), "malformed",
                 id="an-empty-list-without-version"),
    pytest.param(Fault(verb="list", kind="Pod", body=pod_list({"a": 1})), "malformed", id="items-not-an-array"),
    pytest.param(Fault(verb="list", kind="Pod", body=pod_list([{"metadata": []}])), "malformed",
                 id="an-item-without-metadata"),
    pytest.param(Fault(verb="list", kind="Pod", body=pod_list([{"metadata": {"name": 7}}])), "malformed",
                 id="an-item-named-by-a-number"),
    pytest.param(Fault(verb="list", kind="Pod", body=b"[" * 100_000), "malformed", id="nesting-too-deep"),
    pytest.param(Fault(verb="list", kind="Pod", body=b"\xff\xfe\x00garbage"), "malformed", id="not-utf8"),
    pytest.param(Fault(verb="list", kind="Pod", status=500), "error", id="http-500"),
    pytest.param(Fault(verb="list", kind="Pod", status=429), "error", id="http-429"),
    pytest.param(Fault(verb="list", kind="Pod", status=403), "error", id="http-403"),
    pytest.param(Fault(verb="list", kind="Pod", stall=math.inf), "timeout", id="a-silent-server"),
    pytest.param(Fault(verb="list", kind="Pod", trickle=0.05), "timeout", id="a-server-sending-a-byte-at-a-time"),
]


@pytest.mark.parametrize(("fault", "reason"), LIST_FAULTS)
def test_a_relist_the_server_answers_badly_keeps_the_last_good_state_and_recovers(
    shop: FakeApiServer, api: Any, fault: Fault, reason: str
) -> None:
    store = ClusterStore()
    with reflecting(api, store, (PODS, POLICIES)) as reflectors:
        reflector = reflectors[PODS]
        watching(shop, "Pod")
        before = store.snapshot()
        shop.add_fault(fault)
        shop.delete("Pod", "shop", "a")
        force_relist(shop, "Pod")
        wait_until(lambda: reflector.restarts[reason] >= 2, timeout=15, what=f"two {reason} restarts")
        assert store.snapshot() == before, "a failed list changed the store"
        assert not reflector.in_sync and reflector.stale_seconds() > 0
        assert reflector.last_error
        shop.create(pod("shop/e", {"app": "e"}, ip="10.0.0.9"))
        shop.clear_faults()
        wait_until(lambda: same(store, shop), timeout=15, what="store == server")
        assert reflector.in_sync and reflector.stale_seconds() == 0 and reflector.last_error is None
        assert reflectors[POLICIES].in_sync, "another resource's fault is not this one's"


WATCH_LINES = [
    pytest.param(HTML, id="an-html-line"),
    pytest.param(b"[1, 2]", id="a-json-array"),
    pytest.param(b'{"type": "ADDED"}', id="no-object"),
    pytest.param(b'{"type": "ADDED", "object": "shop/e"}', id="object-a-string"),
    pytest.param(b'{"type": 3, "object": {}}', id="type-a-number"),
    pytest.param(b'{"type": "MODIFIED", "object": {"metadata": []}}', id="metadata-a-list"),
    pytest.param(b'{"type": "DELETED", "object": {"metadata": {"namespace": "shop"}}}', id="no-name"),
    pytest.param(b'{"type": "ADDED", "object": {"metadata": {"name": "x", "resourceVersion": 9}}}',
                 id="version-a-number"),
    pytest.param(b'{"type": "BOOKMARK", "object": {"metadata": {}}}', id="bookmark-without-version"),
    pytest.param(b'{"type": "ADDED", "object": ' + b"[" * 50_000, id="nesting-too-deep"),
]


@pytest.mark.parametrize("line", WATCH_LINES)
def test_a_malformed_watch_event_is_followed_by_a_relist(shop: FakeApiServer, api: Any, line: bytes,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    store = ClusterStore()
    caplog.set_level(logging.WARNING, logger="policyctl.kubeapi.reflector")
    with reflecting(api, store, (PODS,)) as reflectors:
        reflector = reflectors[PODS]
        watching(shop, "Pod")
        shop.inject_raw("Pod", line)
        shop.create(pod("shop/e", {"app": "e"}, ip="10.0.0.9"))
        wait_until(lambda: reflector.restarts["malformed"] >= 1, what="a malformed restart")
        wait_until(lambda: reflector.lists == 2, what="a relist: what the stream meant is unknown")
        wait_until(lambda: same(store, shop, policies=False), what="store == server")
        assert reflector.in_sync
    assert "unreadable answer from the API server" in caplog.text


WATCH_FAULTS = [
    pytest.param(Fault(verb="watch", kind="Pod", status=500), "error", id="http-500"),
    pytest.param(Fault(verb="watch", kind="Pod", status=410), "410", id="http-410-every-time"),
    pytest.param(Fault(verb="watch", kind="Pod", stall=math.inf), "timeout", id="a-silent-server"),
]


@pytest.mark.parametrize(("fault", "reason"), WATCH_FAULTS)
def test_a_watch_the_server_never_answers_well_is_out_of_sync_until_it_does(
    shop: FakeApiServer, api: Any, fault: Fault, reason: str
) -> None:
    store = ClusterStore()
    with reflecting(api, store, (PODS,)) as reflectors:
        reflector = reflectors[PODS]
        watching(shop, "Pod")
        shop.add_fault(fault)
        shop.drop_watches("Pod")
        wait_until(lambda: reflector.restarts[reason] >= 2, timeout=15, what=f"two {reason} restarts")
        if reason != "410":
            wait_until(lambda: reflector.stale_seconds() > READ_TIMEOUT, what="out of sync for a read timeout")
            assert not reflector.in_sync and reflector.last_error
        shop.update(pod("shop/b", {"app": "b", "tier": "2"}, ip="10.0.0.2"))
        shop.clear_faults()
        wait_until(lambda: same(store, shop, policies=False), timeout=15, what="store == server")
        wait_until(lambda: reflector.in_sync, what="in sync again")


def test_a_watch_answered_with_a_proxy_page_every_time_still_follows_the_server_by_relisting(
    shop: FakeApiServer, api: Any
) -> None:
    """Each unreadable stream is followed by a list, so changes still arrive, one backoff late."""
    store = ClusterStore()
    with reflecting(api, store, (PODS,)) as reflectors:
        reflector = reflectors[PODS]
        watching(shop, "Pod")
        shop.add_fault(Fault(verb="watch", kind="Pod", body=HTML, content_type="text/html"))
        shop.drop_watches("Pod")
        wait_until(lambda: reflector.restarts["malformed"] >= 2, what="two malformed restarts")
        shop.update(pod("shop/b", {"app": "b", "tier": "2"}, ip="10.0.0.2"))
        shop.delete("Pod", "shop", "c")
        wait_until(lambda: same(store, shop, policies=False), what="store == server through lists")
        assert reflector.lists >= 3


def test_a_reflector_that_never_lists_stays_unsynced_and_keeps_trying() -> None:
    """Every list is refused: never synced, out of sync since it started, the store left
    empty (not filled with anything), and the thread keeps trying until stopped."""
    store = ClusterStore()
    stop = threading.Event()
    with FakeApiServer() as refusing:
        refusing.add_fault(Fault(verb="list", status=503))
        configuration = client.Configuration()
        configuration.host = refusing.url
        local = client.ApiClient(configuration)
        reflector = Reflector(PODS, api=local, store=store, read_timeout=READ_TIMEOUT, backoff=(0.05, 0.1))
        thread = threading.Thread(target=reflector.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_until(lambda: reflector.restarts["error"] >= 3, what="three failed lists")
            assert not reflector.synced and not reflector.in_sync
            assert reflector.stale_seconds() > 0
            assert store.keys(PODS) == ()
            assert thread.is_alive()
        finally:
            stop.set()
            thread.join(5)
            local.close()
    assert not thread.is_alive()


def test_an_object_whose_projection_raises_is_read_as_refused(
    shop: FakeApiServer, api: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A parser bug on one object takes neither the thread nor the other objects down: the
    pod is left out and the policy fails closed (isolating the pods its readable podSelector
    selects, allowing nothing)."""
    real = reflector_module.project

    def fragile(resource: Resource, raw: Any) -> Any:
        if raw["metadata"]["name"] in ("b", "web"):
            raise AttributeError("'int' object has no attribute 'strip'")
        return real(resource, raw)

    monkeypatch.setattr(reflector_module, "project", fragile)
    store = ClusterStore()
    caplog.set_level(logging.ERROR, logger="policyctl.kubeapi.reflector")
    with reflecting(api, store, (PODS, POLICIES)) as reflectors:
        assert store.keys(PODS) == ("shop/a", "shop/c", "shop/d")
        (stand_in,) = store.snapshot().policies
        assert stand_in.ref.name == "web"
        assert stand_in.pod_selector.matches({"app": "a"}) and not stand_in.pod_selector.matches({"app": "b"})
        assert stand_in.policy_types == frozenset({Direction.INGRESS})
        assert not stand_in.ingress and not stand_in.egress
        shop.create(pod("shop/e", {"app": "e"}))
        wait_until(lambda: "shop/e" in store.keys(PODS), what="later events")
        assert all(r.in_sync for r in reflectors.values())
    assert "shop/b: reading it failed" in caplog.text


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        pytest.param([b'{"a": 1}\n{"b"', b': 2}\n'], [b'{"a": 1}', b'{"b": 2}'], id="split-across-chunks"),
        pytest.param([b"\n\n{}\n", b"  \n"], [b"{}"], id="blank-lines-skipped"),
    ],
)
def test_watch_lines_are_reassembled(chunks: list[bytes], expected: list[bytes]) -> None:
    class Response:
        def stream(self, amt: object, decode_content: bool) -> Any:
            return iter(chunks)

    assert list(lines(Response())) == expected


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        pytest.param([b"x" * 2048], "longer than 1024 bytes", id="a-line-without-end"),
        pytest.param([b'{"type": "ADDED", "obj'], "ended inside an event", id="cut-mid-event"),
    ],
)
def test_watch_lines_that_cannot_be_events_are_malformed(chunks: list[bytes], message: str) -> None:
    class Response:
        def stream(self, amt: object, decode_content: bool) -> Any:
            return iter(chunks)

    with pytest.raises(MalformedResponse, match=message):
        list(lines(Response(), limit=1024))


def test_a_watch_body_without_chunks_is_read_as_it_arrives(shop: FakeApiServer, api: Any) -> None:
    """A proxy that streams the watch without chunked encoding: each event is handled when it
    arrives, not when 64 KiB have."""
    store = ClusterStore()
    event = json.dumps({"type": "ADDED", "object": pod("shop/late", {"app": "late"}, ip="10.0.0.7")})
    with reflecting(api, store, (PODS,)) as reflectors:
        watching(shop, "Pod")
        padding = b" " * 20_000
        shop.add_fault(Fault(verb="watch", kind="Pod", body=(event + "\n").encode() + padding, trickle=0.0005))
        shop.drop_watches("Pod")
        wait_until(lambda: "shop/late" in store.keys(PODS), timeout=5, what="the event, long before the body ends")
        assert reflectors[PODS].restarts["malformed"] == 0


def test_an_event_of_an_unknown_type_is_passed_on_for_the_reflector_to_skip() -> None:
    assert watch_event(b'{"type": "SURPRISE", "object": {}}', PODS)["type"] == "SURPRISE"


def test_a_reconnect_that_is_never_answered_is_out_of_sync_after_one_read_timeout(
    shop: FakeApiServer, api: Any
) -> None:
    """The stream ends cleanly (the server's timeoutSeconds) and the server never answers the
    reconnect: out of sync as soon as the request has waited a read timeout, long before the
    client's own retries of the request (four read timeouts) give up."""
    store = ClusterStore()
    with reflecting(api, store, (PODS,), read_timeout=1.0, watch_timeout=(1, 1)) as reflectors:
        reflector = reflectors[PODS]
        watching(shop, "Pod")
        assert reflector.in_sync
        shop.add_fault(Fault(verb="watch", kind="Pod", stall=math.inf))
        wait_until(lambda: reflector.stale_seconds() > 1.0, what="out of sync")
        assert not reflector.in_sync
        assert reflector.restarts["timeout"] == 0, "the client had not given up yet"
        shop.clear_faults()
        wait_until(lambda: reflector.in_sync, timeout=15, what="in sync again")
