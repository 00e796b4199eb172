"""A reflector: keeps one resource of the :class:`~kubeapi.store.ClusterStore` equal to the
API server's, through list, watch, reconnect and relist, whatever the server answers.

The loop follows the API's list/watch contract:

1. **List** every object, paginated (``limit`` + ``continue``), replace the resource in the
   store with it (keys the list lacks are reported deleted) and remember the list's
   resourceVersion. The reflector is then :attr:`~Reflector.synced`. A list that fails or
   cannot be read (:mod:`kubeapi.listwatch` checks every page) changes nothing in the store:
   it keeps the last good state of the resource, never a partial or empty stand-in.
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
5. An answer that cannot be read (a body that is not JSON, a truncated list, an event
   without an object: ``malformed``) may have hidden a change, so it is followed by a
   **relist**, as is any error nobody foresaw. HTTP errors, refused connections and
   malformed answers back off exponentially, with jitter (``backoff``: the first and the
   largest pause), and retry; an event type the API does not define is logged and skipped.
   Nothing a server sends ends the loop: only ``stop`` does.

A response is bounded in time as well as in silence (:class:`~kubeapi.listwatch.Watchdog`):
each list page must be read within ``list_deadline`` seconds, each watch stream ends by
``timeoutSeconds`` plus the read timeout.

**In sync.** A reflector is in sync from a completed list until an attempt fails; after a
failure, it is in sync again at the next completed list or at the first event (a bookmark
will do) of a watch from its version. A watch that is merely accepted does not count: a server
that accepts every request and then sends nothing, or breaks each stream, must not look
healthy between attempts. :meth:`Reflector.stale_seconds` is how long the reflector has been
out of sync (for a silent connection, since the last byte it received), which the agent turns
into readiness and ``policyctl_watch_stale_seconds``. A stream that ends cleanly (the
server's ``timeoutSeconds``) is no failure: the reconnect from the same version follows at
once. Restarts are counted by reason
(:data:`RESTART_REASONS`) for ``policyctl_watch_restarts_total{resource,reason}``.

The reflector is generic over resources: everything resource-specific lives in
:mod:`kubeapi.resources` (where to list), :mod:`kubeapi.projections` (what is kept) and
:mod:`kubeapi.unreadable` (what stands in for an object whose projection raised).
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

from policyctl.kubeapi.errors import DeadlineExceeded, MalformedResponse
from policyctl.kubeapi.listwatch import RequestTimeout, Watchdog, WatchStream, list_all
from policyctl.kubeapi.projections import Projection, object_key, project
from policyctl.kubeapi.resources import Resource
from policyctl.kubeapi.store import Change, ChangeKind, ClusterStore
from policyctl.kubeapi.unreadable import unreadable
from policyctl.policy.diagnostics import Severity

log = logging.getLogger(__name__)

RESTART_REASONS = ("410", "dropped", "timeout", "error", "malformed")
"""Why a watch was restarted: the version expired (relist), the connection broke, nothing
arrived within the read timeout (or a response outlived its deadline), a request failed
otherwise, or the answer could not be read (relist)."""

OnChange = Callable[[Resource, str, ChangeKind], None]
Clock = Callable[[], float]

_WATCH_EVENTS = frozenset({"ADDED", "MODIFIED", "DELETED"})
_BACKED_OFF = frozenset({"error", "malformed"})


class _Gone(Exception):
    """The watch's version is older than the server's history."""


class _StreamError(Exception):
    """An ERROR event other than 410."""


class _Failure:
    """How one failed attempt is handled: its reason, whether the next step is a list, and
    the moment the cache was last known to be in sync."""

    __slots__ = ("reason", "relist", "lost_at")

    def __init__(self, reason: str, *, relist: bool, lost_at: float) -> None:
        self.reason = reason
        self.relist = relist
        self.lost_at = lost_at


class Reflector:
    """Lists and watches ``resource`` into ``store`` until :meth:`run`'s stop event is set.

    ``api`` is an ``ApiClient`` of the official client. ``read_timeout`` should be above the
    server's bookmark interval (about a minute) so a quiet but live stream is not taken for a
    dead one; ``watch_timeout`` is the range the server-side ``timeoutSeconds`` is drawn
    from; ``backoff`` the first and the largest pause between failing attempts;
    ``list_deadline`` the most a list page may take to arrive whole (default: the read
    timeout). ``on_change(resource, key, kind)`` is called, from the reflector's thread, for
    every change to the store, synthesised deletions included. ``served_version`` is the
    version a custom resource is read at, as discovered (:mod:`kubeapi.discovery`).
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
        list_deadline: float | None = None,
        clock: Clock = time.monotonic,
        on_change: OnChange | None = None,
        rng: random.Random | None = None,
        served_version: str | None = None,
    ) -> None:
        self.resource = Resource(resource)
        self.served_version = served_version
        """The version a custom resource is read at (None: its most preferred one)."""
        self._api = api
        self._store = store
        self._timeouts: RequestTimeout = (connect_timeout, read_timeout)
        self._page_size = page_size
        self._watch_timeout = watch_timeout
        self._backoff = backoff
        self._list_deadline = list_deadline if list_deadline is not None else read_timeout
        self._clock = clock
        self._on_change = on_change
        self._rng = rng or random.Random()
        self._watchdog = Watchdog(clock=time.monotonic)
        self._synced = threading.Event()
        self._version: str | None = None
        self._delivered = False
        self._lock = threading.Lock()
        self._restarts = dict.fromkeys(RESTART_REASONS, 0)
        self._lost_at: float | None = clock()
        self._last_heard: float | None = None
        self._asked_at: float | None = None
        self.lists = 0
        """Completed lists (the first one and every relist)."""
        self.last_event_at: float | None = None
        """Clock time of the last list or watch event (bookmarks included)."""
        self.last_error: str | None = None
        """What ended the last failed attempt, until the reflector is in sync again."""

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

    @property
    def in_sync(self) -> bool:
        """The store holds the resource as listed, a watch from there is accepted, and no
        request has gone unanswered for longer than the read timeout."""
        return self.stale_seconds() == 0.0

    def stale_seconds(self, now: float | None = None) -> float:
        """0 while in sync; else how long since the cache was last known to be in sync
        (since construction before the first list). A request still unanswered after the read
        timeout counts as out of sync from the last byte heard before it, without waiting
        for the client to give up: its own retries of a read timeout (urllib3 tries a request
        four times) would otherwise hide a silent server for several read timeouts."""
        now = self._clock() if now is None else now
        lost = self._lost_at
        if lost is None:
            asked = self._asked_at
            if asked is None or now - asked <= self._timeouts[1]:
                return 0.0
            lost = self._last_heard if self._last_heard is not None else asked
        return max(0.0, now - lost)

    def forget_version(self) -> None:
        """Make the next step a list (after this reflector's thread was restarted)."""
        self._version = None

    def run(self, stop: threading.Event) -> None:
        """List and watch until ``stop`` is set; a read blocked on a response is cut off
        when it is. Only ``stop`` (or an exception that is not an ``Exception``) ends it."""
        done = threading.Event()
        watchdog = threading.Thread(target=self._watchdog.run, args=(stop, done), daemon=True,
                                    name=f"reflector-{self.resource.value}-watchdog")  # fmt: skip
        watchdog.start()
        try:
            self._loop(stop)
        finally:
            done.set()

    def _loop(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            self._delivered = False
            try:
                if self._version is None:
                    self._relist()
                if self._watch(stop):
                    failures = 0
                continue
            except Exception as error:
                if stop.is_set():
                    break
                failure = self._classify(error)
            if failure.relist:
                self._version = None
            self._lose(failure.lost_at)
            if self._delivered:
                failures = 0
            failures += 1
            with self._lock:
                self._restarts[failure.reason] += 1
            log.info("%s: restarting watch (%s, attempt %d)", self.resource.value, failure.reason, failures,
                     extra={"fields": {"resource": self.resource.value, "reason": failure.reason,
                                       "attempt": failures, "relist": failure.relist}})  # fmt: skip
            stop.wait(self._delay(failure.reason, failures))

    def _classify(self, error: Exception) -> _Failure:
        """The reason, whether to relist, and when the cache was last known good; logs what
        an operator needs to know."""
        now = self._clock()
        name = self.resource.value
        fields: dict[str, Any] = {"resource": name, "error": str(error)}
        if isinstance(error, _Gone) or (isinstance(error, ApiException) and error.status == 410):
            self.last_error = "the watch version expired (410)"
            return _Failure("410", relist=True, lost_at=now)
        if isinstance(error, ApiException):
            self.last_error = f"API request failed: {error.status} {error.reason}"
            log.warning("%s: API request failed: %s %s", name, error.status, error.reason, extra={"fields": fields})
            return _Failure("error", relist=False, lost_at=now)
        if isinstance(error, MalformedResponse):
            self.last_error = f"unreadable answer: {error}"
            log.warning("%s: unreadable answer from the API server; relisting: %s", name, error,
                        extra={"fields": fields})  # fmt: skip
            return _Failure("malformed", relist=True, lost_at=now)
        silent = isinstance(error, (ReadTimeoutError, DeadlineExceeded)) or (
            isinstance(error, MaxRetryError) and isinstance(error.reason, ReadTimeoutError))
        if silent:
            self.last_error = f"no answer in time: {error}"
            log.info("%s: no answer in time: %s", name, error, extra={"fields": fields})
            return _Failure("timeout", relist=False, lost_at=self._last_heard if self._last_heard is not None else now)
        if isinstance(error, MaxRetryError):
            self.last_error = f"cannot reach the API server: {error.reason}"
            log.warning("%s: cannot reach the API server: %s", name, error.reason, extra={"fields": fields})
            return _Failure("error", relist=False, lost_at=now)
        if isinstance(error, ProtocolError):
            self.last_error = f"connection dropped: {error}"
            return _Failure("dropped", relist=False, lost_at=now)
        if isinstance(error, _StreamError):
            self.last_error = f"watch error: {error}"
            log.warning("%s: watch error: %s", name, error, extra={"fields": fields})
            return _Failure("error", relist=False, lost_at=now)
        self.last_error = f"{type(error).__name__}: {error}"
        log.error("%s: unexpected failure; relisting: %s: %s", name, type(error).__name__, error,
                  exc_info=error, extra={"fields": fields})  # fmt: skip
        return _Failure("error", relist=True, lost_at=now)

    def _lose(self, at: float) -> None:
        if self._lost_at is None:
            self._lost_at = at

    def _found(self) -> None:
        self._lost_at = None
        self.last_error = None

    def _delay(self, reason: str, failures: int) -> float:
        """No pause for the first reconnect after a drop, a timeout or a 410 (the stream was
        healthy until then); exponential backoff with jitter otherwise."""
        if failures == 1 and reason not in _BACKED_OFF:
            return 0.0
        first, largest = self._backoff
        return min(largest, first * 2 ** (failures - 1)) * self._rng.uniform(0.5, 1.0)

    def _relist(self) -> None:
        self._asked_at = self._clock()
        try:
            listing = list_all(self._api, self.resource, page_size=self._page_size, request_timeout=self._timeouts,
                               watchdog=self._watchdog, page_deadline=self._list_deadline,
                               served_version=self.served_version)  # fmt: skip
        finally:
            self._asked_at = None
        projections = []
        for raw in listing.items:
            projection = self._project(raw)
            if projection is not None:
                projections.append(projection)
        changes = self._store.replace(self.resource, projections)
        self._version = listing.resource_version
        self.lists += 1
        self.last_event_at = self._last_heard = self._clock()
        self._found()
        self._synced.set()
        log.info("%s: listed %d objects at version %s in %d page(s), %d change(s)",
                 self.resource.value, len(projections), self._version, listing.pages, len(changes),
                 extra={"fields": {"resource": self.resource.value, "objects": len(projections),
                                   "resource_version": self._version, "changes": len(changes)}})  # fmt: skip
        for change in changes:
            self._notify(change)

    def _watch(self, stop: threading.Event) -> bool:
        """One watch stream, to its end; True when it ended cleanly. ``_delivered`` says
        whether it delivered any event (a stream that worked for a while resets the backoff)."""
        assert self._version is not None
        self._asked_at = self._clock()
        try:
            stream = WatchStream(self._api, self.resource, resource_version=self._version,
                                 timeout_seconds=self._rng.randint(*self._watch_timeout),
                                 request_timeout=self._timeouts, watchdog=self._watchdog,
                                 served_version=self.served_version)  # fmt: skip
        finally:
            self._asked_at = None
        self._last_heard = self._clock()
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
            stream.close()

    def _handle(self, event: Mapping[str, Any]) -> None:
        kind = event["type"]
        raw = event["object"]
        self._last_heard = self._clock()
        if kind == "ERROR":
            if raw.get("code") == 410:
                raise _Gone(str(raw.get("message", "")))
            raise _StreamError(f"{raw.get('code')} {raw.get('reason')}: {raw.get('message')}")
        if self._lost_at is not None:
            self._found()
        if kind not in _WATCH_EVENTS and kind != "BOOKMARK":
            log.warning("%s: skipping a watch event of unknown type %r", self.resource.value, kind,
                        extra={"fields": {"resource": self.resource.value}})  # fmt: skip
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
        version = raw["metadata"].get("resourceVersion")
        if version:
            self._version = version
        self.last_event_at = self._last_heard
        if change is not None:
            self._notify(change)

    def _project(self, raw: Mapping[str, Any]) -> Projection | None:
        try:
            projection, diagnostics = project(self.resource, raw)
        except Exception as error:
            key = object_key(self.resource, raw)
            stand_in = unreadable(self.resource, raw)
            outcome = "left out" if stand_in is None else "read as failing closed"
            log.error("%s: %s: reading it failed (%s: %s); %s", self.resource.value, key, type(error).__name__,
                      error, outcome, exc_info=error, extra={"fields": {"resource": self.resource.value}})  # fmt: skip
            return stand_in
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
