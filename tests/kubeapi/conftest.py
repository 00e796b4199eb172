"""The fake API server, a client configured for it, and reflectors run in threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config

from policyctl.kubeapi.projections import project
from policyctl.kubeapi.reflector import Reflector
from policyctl.kubeapi.resources import RESOURCES, Resource
from policyctl.kubeapi.store import ClusterStore
from policyctl.policy.cluster import Cluster
from tests.apiserver import FakeApiServer

#: Short enough to keep the suite fast, long enough for a loaded CI machine.
READ_TIMEOUT = 0.6
BOOKMARK_INTERVAL = 0.15


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer(bookmark_interval=BOOKMARK_INTERVAL) as server:
        yield server


@pytest.fixture
def kubeconfig(apiserver: FakeApiServer, tmp_path: Path) -> str:
    return apiserver.write_kubeconfig(tmp_path / "kubeconfig", context="fake")


@pytest.fixture
def api(kubeconfig: str) -> Iterator[Any]:
    client = config.new_client_from_config(config_file=kubeconfig)
    yield client
    client.close()


def wait_until(predicate: Callable[[], bool], *, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.01)


#: The resources every API server serves (the custom ones have tests of their own).
CORE_RESOURCES = tuple(r for r in Resource if not RESOURCES[r].custom)


@contextmanager
def reflecting(
    api: Any, store: ClusterStore, resources: tuple[Resource, ...] = CORE_RESOURCES, **options: Any
) -> Iterator[dict[Resource, Reflector]]:
    """Reflectors for ``resources`` running in threads until the block ends; synced on entry."""
    options.setdefault("read_timeout", READ_TIMEOUT)
    options.setdefault("connect_timeout", 2.0)
    options.setdefault("backoff", (0.05, 0.2))
    reflectors = {r: Reflector(r, api=api, store=store, **options) for r in resources}
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


def server_cluster(server: FakeApiServer) -> Cluster:
    """What the server holds, projected object by object (no watch, no store)."""
    store = ClusterStore()
    for resource in Resource:
        found = []
        for raw in server.objects(RESOURCES[resource].kind):
            projection, _ = project(resource, raw)
            assert projection is not None
            found.append(projection)
        store.replace(resource, found)
    return store.snapshot()
