"""Publishing and reading the agent's ``core/v1`` Events, with the RBAC the agent has.

The agent may ``create`` and ``patch`` Events and nothing else on them, so an Event is created
once per name and patched afterwards (the API answers a second create with 409 Conflict); it
is never read back. ``policyctl status`` lists them with the reader's own credentials.

Requests go through the official client's ``ApiClient`` (its configuration, authentication and
TLS) as raw JSON: the generated models are not needed for three fixed shapes.

The agent must never wait on the API server in its sync loop, so :class:`EventPublisher` takes
Events through a bounded queue, drained by its own thread; when the queue is full an Event is
dropped and counted (``dropped``), never blocking a sync.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

from policyctl.policy.diagnostics import PolicyctlError

EventBody = Mapping[str, Any]


class EventError(PolicyctlError):
    """The API server refused an Event request, or could not be reached."""


def _request(api: Any, method: str, path: str, *, body: Any = None, content_type: str = "application/json",
             query: Mapping[str, str] | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    try:
        serialized = api.param_serialize(method=method, resource_path=path, query_params=list((query or {}).items()),
                                         header_params=headers, body=body, auth_settings=["BearerToken"])
        response = api.call_api(*serialized, _request_timeout=timeout)
        response.read()
    except Exception as error:
        status = getattr(error, "status", None)
        if isinstance(status, int):
            return status, None
        raise EventError(f"{method} {path}: {error}") from None
    data = response.data
    return response.status, json.loads(data) if data else None


def create_or_patch(api: Any, event: EventBody, *, count: int = 1) -> None:
    """Create ``event``; if one of that name exists, patch its message, annotations, count and
    last timestamp (a merge patch: what is not named stays)."""
    meta = event["metadata"]
    base = f"/api/v1/namespaces/{meta['namespace']}/events"
    status, _ = _request(api, "POST", base, body=dict(event))
    if status == 409:
        patch = {"metadata": {"annotations": meta.get("annotations", {})}, "message": event.get("message"),
                 "lastTimestamp": event.get("lastTimestamp"), "count": count}
        status, _ = _request(api, "PATCH", f"{base}/{meta['name']}", body=patch,
                             content_type="application/merge-patch+json")
    if status >= 300:
        raise EventError(f"publishing Event {meta['namespace']}/{meta['name']}: HTTP {status}")


def list_items(api: Any, path: str, *, missing_ok: bool = False) -> list[dict[str, Any]]:
    """The items of the list at ``path`` (with ``missing_ok``, none when the server does not
    serve it: a CRD that is not installed)."""
    status, body = _request(api, "GET", path)
    if status == 404 and missing_ok:
        return []
    if status >= 300 or not isinstance(body, dict):
        raise EventError(f"listing {path}: HTTP {status}")
    return [i for i in body.get("items") or [] if isinstance(i, dict)]


def list_events(api: Any, *, namespace: str | None = None) -> list[dict[str, Any]]:
    """Every Event (of one namespace, or of all)."""
    return list_items(api, f"/api/v1/namespaces/{namespace}/events" if namespace else "/api/v1/events")


class EventPublisher:
    """Sends Events from one thread, in order, through a queue of ``capacity``."""

    def __init__(self, send: Callable[[EventBody, int], None], *, capacity: int = 1000,
                 logger: logging.Logger | None = None, on_sent: Callable[[], None] | None = None) -> None:
        self._send = send
        self._queue: queue.Queue[EventBody] = queue.Queue(maxsize=capacity)
        self._counts: dict[tuple[str, str], int] = {}
        self._log = logger or logging.getLogger("policyctl.kubeapi.events")
        self._on_sent = on_sent
        self.dropped = 0
        """Events not published because the queue was full."""
        self.failed = 0
        """Events the API server refused or that could not be sent."""
        self.sent = 0

    def publish(self, event: EventBody) -> bool:
        """Queue ``event``; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def drain(self, timeout: float) -> int:
        """Send what is queued, waiting up to ``timeout`` for the first Event; returns how many
        were sent."""
        sent = 0
        wait: float | None = timeout
        while True:
            try:
                event = self._queue.get(timeout=wait) if wait else self._queue.get_nowait()
            except queue.Empty:
                return sent
            wait = None
            meta = event["metadata"]
            key = (meta["namespace"], meta["name"])
            count = self._counts.get(key, 0) + 1
            try:
                self._send(event, count)
            except EventError as error:
                self.failed += 1
                self._log.warning(
                    "event not published", extra={"fields": {"event": "/".join(key), "error": str(error)}}
                )
                continue
            self._counts[key] = count
            self.sent += 1
            sent += 1
            if self._on_sent is not None:
                self._on_sent()

    def run(self, stop: threading.Event, *, tick: float = 1.0) -> None:
        while not stop.is_set():
            self.drain(tick)
