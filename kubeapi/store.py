"""The reflectors' shared cache: slim projections of every watched object, and snapshots.

Each reflector writes one resource (:class:`~kubeapi.resources.Resource`); readers take
:meth:`ClusterStore.snapshot`, an immutable :class:`~policy.cluster.Cluster`. Every write
returns the :class:`Change` it made (``None`` when the object means the same as before), which
is the change feed: the agent recomputes only what a change affects.

Invariants:

* An event that changes nothing the semantics reads (a status condition, an annotation, only
  the resourceVersion) is recorded but is not a change, and the next snapshot is the cached
  one: snapshots are cheap while nothing changed.
* :meth:`ClusterStore.replace` (after a relist) reports every key the new list lacks as a
  deletion: objects deleted while the reader was away never produce a DELETED event.
* Snapshots are deterministic: namespaces and nodes sorted by name, pods and policies by
  (namespace, name), exactly as a from-scratch sort would order them; the cluster-scoped
  policies of the three kinds together, the Admin tier first, then by precedence
  (:attr:`~policy.clustermodel.ClusterNetworkPolicy.order`), as the file loader orders them.
* Snapshots are cheap on the event path: each resource keeps its objects in snapshot order as
  writes arrive, in blocks (two binary searches and a block's insertion or deletion per write),
  so a snapshot after one change rebuilds the blocks written, shares the others with the
  snapshot before (:class:`~policy.snapshots.Successor`) and never sorts. A relist sorts once.
* All methods are safe to call from several threads (one per reflector, plus readers).
"""

from __future__ import annotations

import bisect
import enum
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from policyctl.kubeapi.projections import Projection
from policyctl.kubeapi.resources import RESOURCES, Resource
from policyctl.policy.clustermodel import ClusterNetworkPolicy, Tier
from policyctl.policy.model import Namespace, NetworkPolicy, Node, Pod
from policyctl.policy.cluster import Cluster
from policyctl.policy.snapshots import SnapshotChange, Successor


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


#: The model type a snapshot takes from each resource; a value of another type is kept in the
#: store (``get`` returns it) but is not part of any snapshot.
_MODEL_TYPES: dict[Resource, type] = {
    Resource.NAMESPACES: Namespace,
    Resource.PODS: Pod,
    Resource.NODES: Node,
    Resource.NETWORK_POLICIES: NetworkPolicy,
    Resource.CLUSTER_NETWORK_POLICIES: ClusterNetworkPolicy,
    Resource.ADMIN_NETWORK_POLICIES: ClusterNetworkPolicy,
    Resource.BASELINE_ADMIN_NETWORK_POLICIES: ClusterNetworkPolicy,
}

#: The resources whose values make up :attr:`Cluster.cluster_policies`.
_CLUSTER_POLICY_RESOURCES = tuple(r for r, t in _MODEL_TYPES.items() if t is ClusterNetworkPolicy)


def tier_order(policy: ClusterNetworkPolicy) -> tuple[bool, tuple[int, str, str]]:
    """The order of :attr:`Cluster.cluster_policies`: the Admin tier first, then precedence."""
    return (policy.tier is not Tier.ADMIN, policy.order)


#: Objects per block of a snapshot after a relist; a block splits in two past twice as many,
#: deletions may leave it smaller, and an emptied block is dropped. A snapshot after one write
#: copies that block and a pointer per block (about 200 at 100,000 pods) instead of 100,000.
_BLOCK = 512


def _unordered(key: str) -> str:
    return key


def _by_namespace_then_name(key: str) -> tuple[str, str, str]:
    """``namespace/name`` as (namespace, "/", name): so ``a/x`` precedes ``a-b/x``, as
    (namespace, name) orders them and the plain strings do not."""
    return key.partition("/")


def sort_key(resource: Resource) -> Callable[[str], str | tuple[str, str, str]]:
    """Snapshot order of a resource's store keys: (namespace, name) for namespaced kinds, the
    name for cluster-scoped ones."""
    return _by_namespace_then_name if RESOURCES[resource].namespaced else _unordered


