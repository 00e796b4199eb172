"""One paginated LIST and one WATCH stream of a resource, through the official client.

Both read the raw JSON the API server sends (``_preload_content=False``) instead of the
client's generated models: policyctl keeps only slim projections (:mod:`kubeapi.projections`),
so building a model per object per event is wasted work. The watch is read line by line
rather than through ``Watch.stream``, whose behaviour does not fit a reflector: it silently
retries once on 410, it tracks the version only for deserialised events, and in 37.x its
``deserialize=False`` path breaks on ERROR events. Reconnecting, relisting and 410 handling
are the reflector's (:mod:`kubeapi.reflector`).

The API rules implemented here:

* "limit is a maximum number of responses to return for a list call. If more items exist,
  the server will set the continue field"; "if limit is specified and the continue field is
  empty, clients may assume that no more results are available". The pages of one list are
  a consistent snapshot at the first page's resourceVersion.
* A continue token that "is no longer valid ... the server will respond with a 410
  ResourceExpired error": the list is restarted without it (a consistent list is needed to
  find the objects deleted while the reader was away).
* A watch from a resourceVersion "delivers every change after it"; an ERROR event carries a
  ``Status`` (code 410 when the version is older than the server's history).

Nothing is taken on trust, because a proxy in front of the API server, a truncated body or a
server bug can answer anything with a 200: a list page must be a JSON object with a
``metadata.resourceVersion`` and an ``items`` array of objects that each have a
``metadata.name``; a watch line must be a JSON object with a ``type`` and an ``object``, and
the objects of ADDED, MODIFIED and DELETED events need a ``metadata.name``. Anything else
raises :class:`~kubeapi.errors.MalformedResponse` naming the resource and what was wrong,
before any of it is used: a list is returned whole or not at all, so a caller never replaces
its cache with part of a list (or with the empty list a proxy's error page would parse to).

A read timeout bounds each wait for bytes, never a whole response: a server that sends one
byte a second keeps it open forever. A :class:`Watchdog` bounds the whole body of a list
page and the whole life of a watch stream: past the deadline it shuts the socket down and the
read ends with :class:`~kubeapi.errors.DeadlineExceeded`. The wait for the response headers
stays bounded by the read timeout alone.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from policyctl.kubeapi.errors import DeadlineExceeded, MalformedResponse
from policyctl.kubeapi.resources import RESOURCES, Resource, list_function

RequestTimeout = tuple[float, float]
"""(connect, read) seconds, as the client's ``_request_timeout``."""

_MAX_LIST_RESTARTS = 3

MAX_EVENT_BYTES = 16 * 1024 * 1024
"""The longest watch line read: the API server stores objects of at most about 1.5 MiB, so a
longer line is not an event, and reading on would only grow memory."""

_EXCERPT = 60
_SEGMENT = 64 * 1024
_OBJECT_EVENTS = frozenset({"ADDED", "MODIFIED", "DELETED"})


@dataclass(frozen=True, slots=True)
class Listing:
    """Every object of one consistent list, with ``apiVersion``/``kind`` filled in (list items
    omit them), and the list's resourceVersion to watch from. ``pages`` counts the requests."""

    items: tuple[Mapping[str, Any], ...]
    resource_version: str
    pages: int


