"""A fake Kubernetes API server that speaks the real list/watch wire protocol, for tests.

No API server can run where the tests run, so the reflectors and the live-cluster CLI are
driven through the official ``kubernetes`` client against this server: real HTTP/1.1 on
127.0.0.1 with an ephemeral port, JSON bodies as the API server writes them. Only what
policyctl reads is served, for Pods, Namespaces, Nodes and NetworkPolicies:

* ``GET /api/v1/pods``, ``/api/v1/namespaces/{ns}/pods``, ``/api/v1/namespaces``,
  ``/api/v1/nodes``, ``/apis/networking.k8s.io/v1/networkpolicies`` and
  ``/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies``, plus ``.../{name}`` for one
  object.
* The cluster-scoped ``policy.networking.k8s.io`` kinds as their CRDs serve them:
  ``/apis/policy.networking.k8s.io/{v1alpha2,v1beta1}/clusternetworkpolicies`` and
  ``/apis/policy.networking.k8s.io/v1alpha1/{adminnetworkpolicies,baselineadminnetworkpolicies}``,
  each object answered at the version asked (the schemas are the same, as the API server
  converts between served versions). Which kinds and versions are served is set with
  ``crds=`` (default: all) and changed with :meth:`install_crd` and :meth:`remove_crd` (which
  deletes the kind's objects, as the API server does). Discovery answers for what is served:
  ``GET /apis`` (``APIGroupList``), ``/apis/{group}`` and ``/apis/{group}/{version}``
  (``APIResourceList``); a group or version not served is a 404. :meth:`fail_discovery` answers
  discovery with an HTTP error.
* Lists carry ``metadata.resourceVersion``; with ``limit`` they are cut into pages linked by a
  ``continue`` token, and every page is read from the state at the first page's version (the
  API's "consistent snapshot"). A token older than the compacted history is answered with
  HTTP 410 ``Expired``, as the API server does.
* Events (``core/v1``), the one kind written through HTTP, as the agent publishes them:
  ``POST /api/v1/namespaces/{ns}/events`` (409 when the name exists) and ``PATCH`` of one
  Event with a merge patch; listed and watched like the other kinds.
* ``?watch=1&resourceVersion=N`` streams, chunked, one JSON event per line: every change after
  ``N`` (``ADDED``/``MODIFIED``/``DELETED``), ``BOOKMARK`` events when asked for with
  ``allowWatchBookmarks=true``, and a clean end after ``timeoutSeconds``. Without a version
  (or ``0``) the stream starts with an ``ADDED`` event for every current object. A version
  older than the compacted history gets, on an HTTP 200 stream, an ``ERROR`` event whose
  object is a ``Status`` with code 410 (or, with ``gone_as_http_status=True``, an HTTP 410).

Objects change only through the Python API: :meth:`FakeApiServer.create`, ``update`` and
``delete`` give each change the next resource version, like etcd's revision (one counter for
all kinds; a ``DELETED`` event carries the object at the deletion's version). A Namespace gets
the ``kubernetes.io/metadata.name`` label as the API server sets it.

Scriptable faults, acting on the watch streams open at the time of the call:

* :meth:`drop_watches` closes each connection mid-stream (no terminating chunk);
* :meth:`go_silent` makes each stream send nothing more while staying open (a dead peer: only
  a client read timeout notices);
* :meth:`expire_watches` sends ``ERROR`` 410 on each stream and ends it;
* :meth:`compact` forgets the history up to now, so later watches from older versions are
  told 410;
* :meth:`bookmark` sends a ``BOOKMARK`` at the current version (and with ``bookmark_interval``
  every stream that asked for bookmarks gets one after that many quiet seconds, as the API
  server sends one about every minute); :meth:`inject` sends any event (e.g. of a type the
  API does not have);
* :meth:`refuse_watches` answers new watch requests with an HTTP error until called with None;
  :meth:`forbid` answers every request for a resource with 403, as RBAC would.
* :meth:`inject_raw` sends any bytes as one line of each open stream (a line that is not JSON,
  an event without an object).
* :meth:`add_fault` answers the requests a :class:`Fault` matches (by verb and kind) as a
  broken server or proxy would, until :meth:`clear_faults` (or for its first ``times``
  requests): an HTTP error, any body with a 200 (an HTML page, JSON that is not a list), a
  body cut short (``truncate``, with or without the whole ``Content-Length``), no answer at
  all (``stall``), or the real answer one byte at a time (``trickle``).

Every request is recorded (:attr:`requests`: method, path, query) so a test can compare the
calls made against RBAC rules (only ``list`` and ``watch`` verbs, which resources).

Usage::

    with FakeApiServer() as server:
        server.create({"kind": "Namespace", "metadata": {"name": "shop"}})
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
"""