class _Table:
    """One resource: projections by key, and the snapshot's values in snapshot order, in blocks
    of at most ``2 * _BLOCK`` (the store keys, the very strings of the projections, beside
    their values), holding only values of the resource's model type. ``maxes`` holds a bound
    per block: every key of a block sorts after the bound of the block before it and at or
    before its own (a deletion may leave a bound above its block's keys), so the bounds stay
    sorted, which a binary search over them needs. A key appended after every other raises
    the last block's bound: when that block splits, its second half keeps the bound, which
    must stay above the first half's. ``frozen`` holds each block's tuple while the block is
    unchanged, so a snapshot rebuilds only the blocks written since the one before."""

    __slots__ = ("model_type", "sort_key", "records", "keys", "values", "maxes", "frozen", "size", "cached",
                 "dirty", "came", "gone", "known")

    def __init__(self, resource: Resource) -> None:
        self.model_type = _MODEL_TYPES[resource]
        self.sort_key = sort_key(resource)
        self.records: dict[str, Projection] = {}
        self.keys: list[list[str]] = []
        self.values: list[list[object]] = []
        self.maxes: list[str | tuple[str, str, str]] = []
        self.frozen: list[tuple[object, ...] | None] = []
        self.size = 0
        self.cached: Successor[object] = Successor()
        self.dirty = False
        # What the snapshot after ``cached`` gains and loses, by object identity (with each
        # object's key, for the snapshot's order); ``known`` is False after a relist.
        self.came: dict[int, tuple[str, object]] = {}
        self.gone: dict[int, tuple[str, object]] = {}
        self.known = True

    def _lose(self, key: str, value: object) -> None:
        if self.came.pop(id(value), None) is None:
            self.gone[id(value)] = (key, value)

    def _gain(self, key: str, value: object) -> None:
        if self.gone.pop(id(value), None) is None:
            self.came[id(value)] = (key, value)

    def put(self, projection: Projection) -> Projection | None:
        """Store ``projection``; the one it replaced."""
        key = projection.key
        previous = self.records.get(key)
        self.records[key] = projection
        was_listed = previous is not None and isinstance(previous.value, self.model_type)
        listed = isinstance(projection.value, self.model_type)
        if was_listed and listed:
            self._lose(key, previous.value)  # type: ignore[union-attr]
            self._gain(key, projection.value)
            block, index = self._position(key)
            self.values[block][index] = projection.value
            self.frozen[block] = None
            self.dirty = True
        elif was_listed:
            self._lose(key, previous.value)  # type: ignore[union-attr]
            self._delete(key)
        elif listed:
            self._gain(key, projection.value)
            self._insert(key, projection.value)
        return previous

    def pop(self, key: str) -> Projection | None:
        previous = self.records.pop(key, None)
        if previous is not None and isinstance(previous.value, self.model_type):
            self._lose(key, previous.value)
            self._delete(key)
        return previous

    def reorder(self) -> None:
        """Rebuild the blocks from the records with one sort (after a relist)."""
        records = self.records
        order = sorted((k for k, p in records.items() if isinstance(p.value, self.model_type)), key=self.sort_key)
        self.keys = [order[i : i + _BLOCK] for i in range(0, len(order), _BLOCK)]
        self.values = [[records[k].value for k in block] for block in self.keys]
        self.maxes = [self.sort_key(block[-1]) for block in self.keys]
        self.frozen = [None] * len(self.keys)
        self.size = len(order)
        self.dirty = True
        self.known = False

    def snapshot(self) -> Successor[object]:
        """The values in order; a new sequence only after a change, sharing the unchanged
        blocks of the one before and carrying what it gained and lost against it
        (``policy.snapshots``) unless a relist came between."""
        if self.dirty:
            frozen = self.frozen
            for block, held in enumerate(frozen):
                if held is None:
                    frozen[block] = tuple(self.values[block])
            previous = self.cached
            current: Successor[object] = Successor.of_blocks(frozen)  # type: ignore[arg-type]
            if self.known:
                current.change = SnapshotChange(base=previous, gone=self._in_order(self.gone),
                                                came=self._in_order(self.came))
            previous.change = None
            self.cached = current
            self.came, self.gone, self.known = {}, {}, True
            self.dirty = False
        return self.cached

    def _in_order(self, objects: dict[int, tuple[str, object]]) -> tuple[object, ...]:
        """The objects in snapshot order (a handful per event: sorted in place by their keys)."""
        keyed = list(objects.values())
        order = self.sort_key
        keyed.sort(key=lambda item: order(item[0]))
        return tuple(value for _, value in keyed)

    def _position(self, key: str) -> tuple[int, int]:
        """The block and the index in it where ``key`` is or would go (the last block for a key
        after every other)."""
        if not self.keys:
            return 0, 0
        ordered = self.sort_key(key)
        block = min(bisect.bisect_left(self.maxes, ordered), len(self.keys) - 1)
        return block, bisect.bisect_left(self.keys[block], ordered, key=self.sort_key)

    def _insert(self, key: str, value: object) -> None:
        block, index = self._position(key)
        ordered = self.sort_key(key)
        if not self.keys:
            self.keys, self.values, self.maxes, self.frozen = [[key]], [[value]], [ordered], [None]
        else:
            keys, values = self.keys[block], self.values[block]
            keys.insert(index, key)
            values.insert(index, value)
            self.frozen[block] = None
            if ordered > self.maxes[block]:  # type: ignore[operator]  # one key type per table
                self.maxes[block] = ordered
            if len(keys) > 2 * _BLOCK:
                self.keys[block : block + 1] = [keys[:_BLOCK], keys[_BLOCK:]]
                self.values[block : block + 1] = [values[:_BLOCK], values[_BLOCK:]]
                self.maxes.insert(block, self.sort_key(keys[_BLOCK - 1]))
                self.frozen.insert(block, None)
        self.size += 1
        self.dirty = True

    def _delete(self, key: str) -> None:
        block, index = self._position(key)
        keys = self.keys[block]
        del keys[index], self.values[block][index]
        if not keys:
            del self.keys[block], self.values[block], self.maxes[block], self.frozen[block]
        else:
            self.frozen[block] = None
        self.size -= 1
        self.dirty = True


