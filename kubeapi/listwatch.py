"""One paginated LIST and one WATCH stream of a resource, through the official client.

Both read the raw JSON the API server sends (``_preload_content=False``) instead of the
client's generated models: policyctl keeps only slim projections (:mod:`kubeapi.projections`),
so building a model per object per event is wasted work. The watch is read line by line
(``kubernetes.watch.watch.iter_resp_lines``) rather than through ``Watch.stream``, whose
behaviour does not fit a reflector: it silently retries once on 410, it tracks the version
only for deserialised events, and in 37.x its ``deserialize=False`` path breaks on ERROR
events. Reconnecting, relisting and 410 handling are the reflector's (:mod:`kubeapi.reflector`).

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
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from policyctl.kubeapi.resources import RESOURCES, Resource, list_function

RequestTimeout = tuple[float, float]
"""(connect, read) seconds, as the client's ``_request_timeout``."""

_MAX_LIST_RESTARTS = 3


@dataclass(frozen=True, slots=True)
class Listing:
    """Every object of one consistent list, with ``apiVersion``/``kind`` filled in (list items
    omit them), and the list's resourceVersion to watch from. ``pages`` counts the requests."""

    items: tuple[Mapping[str, Any], ...]
    resource_version: str
    pages: int


def list_all(
    api: Any,
    resource: Resource,
    *,
    namespace: str | None = None,
    page_size: int = 500,
    request_timeout: RequestTimeout = (10.0, 60.0),
) -> Listing:
    """List every object of ``resource`` (in ``namespace`` when given), ``page_size`` at a
    time. Raises the client's ``ApiException`` on an HTTP error other than an expired continue
    token, which restarts the list (at most a few times)."""
    function = list_function(api, resource, namespace=namespace)
    info = RESOURCES[resource]
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
                body = json.loads(response.data)
                pages += 1
                meta = body.get("metadata") or {}
                if not version:
                    version = str(meta.get("resourceVersion") or "")
                for item in body.get("items") or []:
                    items.append({**item, "apiVersion": info.api_version, "kind": info.kind})
                token = meta.get("continue") or None
                if not token:
                    return Listing(tuple(items), version, pages)
        except ApiException as error:
            if error.status != 410 or token is None or restarts == _MAX_LIST_RESTARTS:
                raise
            restarts += 1


class WatchStream:
    """One open watch stream from a resourceVersion, with bookmarks. Iterating yields the
    events as decoded JSON (``{"type": ..., "object": ...}``), skipping lines that are not JSON
    objects, until the server ends the stream; a broken or silent connection raises the
    ``urllib3`` error (``ProtocolError``, ``ReadTimeoutError``). :meth:`interrupt` may be
    called from another thread to end a blocked read at once."""

    def __init__(
        self,
        api: Any,
        resource: Resource,
        *,
        resource_version: str,
        timeout_seconds: int,
        request_timeout: RequestTimeout,
    ) -> None:
        function = list_function(api, resource)
        self._response = function(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            _request_timeout=request_timeout,
        )

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        for line in iter_resp_lines(self._response):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                yield event

    def interrupt(self) -> None:
        """Shut the socket down so a read blocked in another thread returns."""
        connection = getattr(self._response, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._response.close()
        self._response.release_conn()