from __future__ import annotations

import base64
import copy
import json
import math
import select
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Obj = dict[str, Any]

_TICK = 0.02


@dataclass(frozen=True, slots=True)
class Kind:
    """A served resource: its kind, collection name, API prefix and scope."""

    kind: str
    plural: str
    prefix: str
    api_version: str
    namespaced: bool


KINDS: Mapping[str, Kind] = {
    k.kind: k
    for k in (
        Kind("Pod", "pods", "/api/v1", "v1", True),
        Kind("Namespace", "namespaces", "/api/v1", "v1", False),
        Kind("Node", "nodes", "/api/v1", "v1", False),
        Kind("Event", "events", "/api/v1", "v1", True),
        Kind("NetworkPolicy", "networkpolicies", "/apis/networking.k8s.io/v1",
             "networking.k8s.io/v1", True),
        Kind("ClusterNetworkPolicy", "clusternetworkpolicies", "/apis/policy.networking.k8s.io/v1beta1",
             "policy.networking.k8s.io/v1beta1", False),
        Kind("AdminNetworkPolicy", "adminnetworkpolicies", "/apis/policy.networking.k8s.io/v1alpha1",
             "policy.networking.k8s.io/v1alpha1", False),
        Kind("BaselineAdminNetworkPolicy", "baselineadminnetworkpolicies",
             "/apis/policy.networking.k8s.io/v1alpha1", "policy.networking.k8s.io/v1alpha1", False),
    )
}  # fmt: skip
_BY_PREFIX_PLURAL = {(k.prefix, k.plural): k for k in KINDS.values()}

