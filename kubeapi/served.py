"""Reflectors for custom resources, which exist only while the API server serves them.

ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy come from CRDs that a
cluster may not have, may install later, may remove, or may serve at another version after an
upgrade. A :class:`ServedReflector` asks discovery (:mod:`kubeapi.discovery`, shared through
one :class:`Discovery` cache by the three kinds) and:

* while its kind is **not served**, runs no list or watch: the kind holds no objects (a store
  that held some reports them deleted: removing a CRD deletes its objects), the reflector is
  synced and in sync (there is nothing to be out of date with), the absence is logged once at
  info, and discovery is asked again every ``max_age`` seconds, so a CRD installed later is
  picked up within that time;
* while it is **served**, runs an ordinary :class:`~kubeapi.reflector.Reflector` at the served
  version (``v1beta1`` before ``v1alpha2``), and asks discovery again every ``max_age``
  seconds and whenever that reflector is out of sync (a removed CRD makes its lists fail);
  when the version changes or the kind is no longer served, the reflector is stopped and the
  new state is read (a relist at the new version, or the deletions).

A discovery request that fails means what is served is unknown: the reflector keeps what it
has, is out of sync (not ready; ``policyctl_watch_stale_seconds`` grows) and retries with
backoff, as a failing list does. Before the first answer it is not synced, so the agent's first
sync waits for it: a ruleset compiled without knowing whether Admin-tier policies exist could
open what they deny.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from policyctl.kubeapi.discovery import Served, discover
from policyctl.kubeapi.listwatch import RequestTimeout
from policyctl.kubeapi.reflector import RESTART_REASONS, OnChange, Reflector
from policyctl.kubeapi.resources import CUSTOM_RESOURCES, RESOURCES, Resource
from policyctl.kubeapi.store import ClusterStore

log = logging.getLogger(__name__)

_POLL = 0.05
_FAILING_RECHECK = 2.0


class Discovery:
    """One discovery answer shared by the custom resources' reflectors, asked again when it
    is older than ``max_age`` seconds (or after :meth:`invalidate`)."""

    def __init__(self, api: Any, *, max_age: float = 30.0, request_timeout: RequestTimeout = (10.0, 60.0),
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._api = api
        self.max_age = max_age
        self._timeouts = request_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._answer: tuple[float, Served] | None = None
        self.requests = 0
        """Discoveries made (answered or failed)."""

    def served(self, *, fresh: bool = False) -> Served:
        """What the API server serves, at most ``max_age`` old (``fresh``: asked now).
        Raises what :func:`~kubeapi.discovery.discover` raises."""
        with self._lock:
            now = self._clock()
            if not fresh and self._answer is not None and now - self._answer[0] < self.max_age:
                return self._answer[1]
            self.requests += 1
            served = discover(self._api, CUSTOM_RESOURCES, request_timeout=self._timeouts)
            self._answer = (self._clock(), served)
            return served

    def invalidate(self) -> None:
        with self._lock:
            self._answer = None


class ServedReflector:
    """Keeps a custom ``resource`` of ``store`` equal to the API server's while the server
    serves it, and empty while it does not. ``options`` are the :class:`Reflector`'s."""

    def __init__(
        self,
        resource: Resource | str,
        *,
        api: Any,
        store: ClusterStore,
        discovery: Discovery,
        clock: Callable[[], float] = time.monotonic,
        on_change: OnChange | None = None,
        backoff: tuple[float, float] = (0.2, 30.0),
        rng: random.Random | None = None,
        **options: Any,
    ) -> None:
        self.resource = Resource(resource)
        if not RESOURCES[self.resource].custom:
            raise ValueError(f"{self.resource.value} is always served: use a Reflector")
        self._api = api
        self._store = store
        self._discovery = discovery
        self._clock = clock
        self._on_change = on_change
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._options = dict(options, backoff=backoff)
        self._lock = threading.Lock()
        self._inner: Reflector | None = None
        self._retired: dict[str, int] = dict.fromkeys(RESTART_REASONS, 0)
        self._retired_lists = 0
        self._synced = threading.Event()
        self._absent = False
        self._lost_at: float | None = clock()
        self._error: str | None = None
        self._reported: str | None = None
        self.served_version: str | None = None
        """The version the kind is read at; None while it is not served (or not yet known)."""

    # -- the reflector's interface ------------------------------------------------------------

    @property
    def served(self) -> bool:
        return self.served_version is not None

    @property
    def synced(self) -> bool:
        inner = self._inner
        if inner is not None and inner.synced:
            self._synced.set()
        return self._synced.is_set()

    def wait_synced(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.synced:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)
        return True

    @property
    def restarts(self) -> Mapping[str, int]:
        with self._lock:
            counts = dict(self._retired)
            inner = self._inner
        if inner is not None:
            for reason, count in inner.restarts.items():
                counts[reason] = counts.get(reason, 0) + count
        return counts

    @property
    def lists(self) -> int:
        """Completed reads: lists of the served kind, and discoveries that found it absent."""
        inner = self._inner
        return self._retired_lists + (inner.lists if inner is not None else 0)

    @property
    def in_sync(self) -> bool:
        inner = self._inner
        return inner.in_sync if inner is not None and self._lost_at is None else self._lost_at is None

    @property
    def last_error(self) -> str | None:
        inner = self._inner
        return self._error or (inner.last_error if inner is not None else None)

    @property
    def resource_version(self) -> str | None:
        inner = self._inner
        return inner.resource_version if inner is not None else None

    @property
    def last_event_at(self) -> float | None:
        inner = self._inner
        return inner.last_event_at if inner is not None else None

    def stale_seconds(self, now: float | None = None) -> float:
        inner = self._inner
        lost = self._lost_at
        if lost is None and inner is not None:
            return inner.stale_seconds(now)
        if lost is None:
            return 0.0
        return max(0.0, (self._clock() if now is None else now) - lost)

    def forget_version(self) -> None:
        """After this reflector's thread was restarted: ask discovery again and relist."""
        self._discovery.invalidate()
        inner = self._inner
        if inner is not None:
            inner.forget_version()

    # -- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Follow discovery until ``stop`` is set: read the kind while it is served."""
        failures = 0
        fresh = False
        while not stop.is_set():
            try:
                version = self._discovery.served(fresh=fresh).version(self.resource)
            except Exception as error:
                failures += 1
                self._failed(error, failures)
                fresh = True
                stop.wait(min(self._backoff[1], self._backoff[0] * 2 ** (failures - 1)) * self._rng.uniform(0.5, 1.0))
                continue
            failures = 0
            fresh = False
            self._error = None
            if version is None:
                self._not_served()
                stop.wait(self._discovery.max_age)
                continue
            self._serve(version, stop)

    def _failed(self, error: Exception, failures: int) -> None:
        with self._lock:
            self._retired["error"] += 1
        if self._lost_at is None:
            self._lost_at = self._clock()
        self._error = f"discovery failed: {error}"
        log.warning("%s: API discovery failed (attempt %d): %s", self.resource.value, failures, error,
                    extra={"fields": {"resource": self.resource.value, "error": str(error)}})  # fmt: skip

    def _not_served(self) -> None:
        self.served_version = None
        changes = self._store.replace(self.resource, ())
        if self._reported != "":
            log.info("%s: not served by the API server (no CRD): nothing to read; discovery is asked again every "
                     "%gs", self.resource.value, self._discovery.max_age,
                     extra={"fields": {"resource": self.resource.value, "served": False}})  # fmt: skip
            self._reported = ""
        with self._lock:
            self._retired_lists += 1
        self._lost_at = None
        self._synced.set()
        for change in changes:
            if self._on_change is not None:
                self._on_change(change.resource, change.key, change.kind)

    def _serve(self, version: str, stop: threading.Event) -> None:
        """Run a reflector at ``version`` until ``stop``, or until discovery says otherwise."""
        if self._reported != version:
            fields = {"resource": self.resource.value, "served": True, "version": version}
            log.info("%s: served at %s", self.resource.value, RESOURCES[self.resource].api_version_at(version),
                     extra={"fields": fields})  # fmt: skip
            self._reported = version
        self.served_version = version
        inner = Reflector(self.resource, api=self._api, store=self._store, clock=self._clock, on_change=self._on_change,
                          rng=self._rng, served_version=version, **self._options)  # fmt: skip
        inner_stop = threading.Event()
        thread = threading.Thread(target=inner.run, args=(inner_stop,), daemon=True,
                                  name=f"reflector-{self.resource.value}-{version}")  # fmt: skip
        self._inner = inner
        self._lost_at = None
        thread.start()
        try:
            self._follow(version, inner, stop)
        finally:
            inner_stop.set()
            thread.join()
            with self._lock:
                for reason, count in inner.restarts.items():
                    self._retired[reason] = self._retired.get(reason, 0) + count
                self._retired_lists += inner.lists
                if inner.synced:
                    self._synced.set()
                self._inner = None
            if not inner.in_sync and self._lost_at is None:
                self._lost_at = self._clock() - inner.stale_seconds()

    def _follow(self, version: str, inner: Reflector, stop: threading.Event) -> None:
        """Wait for ``stop`` or a change of what is served. Discovery is asked every
        ``max_age`` seconds, and afresh every few seconds while the reflector is failing."""
        checked = self._clock()
        while not stop.wait(_POLL):
            failing = inner.last_error is not None and not inner.in_sync
            interval = min(self._discovery.max_age, _FAILING_RECHECK) if failing else self._discovery.max_age
            if self._clock() - checked < interval:
                continue
            checked = self._clock()
            try:
                now_served = self._discovery.served(fresh=failing).version(self.resource)
            except Exception as error:
                log.info("%s: API discovery failed; reading on at %s: %s", self.resource.value, version, error,
                         extra={"fields": {"resource": self.resource.value}})  # fmt: skip
                continue
            if now_served != version:
                return


AnyReflector = Reflector | ServedReflector


def reflector_for(resource: Resource, *, discovery: Discovery, **options: Any) -> AnyReflector:
    """A :class:`ServedReflector` for a custom resource, a :class:`Reflector` otherwise."""
    if RESOURCES[resource].custom:
        return ServedReflector(resource, discovery=discovery, **options)
    return Reflector(resource, **options)