def shut(response: Any) -> None:
    """Shut the socket of ``response`` down so a read blocked on it in another thread returns
    (nothing happens once the response was released)."""
    connection = getattr(response, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Guarded:
    __slots__ = ("response", "deadline", "fired")

    def __init__(self, response: Any, deadline: float) -> None:
        self.response = response
        self.deadline = deadline
        self.fired = False


class Watchdog:
    """Cuts off responses that are not read whole by their deadline, from a thread of its own
    (:meth:`run`). Reads happen inside :meth:`guard`; a guarded read that was cut off ends
    with :class:`DeadlineExceeded` whatever error the cut made the client raise."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, tick: float = 0.25) -> None:
        self._clock = clock
        self._tick = tick
        self._lock = threading.Lock()
        self._guarded: dict[int, _Guarded] = {}
        self._tokens = itertools.count()

    @contextmanager
    def guard(self, response: Any, seconds: float) -> Iterator[None]:
        """Read ``response`` inside the block; it is cut off ``seconds`` from now."""
        token = next(self._tokens)
        entry = _Guarded(response, self._clock() + seconds)
        with self._lock:
            self._guarded[token] = entry
        try:
            yield
        except Exception as error:
            if entry.fired:
                raise DeadlineExceeded(f"the response was not read whole within {seconds:g}s") from error
            raise
        finally:
            with self._lock:
                self._guarded.pop(token, None)
        if entry.fired:
            raise DeadlineExceeded(f"the response was not read whole within {seconds:g}s")

    def run(self, stop: threading.Event, done: threading.Event | None = None) -> None:
        """Cut off guarded responses past their deadline, until ``done`` is set or ``stop``
        is; on ``stop`` every guarded response is cut at once, so a blocked read returns."""
        while not stop.wait(self._tick):
            if done is not None and done.is_set():
                return
            now = self._clock()
            with self._lock:
                expired = [e for e in self._guarded.values() if not e.fired and e.deadline <= now]
                for entry in expired:
                    entry.fired = True
            for entry in expired:
                shut(entry.response)
        with self._lock:
            pending = list(self._guarded.values())
        for entry in pending:
            shut(entry.response)


@contextmanager
def _unguarded(response: Any, seconds: float) -> Iterator[None]:
    yield


def _excerpt(data: bytes) -> str:
    text = data[:_EXCERPT].decode("utf-8", errors="replace")
    more = "..." if len(data) > _EXCERPT else ""
    return json.dumps(text + more, ensure_ascii=True)


def _decode(data: bytes, what: str) -> Any:
    """``data`` as JSON, or :class:`MalformedResponse` saying what it was instead."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:
        raise MalformedResponse(f"{what} is not JSON ({len(data)} bytes: {_excerpt(data)}): {error}") from None


def _named(obj: object, what: str) -> Mapping[str, Any]:
    """``obj`` when it is an API object with a name (the one thing a cache is keyed by)."""
    if not isinstance(obj, dict):
        raise MalformedResponse(f"{what} is not an object (got {type(obj).__name__})")
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise MalformedResponse(f"{what} has no metadata.name")
    for field in ("namespace", "resourceVersion", "uid"):
        if meta.get(field) is not None and not isinstance(meta[field], str):
            raise MalformedResponse(f"{what}: metadata.{field} is not a string")
    return obj


def _page(body: object, resource: Resource, page: int) -> tuple[list[Mapping[str, Any]], str, str | None]:
    """(items, resourceVersion, continue token) of one list page, checked."""
    what = f"{resource.value} list page {page}"
    if not isinstance(body, dict):
        raise MalformedResponse(f"{what} is not a JSON object (got {type(body).__name__})")
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        raise MalformedResponse(f"{what} has no metadata")
    version = meta.get("resourceVersion")
    if not isinstance(version, str) or not version:
        raise MalformedResponse(f"{what} has no metadata.resourceVersion")
    token = meta.get("continue")
    if token is not None and not isinstance(token, str):
        raise MalformedResponse(f"{what}: metadata.continue is not a string")
    items = body.get("items")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise MalformedResponse(f"{what}: items is not an array")
    checked = [_named(item, f"{what}: item {index}") for index, item in enumerate(items)]
    return checked, version, token or None


def _body(response: Any, guard: Callable[[Any, float], Any], seconds: float) -> bytes:
    """The whole body of ``response``; the connection is closed rather than reused when it
    could not be read whole."""
    try:
        with guard(response, seconds):
            data = response.data
    except BaseException:
        response.close()
        raise
    finally:
        response.release_conn()
    return bytes(data or b"")


def list_all(
    api: Any,
    resource: Resource,
    *,
    namespace: str | None = None,
    page_size: int = 500,
    request_timeout: RequestTimeout = (10.0, 60.0),
    watchdog: Watchdog | None = None,
    page_deadline: float | None = None,
    served_version: str | None = None,
) -> Listing:
    """List every object of ``resource`` (in ``namespace`` when given), ``page_size`` at a
    time. Raises the client's ``ApiException`` on an HTTP error other than an expired continue
    token, which restarts the list (at most a few times), and :class:`MalformedResponse` on
    a page that cannot be read. With a ``watchdog``, each page's body must be read within
    ``page_deadline`` seconds (default: the read timeout). A custom resource is listed at
    ``served_version`` (its version as discovered; default: the most preferred one)."""
    function = list_function(api, resource, namespace=namespace, version=served_version)
    info = RESOURCES[resource]
    served_as = info.api_version_at(served_version)
    guard = watchdog.guard if watchdog is not None else _unguarded
    seconds = page_deadline if page_deadline is not None else request_timeout[1]
    restarts = 0
    while True:
        items: list[Mapping[str, Any]] = []
        token: str | None = None
        version = ""
        pages = 0
        try:
            while True:
                kwargs: dict[str, Any] = {"limit": page_size}
                if token:
                    kwargs["_continue"] = token
                response = function(_preload_content=False, _request_timeout=request_timeout, **kwargs)
                pages += 1
                data = _body(response, guard, seconds)
                found, page_version, token = _page(_decode(data, f"{resource.value} list page {pages}"),
                                                   resource, pages)  # fmt: skip
                version = version or page_version
                items.extend({**item, "apiVersion": served_as, "kind": info.kind} for item in found)
                if not token:
                    return Listing(tuple(items), version, pages)
        except ApiException as error:
            if error.status != 410 or token is None or restarts == _MAX_LIST_RESTARTS:
                raise
            restarts += 1


def watch_event(line: bytes, resource: Resource) -> Mapping[str, Any]:
    """One watch line, checked: a JSON object with a string ``type`` and an object ``object``;
    the objects of ADDED, MODIFIED and DELETED events named, a BOOKMARK's versioned. An event
    of another type is returned as it is (the reflector skips it)."""
    what = f"{resource.value} watch event"
    event = _decode(line, what)
    if not isinstance(event, dict):
        raise MalformedResponse(f"{what} is not a JSON object (got {type(event).__name__})")
    kind, obj = event.get("type"), event.get("object")
    if not isinstance(kind, str) or not isinstance(obj, dict):
        raise MalformedResponse(f"{what} has no type or no object: {_excerpt(line)}")
    if kind in _OBJECT_EVENTS:
        _named(obj, f"{what} {kind}")
    elif kind == "BOOKMARK":
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("resourceVersion"), str):
            raise MalformedResponse(f"{what} BOOKMARK has no metadata.resourceVersion")
    return event