CRD_GROUP = "policy.networking.k8s.io"
#: The custom kinds and every version their CRDs can serve.
CRD_VERSIONS: Mapping[str, tuple[str, ...]] = {
    "ClusterNetworkPolicy": ("v1alpha2", "v1beta1"),
    "AdminNetworkPolicy": ("v1alpha1",),
    "BaselineAdminNetworkPolicy": ("v1alpha1",),
}


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as received: ``query`` holds the decoded parameters."""

    method: str
    path: str
    query: Mapping[str, str]

    @property
    def discovery(self) -> bool:
        """A discovery request (``/api``, ``/apis``, ``/apis/{group}[/{version}]``): a
        non-resource URL every authenticated user may read, outside resource RBAC."""
        parts = self.path.strip("/").split("/")
        return (parts[0] == "api" and len(parts) <= 2) or (parts[0] == "apis" and len(parts) <= 3)

    @property
    def verb(self) -> str:
        """The RBAC verb this request needs: ``watch``, ``list`` or ``get`` (``create`` and
        ``patch`` for the Events the agent publishes)."""
        if self.method in ("POST", "PATCH"):
            return "create" if self.method == "POST" else "patch"
        if self.query.get("watch") in ("1", "true", "True"):
            return "watch"
        parts = self.path.strip("/").split("/")
        named = (len(parts) in (4, 6) and parts[0] == "api") or (
            len(parts) in (5, 7) and parts[0] == "apis"
        )
        return "get" if named and not self.path.endswith("/namespaces") else "list"


@dataclass(frozen=True, slots=True)
class _Event:
    revision: int
    kind: str
    type: str
    object: Obj


@dataclass(frozen=True, slots=True)
class Fault:
    """How to answer the requests this matches (``verb``: ``list``, ``watch`` or ``get``;
    ``kind``: ``Pod``, ...; None matches any) instead of answering them well.

    ``status`` other than 200 answers with that HTTP status and a ``Status`` body. With 200,
    ``body`` (when given) replaces the real answer, sent with ``content_type``; ``truncate``
    sends only the first that many bytes of the body and closes the connection, announcing
    the whole length (``honest_length=False``, a dropped connection) or the cut one (a proxy
    that cut the body: it arrives whole but is not JSON); ``stall`` holds the request that
    many seconds (``math.inf``: until the fault is cleared) and then closes it unanswered, a
    silent server; ``trickle`` sends the body one byte every that many seconds, a slow one.
    A watch answered with a ``body`` gets it as the whole stream."""

    verb: str | None = None
    kind: str | None = None
    status: int = 200
    body: bytes | None = None
    content_type: str = "application/json"
    truncate: int | None = None
    honest_length: bool = False
    stall: float = 0.0
    trickle: float | None = None
    times: int | None = None

    def matches(self, verb: str, kind: str) -> bool:
        return self.verb in (None, verb) and self.kind in (None, kind)


@dataclass(eq=False)
class _Stream:
    """An open watch stream and the faults asked of it."""

    kind: str
    namespace: str | None
    position: int
    bookmarks: bool
    drop: bool = False
    silent: bool = False
    expire: bool = False
    pending: list[Obj | bytes] = field(default_factory=list)
    cursor: int = 0
    api_version: str = ""


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge key by key, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge(merged.get(key), value)
    return merged


def _status(code: int, reason: str, message: str) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


class FakeApiServer:
    """The server and its objects. Start with ``with FakeApiServer() as server`` (or
    :meth:`start`/:meth:`stop`); :attr:`url` is ``http://127.0.0.1:<port>``."""

    def __init__(
        self,
        *,
        gone_as_http_status: bool = False,
        bookmark_interval: float | None = None,
        first_revision: int = 1000,
        crds: Mapping[str, tuple[str, ...]] = CRD_VERSIONS,
    ) -> None:
        self.gone_as_http_status = gone_as_http_status
        self._crds: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in crds.items() if v}
        self._discovery_status: int | None = None
        self.bookmark_interval = bookmark_interval
        self._cond = threading.Condition()
        self._revision = first_revision
        self._floor = 0
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._log: list[_Event] = []
        self._streams: set[_Stream] = set()
        self._refuse: int | None = None
        self._forbidden: set[str] = set()
        self._faults: list[list[Any]] = []
        self._stopped = False
        self._uids = 0
        self.requests: list[RequestRecord] = []
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeApiServer:
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-apiserver", daemon=True)  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(
        self, path: Path | str, *, context: str = "fake", namespace: str | None = None
    ) -> str:
        """A kubeconfig whose current context points at this server; returns its path."""
        ctx: Obj = {"cluster": "fake", "user": "tester"}
        if namespace:
            ctx["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "test-token"}}],
            "contexts": [{"name": context, "context": ctx}],
            "current-context": context,
        }
        Path(path).write_text(json.dumps(config), encoding="utf-8")
        return str(path)

    # -- objects ---------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self._cond:
            return self._revision

    def objects(self, kind: str) -> list[Obj]:
        """Current objects of ``kind``, sorted by namespace and name (copies)."""
        with self._cond:
            found = [copy.deepcopy(o) for (k, _, _), o in self._objects.items() if k == kind]
        return sorted(found, key=_key)

    def create(self, obj: Mapping[str, Any]) -> Obj:
        """Store a new object (``kind`` and ``metadata.name`` required; a namespaced kind
        without namespace goes to ``default``); returns it with uid and resourceVersion."""
        value = self._normalise(obj)
        with self._cond:
            key = self._object_key(value)
            if key in self._objects:
                raise KeyError(f"{key} already exists")
            self._uids += 1
            value["metadata"].setdefault("uid", f"uid-{self._uids:06d}")
            return self._record(key, "ADDED", value)

    def update(self, obj: Mapping[str, Any]) -> Obj:
        """Replace an existing object (uid kept)."""
        value = self._normalise(obj)
        with self._cond:
            key = self._object_key(value)
            if key not in self._objects:
                raise KeyError(f"{key} does not exist")
            value["metadata"]["uid"] = self._objects[key]["metadata"]["uid"]
            return self._record(key, "MODIFIED", value)

    def delete(self, kind: str, namespace: str | None, name: str) -> Obj:
        with self._cond:
            key = (kind, namespace or "", name)
            value = self._objects[key]
            return self._record(key, "DELETED", copy.deepcopy(value))

    def _normalise(self, obj: Mapping[str, Any]) -> Obj:
        value = copy.deepcopy(dict(obj))
        kind = KINDS[value["kind"]]
        value["apiVersion"] = kind.api_version
        meta = value.setdefault("metadata", {})
        if kind.namespaced:
            meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
        if kind.kind == "Namespace":
            meta["labels"] = {**(meta.get("labels") or {}), "kubernetes.io/metadata.name": meta["name"]}
        return value

    @staticmethod
    def _object_key(value: Obj) -> tuple[str, str, str]:
        namespace, name = _key(value)
        return value["kind"], namespace, name

    def _record(self, key: tuple[str, str, str], event_type: str, value: Obj) -> Obj:
        self._revision += 1
        value["metadata"]["resourceVersion"] = str(self._revision)
        if event_type == "DELETED":
            del self._objects[key]
        else:
            self._objects[key] = value
        self._log.append(_Event(self._revision, key[0], event_type, copy.deepcopy(value)))
        self._cond.notify_all()
        return copy.deepcopy(value)

    # -- faults ----------------------------------------------------------------------------

    def _open_streams(self, kind: str | None) -> list[_Stream]:
        return [s for s in self._streams if kind is None or s.kind == kind]

    def open_watches(self, kind: str | None = None) -> int:
        with self._cond:
            return len(self._open_streams(kind))

    def drop_watches(self, kind: str | None = None) -> None:
        with self._cond:
            for stream in self._open_streams(kind):
                stream.drop = True
            self._cond.notify_all()

    def go_silent(self, kind: str | None = None) -> None:
        with self._cond:
            for stream in self._open_streams(kind):
                stream.silent = True
            self._cond.notify_all()

    def expire_watches(self, kind: str | None = None) -> None:
        with self._cond:
            for stream in self._open_streams(kind):
                stream.expire = True
            self._cond.notify_all()

    def compact(self) -> None:
        with self._cond:
            self._floor = self._revision

    def bookmark(self, kind: str | None = None) -> int:
        """A BOOKMARK at the current version on every open, bookmark-asking stream."""
        with self._cond:
            for stream in self._open_streams(kind):
                if stream.bookmarks:
                    stream.pending.append(self._bookmark_event(stream.kind))
            self._cond.notify_all()
            return self._revision

    def inject(self, kind: str, event: Mapping[str, Any]) -> None:
        with self._cond:
            for stream in self._open_streams(kind):
                stream.pending.append(copy.deepcopy(dict(event)))
            self._cond.notify_all()

    def inject_raw(self, kind: str, data: bytes) -> None:
        """Send ``data`` (a newline is added) as one line of every open stream of ``kind``."""
        with self._cond:
            for stream in self._open_streams(kind):
                stream.pending.append(data.rstrip(b"\n") + b"\n")
            self._cond.notify_all()

    def add_fault(self, fault: Fault) -> None:
        """Answer the requests ``fault`` matches its way (the newest fault first)."""
        with self._cond:
            self._faults.insert(0, [fault, fault.times])
            self._cond.notify_all()

    def clear_faults(self) -> None:
        """Answer every request well again; requests held by a ``stall`` are closed."""
        with self._cond:
            self._faults.clear()
            self._cond.notify_all()

    def _fault_for(self, verb: str, kind: str) -> Fault | None:
        with self._cond:
            for entry in self._faults:
                fault, remaining = entry
                if fault.matches(verb, kind):
                    if remaining is not None:
                        entry[1] = remaining - 1
                        if entry[1] <= 0:
                            self._faults.remove(entry)
                    return fault  # type: ignore[no-any-return]
        return None

    def _active(self, fault: Fault) -> bool:
        return not self._stopped and any(entry[0] is fault for entry in self._faults)

    def refuse_watches(self, status: int | None) -> None:
        with self._cond:
            self._refuse = status

    def forbid(self, plural: str) -> None:
        """Answer every request for this resource (``nodes``, ...) with 403 Forbidden, as for
        a user without RBAC on it."""
        with self._cond:
            self._forbidden.add(plural)

    def _bookmark_event(self, kind: str) -> Obj:
        return {"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": KINDS[kind].api_version,
                "metadata": {"resourceVersion": str(self._revision)}}}  # fmt: skip

    # -- reading ---------------------------------------------------------------------------

    def _state_at(self, revision: int, kind: str) -> dict[tuple[str, str], Obj]:
        state: dict[tuple[str, str], Obj] = {}
        for event in self._log:
            if event.revision > revision:
                break
            if event.kind != kind:
                continue
            if event.type == "DELETED":
                state.pop(_key(event.object), None)
            else:
                state[_key(event.object)] = event.object
        return state

    def _list(self, kind: Kind, namespace: str | None, query: Mapping[str, str]) -> tuple[int, Obj]:
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        with self._cond:
            if token:
                decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
                revision, after = int(decoded["rv"]), tuple(decoded["after"])
                if revision < self._floor:
                    return 410, _status(410, "Expired",
                                        "The provided continue parameter is too old to display a "
                                        "consistent list result. You can start a new list without "
                                        "the continue parameter.")  # fmt: skip
            else:
                revision, after = self._revision, None
            state = self._state_at(revision, kind.kind)
        keys = sorted(k for k in state if namespace is None or k[0] == namespace)
        if after is not None:
            keys = [k for k in keys if k > after]
        page = keys[:limit] if limit else keys
        meta: Obj = {"resourceVersion": str(revision)}
        if limit and len(keys) > limit:
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps({"rv": revision, "after": list(page[-1])}).encode()
            ).decode()
            meta["remainingItemCount"] = len(keys) - limit
        items = []
        for k in page:
            item = copy.deepcopy(state[k])
            item.pop("apiVersion", None)
            item.pop("kind", None)
            items.append(item)
        return 200, {"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "metadata": meta,
                     "items": items}  # fmt: skip

    def _get(self, kind: Kind, namespace: str | None, name: str) -> tuple[int, Obj]:
        with self._cond:
            found = self._objects.get((kind.kind, namespace or "", name))
            if found is None:
                return 404, _status(404, "NotFound", f'{kind.plural} "{name}" not found')
            return 200, copy.deepcopy(found)

    # -- HTTP ------------------------------------------------------------------------------

    def _route(self, path: str) -> tuple[Kind, str | None, str | None] | None:
        """(kind, namespace, name) of a path, or None when it is not served."""
        if path.startswith(f"/apis/{CRD_GROUP}/"):
            return self._custom_route(path)
        for prefix in ("/api/v1", "/apis/networking.k8s.io/v1"):
            if not path.startswith(prefix + "/"):
                continue
            parts = path[len(prefix) + 1 :].strip("/").split("/")
            if len(parts) in (3, 4) and parts[0] == "namespaces":
                kind = _BY_PREFIX_PLURAL.get((prefix, parts[2]))
                if kind is not None and kind.namespaced:
                    return kind, parts[1], parts[3] if len(parts) == 4 else None
            if len(parts) in (1, 2):
                kind = _BY_PREFIX_PLURAL.get((prefix, parts[0]))
                if kind is not None:
                    return kind, None, parts[1] if len(parts) == 2 and not kind.namespaced else None
        return None

    # -- custom resources and discovery -----------------------------------------------------

    def install_crd(self, kind: str, versions: tuple[str, ...] | None = None) -> None:
        """Serve ``kind`` (at ``versions``, default every version its CRD has) from now on."""
        with self._cond:
            self._crds[kind] = tuple(versions or CRD_VERSIONS[kind])

    def remove_crd(self, kind: str) -> None:
        """Stop serving ``kind``: its objects are deleted (DELETED events), its open watches
        end, and its paths and discovery entries are 404 from now on."""
        with self._cond:
            for key in [k for k in self._objects if k[0] == kind]:
                self._record(key, "DELETED", copy.deepcopy(self._objects[key]))
            self._crds.pop(kind, None)
            for stream in self._open_streams(kind):
                stream.expire = True
            self._cond.notify_all()

    def fail_discovery(self, status: int | None) -> None:
        """Answer discovery requests with this HTTP status (None: answer them well again)."""
        with self._cond:
            self._discovery_status = status

    def served_versions(self) -> dict[str, tuple[str, ...]]:
        with self._cond:
            return dict(self._crds)

    def _custom_route(self, path: str) -> tuple[Kind, str | None, str | None] | None:
        """A served custom kind at the requested version (``apiVersion`` as asked)."""
        parts = path.strip("/").split("/")
        if len(parts) not in (4, 5):
            return None
        version, plural = parts[2], parts[3]
        with self._cond:
            for name, versions in self._crds.items():
                kind = KINDS[name]
                if kind.plural == plural and version in versions:
                    served = Kind(kind.kind, kind.plural, f"/apis/{CRD_GROUP}/{version}",
                                  f"{CRD_GROUP}/{version}", False)  # fmt: skip
                    return served, None, parts[4] if len(parts) == 5 else None
        return None

    def _discovery(self, path: str) -> tuple[int, Obj] | None:
        """The answer to a discovery request, or None when ``path`` is not one."""
        parts = path.strip("/").split("/")
        with self._cond:
            failing = self._discovery_status
            served = {v for versions in self._crds.values() for v in versions}
            resources = {v: sorted(KINDS[k].plural for k, vs in self._crds.items() if v in vs) for v in served}
        ordered = [v for v in ("v1beta1", "v1alpha2", "v1alpha1") if v in served]

        def group(name: str, versions: list[str]) -> Obj:
            listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
            return {"name": name, "versions": listed, "preferredVersion": listed[0]}

        discovery = parts in (["api"], ["apis"]) or (parts[0] == "apis" and len(parts) <= 3 and parts[1] == CRD_GROUP)
        if failing is not None and discovery:
            return failing, _status(failing, "ServiceUnavailable", "discovery failed")
        if parts == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"]}
        if parts == ["apis"]:
            groups = [group("networking.k8s.io", ["v1"])] + ([group(CRD_GROUP, ordered)] if ordered else [])
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if len(parts) == 2 and parts[0] == "apis" and parts[1] == CRD_GROUP:
            if not ordered:
                return 404, _status(404, "NotFound", "the server could not find the requested resource")
            return 200, {"kind": "APIGroup", "apiVersion": "v1", **group(CRD_GROUP, ordered)}
        if len(parts) == 3 and parts[0] == "apis" and parts[1] == CRD_GROUP:
            if parts[2] not in served:
                return 404, _status(404, "NotFound", "the server could not find the requested resource")
            names = [n for plural in resources[parts[2]] for n in (plural, f"{plural}/status")]
            listed = [{"name": n, "namespaced": False, "kind": next(k.kind for k in KINDS.values()
                       if k.plural == n.partition("/")[0]), "verbs": ["get", "list", "watch"] if "/" not in n
                       else ["get"]} for n in names]  # fmt: skip
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{CRD_GROUP}/{parts[2]}",
                         "resources": listed}  # fmt: skip
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                split = urlsplit(self.path)
                query = dict(parse_qsl(split.query, keep_blank_values=True))
                with server._cond:
                    server.requests.append(RequestRecord("GET", split.path, query))
                discovered = server._discovery(split.path)
                if discovered is not None:
                    self._json(*discovered)
                    return
                route = server._route(split.path)
                if route is None:
                    self._json(404, _status(404, "NotFound", "the server could not find the requested resource"))
                    return
                kind, namespace, name = route
                if kind.plural in server._forbidden:
                    self._json(403, _status(403, "Forbidden", f'{kind.plural} is forbidden: User '
                                            f'"tester" cannot list resource "{kind.plural}"'))
                    return
                watching = query.get("watch") in ("1", "true", "True")
                verb = "watch" if watching else "get" if name is not None else "list"
                fault = server._fault_for(verb, kind.kind)
                if fault is not None and self._faulty(fault, verb, kind, namespace, name, query):
                    return
                if watching:
                    self._watch(kind, namespace, query)
                elif name is not None:
                    self._json(*server._get(kind, namespace, name))
                else:
                    self._json(*server._list(kind, namespace, query))

            def _written(self, method: str) -> tuple[Kind, str, str | None, Any] | None:
                """The Event route and body of a POST or PATCH (only Events are ever written
                through HTTP, as only the agent's Events are), or None after answering."""
                split = urlsplit(self.path)
                with server._cond:
                    server.requests.append(RequestRecord(method, split.path, dict(parse_qsl(split.query))))
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except ValueError:
                    self._json(400, _status(400, "BadRequest", "the body is not JSON"))
                    return None
                route = server._route(split.path)
                if route is None or route[0].kind != "Event" or route[1] is None or not isinstance(body, dict):
                    self._json(405, _status(405, "MethodNotAllowed", f"{method} {split.path} is not served"))
                    return None
                if route[0].plural in server._forbidden:
                    self._json(403, _status(403, "Forbidden", f'events is forbidden: User "tester" cannot {method}'))
                    return None
                return route[0], route[1], route[2], body

            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                written = self._written("POST")
                if written is None:
                    return
                _, namespace, name, body = written
                if name is not None:
                    self._json(405, _status(405, "MethodNotAllowed", "POST to a named object"))
                    return
                body["kind"] = "Event"
                body.setdefault("metadata", {})["namespace"] = namespace
                try:
                    self._json(201, server.create(body))
                except KeyError:
                    self._json(409, _status(409, "AlreadyExists", f'events "{body["metadata"].get("name")}" '
                                            "already exists"))

            def do_PATCH(self) -> None:  # noqa: N802 (the stdlib's name)
                written = self._written("PATCH")
                if written is None:
                    return
                kind, namespace, name, patch = written
                if name is None or "merge-patch" not in (self.headers.get("Content-Type") or ""):
                    self._json(415, _status(415, "UnsupportedMediaType", "only merge patches of named Events"))
                    return
                with server._cond:
                    current = copy.deepcopy(server._objects.get((kind.kind, namespace, name)))
                    if current is None:
                        self._json(404, _status(404, "NotFound", f'events "{name}" not found'))
                        return
                    self._json(200, server.update(_merge(current, patch)))

            def _json(self, code: int, body: Obj) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _faulty(self, fault: Fault, verb: str, kind: Kind, namespace: str | None, name: str | None,
                        query: Mapping[str, str]) -> bool:
                """Answer as ``fault`` says; False when the request is to be served after all
                (a watch the fault gives no body)."""
                if fault.stall:
                    deadline = time.monotonic() + fault.stall if math.isfinite(fault.stall) else math.inf
                    with server._cond:
                        while (fault.times is not None or server._active(fault)) and not server._stopped \
                                and time.monotonic() < deadline:
                            server._cond.wait(min(0.05, max(0.0, deadline - time.monotonic())))
                    self.close_connection = True
                    return True
                if fault.status != 200:
                    self._json(fault.status, _status(fault.status, "InternalError", "injected fault"))
                    return True
                body = fault.body
                if body is None:
                    if verb == "watch":
                        return False
                    _, real = server._get(kind, namespace, name) if name else server._list(kind, namespace, query)
                    body = json.dumps(real).encode()
                sent = body if fault.truncate is None else body[: fault.truncate]
                self.send_response(200)
                self.send_header("Content-Type", fault.content_type)
                self.send_header("Content-Length", str(len(sent) if fault.honest_length else len(body)))
                self.end_headers()
                try:
                    if fault.trickle is None:
                        self.wfile.write(sent)
                    else:
                        for index in range(len(sent)):
                            if server._stopped or (fault.times is None and not server._active(fault)):
                                break
                            self.wfile.write(sent[index : index + 1])
                            self.wfile.flush()
                            time.sleep(fault.trickle)
                except OSError:
                    pass
                self.close_connection = True
                return True

            def _chunk(self, event: Obj | bytes) -> None:
                data = event if isinstance(event, bytes) else (json.dumps(event) + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _watch(self, kind: Kind, namespace: str | None, query: Mapping[str, str]) -> None:
                requested = query.get("resourceVersion") or "0"
                timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
                with server._cond:
                    refuse = server._refuse
                    too_old = requested != "0" and int(requested) < server._floor
                    stream = _Stream(kind.kind, namespace, int(requested) if requested != "0" else 0,
                                     query.get("allowWatchBookmarks") in ("1", "true", "True"))  # fmt: skip
                    stream.api_version = kind.api_version if kind.kind in CRD_VERSIONS else ""
                    initial: list[Obj] = []
                    if requested == "0" and not too_old:
                        for obj in server._state_at(server._revision, kind.kind).values():
                            if namespace is None or _key(obj)[0] == namespace:
                                initial.append({"type": "ADDED", "object": copy.deepcopy(obj)})
                        stream.position = server._revision
                    if refuse is None and not (too_old and server.gone_as_http_status):
                        server._streams.add(stream)
                if refuse is not None:
                    self._json(refuse, _status(refuse, "ServiceUnavailable", "watches refused"))
                    return
                gone = _status(410, "Expired", f"too old resource version: {requested} ({server._floor})")
                if too_old and server.gone_as_http_status:
                    self._json(410, gone)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    if too_old:
                        self._chunk({"type": "ERROR", "object": gone})
                    else:
                        for event in initial:
                            self._chunk(event)
                        self._stream(stream, timeout)
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except _Dropped:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                except OSError:
                    self.close_connection = True
                finally:
                    with server._cond:
                        server._streams.discard(stream)

            def _stream(self, stream: _Stream, timeout: float | None) -> None:
                deadline = None if timeout is None else time.monotonic() + timeout
                last_sent = time.monotonic()
                while True:
                    with server._cond:
                        server._cond.wait(_TICK)
                        if server._stopped or stream.drop:
                            raise _Dropped
                        if stream.expire:
                            out = [{"type": "ERROR", "object": _status(
                                410, "Expired", "too old resource version")}]  # fmt: skip
                        elif stream.silent:
                            out: list[Obj | bytes] = []
                        else:
                            out = list(self._due(stream))
                            quiet = time.monotonic() - last_sent
                            interval = server.bookmark_interval
                            if not out and stream.bookmarks and interval and quiet >= interval:
                                out.append(server._bookmark_event(stream.kind))
                    if out:
                        last_sent = time.monotonic()
                    for event in out:
                        self._chunk(event)
                    if stream.expire:
                        return
                    if stream.silent and self._client_gone():
                        raise _Dropped
                    if deadline is not None and time.monotonic() >= deadline and not stream.silent:
                        return

            def _due(self, stream: _Stream) -> Iterator[Obj | bytes]:
                log = server._log
                while stream.cursor < len(log):
                    event = log[stream.cursor]
                    stream.cursor += 1
                    if event.revision <= stream.position or event.kind != stream.kind:
                        continue
                    if stream.namespace is not None and _key(event.object)[0] != stream.namespace:
                        continue
                    stream.position = event.revision
                    obj = copy.deepcopy(event.object)
                    if stream.api_version:
                        obj["apiVersion"] = stream.api_version
                    yield {"type": event.type, "object": obj}
                yield from stream.pending
                stream.pending.clear()

            def _client_gone(self) -> bool:
                try:
                    readable, _, _ = select.select([self.connection], [], [], 0)
                    return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

        return Handler


class _Dropped(Exception):
    """The stream is to end without its terminating chunk."""