class ClusterStore:
    """Projections by resource and key. ``generation`` counts changes."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tables: dict[Resource, _Table] = {r: _Table(r) for r in Resource}
        self._generation = 0
        self._cached: tuple[int, Cluster] | None = None
        self._cluster_policies: tuple[tuple[object, ...], tuple[ClusterNetworkPolicy, ...]] = ((), ())

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    def get(self, resource: Resource, key: str) -> Projection | None:
        with self._lock:
            return self._tables[resource].records.get(key)

    def count(self, resource: Resource) -> int:
        """Objects of ``resource`` in the snapshot (stand-ins of another type left out)."""
        with self._lock:
            return self._tables[resource].size

    def keys(self, resource: Resource) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._tables[resource].records))

    def upsert(self, resource: Resource, projection: Projection) -> Change | None:
        """Store ``projection``; the change, or None when it means the same as before."""
        with self._lock:
            previous = self._tables[resource].put(projection)
            if previous is None:
                return self._changed(resource, projection.key, ChangeKind.ADDED)
            if previous.value == projection.value and previous.uid == projection.uid:
                return None
            return self._changed(resource, projection.key, ChangeKind.MODIFIED)

    def remove(self, resource: Resource, key: str) -> Change | None:
        with self._lock:
            if self._tables[resource].pop(key) is None:
                return None
            return self._changed(resource, key, ChangeKind.DELETED)

    def replace(self, resource: Resource, projections: Iterable[Projection]) -> tuple[Change, ...]:
        """Make ``resource`` hold exactly ``projections`` (a fresh list): the changes, sorted,
        deletions of keys the list lacks included."""
        fresh = {p.key: p for p in projections}
        changes: list[Change] = []
        with self._lock:
            table = self._tables[resource]
            for key in sorted(table.records.keys() - fresh.keys()):
                del table.records[key]
                changes.append(self._changed(resource, key, ChangeKind.DELETED))
            for key in sorted(fresh):
                previous = table.records.get(key)
                current = fresh[key]
                table.records[key] = current
                if previous is None:
                    changes.append(self._changed(resource, key, ChangeKind.ADDED))
                elif previous.value != current.value or previous.uid != current.uid:
                    changes.append(self._changed(resource, key, ChangeKind.MODIFIED))
            table.reorder()
        return tuple(sorted(changes))

    def _changed(self, resource: Resource, key: str, kind: ChangeKind) -> Change:
        self._generation += 1
        return Change(resource, key, kind)

    def _tiered(self) -> tuple[ClusterNetworkPolicy, ...]:
        """The three kinds' values in tier order; sorted again only when one of them changed."""
        parts = tuple(self._tables[r].snapshot() for r in _CLUSTER_POLICY_RESOURCES)
        seen, tiered = self._cluster_policies
        if len(seen) != len(parts) or any(a is not b for a, b in zip(seen, parts)):
            merged = [p for part in parts for p in part]
            tiered = tuple(sorted(merged, key=tier_order))  # type: ignore[arg-type]
            self._cluster_policies = (parts, tiered)
        return tiered

    def snapshot(self) -> Cluster:
        """The cluster as the store holds it now; the same object while nothing changed.
        Costs, for each resource written since the last snapshot, a copy of each block written
        and a pointer per block."""
        with self._lock:
            if self._cached is not None and self._cached[0] == self._generation:
                return self._cached[1]
            tables = self._tables
            cluster = Cluster(
                namespaces=tables[Resource.NAMESPACES].snapshot(),  # type: ignore[arg-type]
                pods=tables[Resource.PODS].snapshot(),  # type: ignore[arg-type]
                nodes=tables[Resource.NODES].snapshot(),  # type: ignore[arg-type]
                policies=tables[Resource.NETWORK_POLICIES].snapshot(),  # type: ignore[arg-type]
                cluster_policies=self._tiered(),
            )
            self._cached = (self._generation, cluster)
            return cluster
