"""When a policy's effect reached this node's kernel: "programmed on node-3 in 41 ms".

A policy is *programmed* on a node once a sync that read a snapshot holding its latest change
has been committed to the node's kernel (or found the kernel already right: a policy that
selects nothing here is programmed as soon as a sync has seen it). The delay is counted from
the moment the agent learned of the change (its watch delivered the change to the store) to
the end of that sync: the event -> kernel latency the agent controls.

A change is claimed only by a sync that started after the change was seen, so a delay is never
under-reported: a change that arrives while a sync runs is claimed by the next sync, which the
change itself requests. A policy deleted before it was programmed is forgotten.

Pure: :class:`ProgrammedTracker` is fed times and keys and hands back :class:`Programmed`
records; :func:`event_for` turns one into the ``core/v1`` Event the agent publishes on the
policy (``kubeapi.events``), and :func:`read_event` reads one back (``policyctl status``).
"""

from __future__ import annotations

import datetime
import hashlib
import threading
from dataclasses import dataclass
from typing import Any

REASON = "Programmed"
COMPONENT = "policyctl-agent"
ANNOTATION_NODE = "policyctl.io/node"
ANNOTATION_LATENCY = "policyctl.io/latency-seconds"
ANNOTATION_KIND = "policyctl.io/policy-kind"
#: Cluster-scoped objects have their Events in ``default``, as kubectl looks for them.
CLUSTER_EVENTS_NAMESPACE = "default"
API_VERSIONS = {
    "NetworkPolicy": "networking.k8s.io/v1",
    "ClusterNetworkPolicy": "policy.networking.k8s.io/v1beta1",
    "AdminNetworkPolicy": "policy.networking.k8s.io/v1alpha1",
    "BaselineAdminNetworkPolicy": "policy.networking.k8s.io/v1alpha1",
}
_MAX_NAME = 253


@dataclass(frozen=True, slots=True, order=True)
class PolicyKey:
    """A policy as the API names it: its kind, namespace ("" when cluster-scoped) and name."""

    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, kind: str, store_key: str) -> PolicyKey:
        namespace, _, name = store_key.rpartition("/")
        return cls(kind, namespace, name)

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace + '/' if self.namespace else ''}{self.name}"


@dataclass(frozen=True, slots=True)
class Programmed:
    """``policy`` reached ``node``'s kernel at ``at`` (Unix seconds), ``latency`` seconds after
    the agent saw its change."""

    policy: PolicyKey
    node: str
    latency: float
    at: float


class ProgrammedTracker:
    """Changes seen and not yet programmed, per policy; thread-safe (the reflectors report
    changes, the sync thread reports syncs)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._pending: dict[PolicyKey, float] = {}
        self._lock = threading.Lock()

    def changed(self, policy: PolicyKey, at: float) -> None:
        """The agent saw a change of ``policy`` at ``at`` (monotonic seconds). The first unclaimed
        change counts: the delay is that of the oldest change still waiting."""
        with self._lock:
            self._pending.setdefault(policy, at)

    def deleted(self, policy: PolicyKey) -> None:
        with self._lock:
            self._pending.pop(policy, None)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def synced(self, started: float, finished: float, *, wall_clock: float) -> tuple[Programmed, ...]:
        """A sync that started at ``started`` succeeded at ``finished`` (monotonic; ``wall_clock``
        is the same moment in Unix time): every change seen before it started is programmed."""
        with self._lock:
            done = sorted(p for p, seen in self._pending.items() if seen <= started)
            found = tuple(Programmed(p, self.node, max(0.0, finished - self._pending.pop(p)), wall_clock)
                          for p in done)  # fmt: skip
        return found


def _event_name(programmed: Programmed) -> str:
    """One Event per policy and node, updated on each later programming: the name is fixed by
    them (a digest keeps long names within the 253 characters of a name)."""
    kind = programmed.policy.kind.lower()
    name = f"{programmed.policy.name}.{kind}.programmed.{programmed.node}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: _MAX_NAME - 17]}.{digest}"


def _timestamp(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def event_namespace(policy: PolicyKey) -> str:
    return policy.namespace or CLUSTER_EVENTS_NAMESPACE


def event_for(programmed: Programmed) -> dict[str, Any]:
    """The ``core/v1`` Event on the policy: ``reason: Programmed``, the node and the delay in
    the message for people and in annotations for ``policyctl status``."""
    policy = programmed.policy
    involved: dict[str, Any] = {"apiVersion": API_VERSIONS.get(policy.kind, ""), "kind": policy.kind,
                                "name": policy.name}
    if policy.namespace:
        involved["namespace"] = policy.namespace
    when = _timestamp(programmed.at)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": _event_name(programmed),
            "namespace": event_namespace(policy),
            "annotations": {
                ANNOTATION_NODE: programmed.node,
                ANNOTATION_LATENCY: f"{programmed.latency:.6f}",
                ANNOTATION_KIND: policy.kind,
            },
        },
        "involvedObject": involved,
        "reason": REASON,
        "message": f"programmed on {programmed.node} in {programmed.latency * 1000:.0f} ms",
        "type": "Normal",
        "source": {"component": COMPONENT, "host": programmed.node},
        "reportingComponent": COMPONENT,
        "reportingInstance": programmed.node,
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
    }


def read_event(event: dict[str, Any]) -> Programmed | None:
    """A published Event read back; None for any other Event or one whose annotations are
    missing or unreadable."""
    if event.get("reason") != REASON or (event.get("source") or {}).get("component") != COMPONENT:
        return None
    annotations = (event.get("metadata") or {}).get("annotations") or {}
    involved = event.get("involvedObject") or {}
    try:
        latency = float(annotations[ANNOTATION_LATENCY])
        node = str(annotations[ANNOTATION_NODE])
        kind = str(involved["kind"])
        name = str(involved["name"])
    except (KeyError, TypeError, ValueError):
        return None
    stamp = event.get("lastTimestamp") or event.get("firstTimestamp")
    try:
        parsed = datetime.datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
        at = parsed.timestamp()
    except ValueError:
        at = 0.0
    return Programmed(PolicyKey(kind, str(involved.get("namespace") or ""), name), node, latency, at)
