"""A reflector: keeps one resource of the :class:`~kubeapi.store.ClusterStore` equal to the
API server's, through list, watch, reconnect and relist.

The loop follows the API's list/watch contract:

1. **List** every object, paginated (``limit`` + ``continue``), replace the resource in the
   store with it (keys the list lacks are reported deleted) and remember the list's
   resourceVersion. The reflector is then :attr:`~Reflector.synced`.
2. **Watch** from that version with ``allowWatchBookmarks=true``, a server-side
   ``timeoutSeconds`` (jittered, so the reconnect loop is ours and watches of many agents do
   not end together) and a client read timeout: ``timeoutSeconds`` is enforced by the server,
   so only a read timeout notices a dead connection that sends nothing. Each ADDED/MODIFIED/
   DELETED event is projected into the store and advances the version; a BOOKMARK only
   advances the version, which keeps a reconnect on a quiet resource inside the server's
   history.
3. When the stream ends (the server's timeout), drops, or goes silent past the read timeout,
   **reconnect from the last version**: nothing is missed, because a watch "delivers every
   change after" its version.
4. **410 Gone** (an ERROR event with a ``Status`` of code 410 on an HTTP 200 stream, or an
   HTTP 410) means the version is older than the server's history: **relist** (step 1). The
   deletions that happened in the gap come out of the store's comparison of the fresh list
   with what it holds.
5. Other failures (HTTP errors, refused connections) back off exponentially, with jitter,
   and retry; an event type the API does not define is logged and skipped.

Restarts are counted by reason (:data:`RESTART_REASONS`) for the agent's
``policyctl_watch_restarts_total{resource,reason}``; :attr:`Reflector.last_event_at` (by the
injected clock) feeds liveness.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError

from policyctl.kubeapi.listwatch import RequestTimeout, WatchStream, list_all
from policyctl.kubeapi.projections import Projection, object_key, project
from policyctl.kubeapi.resources import Resource
from policyctl.kubeapi.store import Change, ChangeKind, ClusterStore
from policyctl.policy.diagnostics import Severity

log = logging.getLogger(__name__)

RESTART_REASONS = ("410", "dropped", "timeout", "error")
"""Why a watch was restarted: the version expired (relist), the connection broke, nothing
arrived within the read timeout, or a request failed otherwise."""

OnChange = Callable[[Resource, str, ChangeKind], None]
Clock = Callable[[], float]

_WATCH_EVENTS = frozenset({"ADDED", "MODIFIED", "DELETED"})


class _Gone(Exception):
    """The watch's version is older than the server's history."""


class _StreamError(Exception):
    """An ERROR event other than 410."""


class Reflector:
    """Lists and watches ``resource`` into ``store`` until :meth:`run`'s stop event is set.

    ``api`` is an ``ApiClient`` of the official client. ``read_timeout`` should be above the
    server's bookmark interval (about a minute) so a quiet but live stream is not taken for a
    dead one; ``watch_timeout`` is the range the server-side ``timeoutSeconds`` is drawn
    from; ``backoff`` the first and the largest pause between failing attempts.
    ``on_change(resource, key, kind)`` is called, from the reflector's thread, for every
    change to the store, synthesised deletions included.
    """

    def __init__(
        self,
        resource: Resource | str,
        *,
        api: Any,
        store: ClusterStore,
        read_timeout: float = 90.0,
        connect_timeout: float = 10.0,
        page_size: int = 500,
        watch_timeout: tuple[int, int] = (300, 600),
        backoff: tuple[float, float] = (0.2, 30.0),
        clock: Clock = time.monotonic,
        on_change: OnChange | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.resource = Resource(resource)
        self._api = api
        self._store = store
        self._timeouts: RequestTimeout = (connect_timeout, read_timeout)
        self._page_size = page_size
        self._watch_timeout = watch_timeout
        self._backoff = backoff
        self._clock = clock
        self._on_change = on_change
        self._rng = rng or random.Random()
        self._synced = threading.Event()
        self._version: str | None = None
        self._stream: WatchStream | None = None
        self._delivered = False
        self._lock = threading.Lock()
        self._restarts = dict.fromkeys(RESTART_REASONS, 0)
        self.lists = 0
        """Completed lists (the first one and every relist)."""
        self.last_event_at: float | None = None
        """Clock time of the last list or watch event (bookmarks included)."""

    @property
    def synced(self) -> bool:
        """The first list is in the store (stays true through later relists)."""
        return self._synced.is_set()

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    @property
    def resource_version(self) -> str | None:
        """The version the next watch starts from (None: the next step is a list)."""
        return self._version

    @property
    def restarts(self) -> Mapping[str, int]:
        with self._lock:
            return dict(self._restarts)

    def run(self, stop: threading.Event) -> None:
        """List and watch until ``stop`` is set; a read blocked on the stream is interrupted
        when it is."""
        waker = threading.Thread(target=self._interrupt_on, args=(stop,), daemon=True,
                                 name=f"reflector-{self.resource.value}-stop")  # fmt: skip
        waker.start()
        failures = 0
        while not stop.is_set():
            self._delivered = False
            try:
                if self._version is None:
                    self._relist()
                if self._watch(stop):
                    failures = 0
                continue
            except _Gone:
                reason = "410"
                self._version = None
            except ApiException as error:
                reason = "410" if error.status == 410 else "error"
                if error.status == 410:
                    self._version = None
                else:
                    log.warning("%s: API request failed: %s %s", self.resource.value, error.status,
                                error.reason)  # fmt: skip
            except ReadTimeoutError:
                reason = "timeout"
            except MaxRetryError as error:
                reason = "timeout" if isinstance(error.reason, ReadTimeoutError) else "error"
                log.warning("%s: cannot reach the API server: %s", self.resource.value, error.reason)
            except ProtocolError:
                reason = "dropped"
            except _StreamError as error:
                reason = "error"
                log.warning("%s: watch error: %s", self.resource.value, error)
            if stop.is_set():
                break
            if self._delivered:
                failures = 0
            failures += 1
            with self._lock:
                self._restarts[reason] += 1
            log.info("%s: restarting watch (%s, attempt %d)", self.resource.value, reason, failures)
            stop.wait(self._delay(reason, failures))

    def _delay(self, reason: str, failures: int) -> float:
        """No pause for the first reconnect after a drop, a timeout or a 410 (the stream was
        healthy until then); exponential backoff with jitter otherwise."""
        if failures == 1 and reason != "error":
            return 0.0
        first, largest = self._backoff
        return min(largest, first * 2 ** (failures - 1)) * self._rng.uniform(0.5, 1.0)

    def _interrupt_on(self, stop: threading.Event) -> None:
        stop.wait()
        stream = self._stream
        if stream is not None:
            stream.interrupt()

    def _relist(self) -> None:
        listing = list_all(self._api, self.resource, page_size=self._page_size,
                           request_timeout=self._timeouts)  # fmt: skip
        projections = []
        for raw in listing.items:
            projection = self._project(raw)
            if projection is not None:
                projections.append(projection)
        changes = self._store.replace(self.resource, projections)
        self._version = listing.resource_version
        self.lists += 1
        self.last_event_at = self._clock()
        self._synced.set()
        log.info("%s: listed %d objects at version %s in %d page(s), %d change(s)",
                 self.resource.value, len(projections), self._version, listing.pages, len(changes))  # fmt: skip
        for change in changes:
            self._notify(change)

    def _watch(self, stop: threading.Event) -> bool:
        """One watch stream, to its end; True when it ended cleanly. ``_delivered`` says
        whether it delivered any event (a stream that worked for a while resets the backoff)."""
        assert self._version is not None
        stream = WatchStream(self._api, self.resource, resource_version=self._version,
                             timeout_seconds=self._rng.randint(*self._watch_timeout),
                             request_timeout=self._timeouts)  # fmt: skip
        self._stream = stream
        self._delivered = False
        try:
            if stop.is_set():
                return False
            for event in stream:
                self._handle(event)
                self._delivered = True
                if stop.is_set():
                    return True
            return True
        finally:
            self._stream = None
            stream.close()

    def _handle(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        raw = event.get("object")
        raw = raw if isinstance(raw, Mapping) else {}
        if kind == "ERROR":
            if raw.get("code") == 410:
                raise _Gone(raw.get("message", ""))
            raise _StreamError(f"{raw.get('code')} {raw.get('reason')}: {raw.get('message')}")
        if kind not in _WATCH_EVENTS and kind != "BOOKMARK":
            log.warning("%s: skipping a watch event of unknown type %r", self.resource.value, kind)
            return
        change: Change | None = None
        if kind == "DELETED":
            change = self._store.remove(self.resource, object_key(self.resource, raw))
        elif kind != "BOOKMARK":
            projection = self._project(raw)
            if projection is None:
                change = self._store.remove(self.resource, object_key(self.resource, raw))
            else:
                change = self._store.upsert(self.resource, projection)
        version = (raw.get("metadata") or {}).get("resourceVersion")
        if version:
            self._version = str(version)
        self.last_event_at = self._clock()
        if change is not None:
            self._notify(change)

    def _project(self, raw: Mapping[str, Any]) -> Projection | None:
        projection, diagnostics = project(self.resource, raw)
        for diagnostic in diagnostics:
            if diagnostic.severity is Severity.ERROR:
                outcome = "read as failing closed" if projection is not None else "left out"
                log.warning("%s: %s: %s", self.resource.value, outcome, diagnostic)
            elif diagnostic.code == "fails-closed":
                log.warning("%s: %s", self.resource.value, diagnostic)
        return projection

    def _notify(self, change: Change) -> None:
        if self._on_change is not None:
            self._on_change(change.resource, change.key, change.kind)
