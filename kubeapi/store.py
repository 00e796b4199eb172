"""The reflectors' shared cache: slim projections of every watched object, and snapshots.

Each reflector writes one resource (:class:`~kubeapi.resources.Resource`); readers take
:meth:`ClusterStore.snapshot`, an immutable :class:`~policy.model.Cluster`. Every write
returns the :class:`Change` it made (``None`` when the object means the same as before), which
is the change feed: the agent recomputes only what a change affects.

Invariants:

* An event that changes nothing the semantics reads (a status condition, an annotation, only
  the resourceVersion) is recorded but is not a change, and the next snapshot is the cached
  one: snapshots are cheap while nothing changed.
* :meth:`ClusterStore.replace` (after a relist) reports every key the new list lacks as a
  deletion: objects deleted while the reader was away never produce a DELETED event.
* Snapshots are deterministic: namespaces, pods, nodes and policies sorted by key.
* All methods are safe to call from several threads (one per reflector, plus readers).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from policyctl.kubeapi.projections import Projection
from policyctl.kubeapi.resources import Resource
from policyctl.policy.model import Cluster, Namespace, NetworkPolicy, Node, Pod


class ChangeKind(str, enum.Enum):
    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True, order=True)
class Change:
    """One object of ``resource`` at ``key`` was added, modified (in what the semantics
    reads, or replaced by a new object of the same name) or deleted."""

    resource: Resource
    key: str
    kind: ChangeKind


class ClusterStore:
    """Projections by resource and key. ``generation`` counts changes."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._records: dict[Resource, dict[str, Projection]] = {r: {} for r in Resource}
        self._generation = 0
        self._cached: tuple[int, Cluster] | None = None

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    def get(self, resource: Resource, key: str) -> Projection | None:
        with self._lock:
            return self._records[resource].get(key)

    def keys(self, resource: Resource) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._records[resource]))

    def upsert(self, resource: Resource, projection: Projection) -> Change | None:
        """Store ``projection``; the change, or None when it means the same as before."""
        with self._lock:
            table = self._records[resource]
            previous = table.get(projection.key)
            table[projection.key] = projection
            if previous is None:
                return self._changed(resource, projection.key, ChangeKind.ADDED)
            if previous.value == projection.value and previous.uid == projection.uid:
                return None
            return self._changed(resource, projection.key, ChangeKind.MODIFIED)

    def remove(self, resource: Resource, key: str) -> Change | None:
        with self._lock:
            if self._records[resource].pop(key, None) is None:
                return None
            return self._changed(resource, key, ChangeKind.DELETED)

    def replace(self, resource: Resource, projections: Iterable[Projection]) -> tuple[Change, ...]:
        """Make ``resource`` hold exactly ``projections`` (a fresh list): the changes, sorted,
        deletions of keys the list lacks included."""
        fresh = {p.key: p for p in projections}
        with self._lock:
            changes = [self.remove(resource, key) for key in sorted(set(self._records[resource]) - set(fresh))]
            changes += [self.upsert(resource, fresh[key]) for key in sorted(fresh)]
        return tuple(sorted(c for c in changes if c is not None))

    def _changed(self, resource: Resource, key: str, kind: ChangeKind) -> Change:
        self._generation += 1
        return Change(resource, key, kind)

    def snapshot(self) -> Cluster:
        """The cluster as the store holds it now; the same object while nothing changed."""
        with self._lock:
            if self._cached is not None and self._cached[0] == self._generation:
                return self._cached[1]

            def values(resource: Resource) -> list[object]:
                table = self._records[resource]
                return [table[key].value for key in sorted(table)]

            namespaces = [v for v in values(Resource.NAMESPACES) if isinstance(v, Namespace)]
            pods = [v for v in values(Resource.PODS) if isinstance(v, Pod)]
            nodes = [v for v in values(Resource.NODES) if isinstance(v, Node)]
            policies = [v for v in values(Resource.NETWORK_POLICIES) if isinstance(v, NetworkPolicy)]
            cluster = Cluster(
                namespaces=tuple(namespaces),
                pods=tuple(sorted(pods, key=lambda p: (p.namespace, p.name))),
                nodes=tuple(nodes),
                policies=tuple(sorted(policies, key=lambda p: (p.namespace, p.name))),
            )
            self._cached = (self._generation, cluster)
            return cluster