def _segments(response: Any) -> Iterator[bytes]:
    """The body as it arrives, at most 64 KiB at a time: a chunked body chunk by chunk (a
    chunk that claims to be huge is read in pieces), any other body as each read returns
    (``read1``: a short event is not held back until 64 KiB have arrived)."""
    if getattr(response, "chunked", True) or not hasattr(response, "read1"):
        yield from response.stream(amt=_SEGMENT, decode_content=False)
        return
    while data := response.read1(_SEGMENT, decode_content=False):
        yield data


def lines(response: Any, *, limit: int = MAX_EVENT_BYTES) -> Iterator[bytes]:
    """The non-empty lines of a streamed body as they arrive. A line longer than ``limit``,
    or a stream that ends in the middle of a line, is a :class:`MalformedResponse`."""
    buffer = bytearray()
    for segment in _segments(response):
        buffer.extend(segment if isinstance(segment, bytes) else str(segment).encode())
        start = 0
        while (end := buffer.find(b"\n", start)) != -1:
            line = bytes(buffer[start:end])
            start = end + 1
            if line.strip():
                yield line
        del buffer[:start]
        if len(buffer) > limit:
            raise MalformedResponse(f"a watch line longer than {limit} bytes")
    if buffer.strip():
        raise MalformedResponse(
            f"the watch stream ended inside an event ({len(buffer)} bytes: {_excerpt(bytes(buffer))})")


class WatchStream:
    """One open watch stream from a resourceVersion, with bookmarks. Iterating yields the
    events as checked JSON (:func:`watch_event`) until the server ends the stream; a broken or
    silent connection raises the ``urllib3`` error (``ProtocolError``, ``ReadTimeoutError``),
    a line that is not an event :class:`MalformedResponse`, and a stream still open
    ``lifetime`` seconds after it started (with a ``watchdog``) :class:`DeadlineExceeded`.
    :meth:`interrupt` may be called from another thread to end a blocked read at once."""

    def __init__(
        self,
        api: Any,
        resource: Resource,
        *,
        resource_version: str,
        timeout_seconds: int,
        request_timeout: RequestTimeout,
        watchdog: Watchdog | None = None,
        lifetime: float | None = None,
        served_version: str | None = None,
    ) -> None:
        function = list_function(api, resource, version=served_version)
        self._resource = resource
        self._guard = watchdog.guard if watchdog is not None else _unguarded
        self._lifetime = lifetime if lifetime is not None else timeout_seconds + request_timeout[1]
        self._response = function(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            _request_timeout=request_timeout,
        )

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        with self._guard(self._response, self._lifetime):
            for line in lines(self._response):
                yield watch_event(line, self._resource)

    def interrupt(self) -> None:
        """Shut the socket down so a read blocked in another thread returns."""
        shut(self._response)

    def close(self) -> None:
        self._response.close()
        self._response.release_conn()
