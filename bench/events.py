"""The cluster changes whose event -> kernel latency the suite measures.

Each event is a pure function from a cluster snapshot to the next one, aimed at one node (the
node whose agent is measured) so that the event changes that node's ruleset: a pod added on the
node (a new replica of an app already there), a pod of the node deleted, a pod of the node
relabelled (``version`` flipped, which moves it to another identity), a policy added in a
namespace that has pods on the node, and a pod added or deleted on another node that the node's
policies admit as a peer (the node's sets and maps change, no chain or rule does). The choices
are drawn from a seeded ``random.Random`` so a run is reproducible.

:func:`store_writes` turns one step into what the reflectors write into the agent's
:class:`~policyctl.kubeapi.store.ClusterStore` for the watch events of that change, so the
measured latency starts where the agent first sees an event.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import operator
import random
from collections.abc import Callable

from policyctl.kubeapi.projections import Projection
from policyctl.kubeapi.resources import Resource
from policyctl.kubeapi.store import ClusterStore
from policyctl.policy.matchers import peer_selects, selecting
from policyctl.policy.model import (
    Direction,
    Family,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    OwnNamespace,
    Pod,
    PodPeer,
    PortMatch,
    Protocol,
    Rule,
)
from policyctl.policy.cluster import Cluster

Event = Callable[[Cluster, str, random.Random], Cluster]
KINDS = ("pod-add", "pod-delete", "pod-relabel", "policy-add", "peer-add", "peer-delete")


def _local(cluster: Cluster, node: str) -> list[Pod]:
    return [p for p in cluster.pods if p.node == node and not p.host_network]


def _free_address(cluster: Cluster, pod: Pod, family: Family) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    used = {a for p in cluster.pods for a in p.ips}
    current = pod.ip(family)
    assert current is not None
    candidate = current + 1
    while candidate in used:
        candidate += 1
    return candidate


def _with_replica(cluster: Cluster, template: Pod, rng: random.Random, tag: str) -> Cluster:
    """``cluster`` with a new replica of ``template`` on its node, at the next free addresses."""
    ips = tuple(_free_address(cluster, template, Family.of(a)) for a in template.ips)
    name = f"{template.name.rsplit('-', 1)[0]}-{tag}{rng.randrange(16**6):06x}"
    pod = dataclasses.replace(template, name=name, ips=ips, provenance=None)
    return dataclasses.replace(cluster, pods=tuple(sorted((*cluster.pods, pod), key=lambda p: p.key)))


def _without(cluster: Cluster, gone: Pod) -> Cluster:
    return dataclasses.replace(cluster, pods=tuple(p for p in cluster.pods if p is not gone))


def pod_add(cluster: Cluster, node: str, rng: random.Random) -> Cluster:
    """A new replica of a pod already on ``node``, with the next free addresses."""
    return _with_replica(cluster, rng.choice(_local(cluster, node)), rng, "n")


def pod_delete(cluster: Cluster, node: str, rng: random.Random) -> Cluster:
    return _without(cluster, rng.choice(_local(cluster, node)))


def pod_relabel(cluster: Cluster, node: str, rng: random.Random) -> Cluster:
    """Flip the ``version`` label of a pod on ``node`` (v1 <-> v2)."""
    pod = rng.choice(_local(cluster, node))
    version = "v2" if pod.labels.get("version") == "v1" else "v1"
    moved = dataclasses.replace(pod, labels=pod.labels.with_label("version", version))
    return dataclasses.replace(cluster, pods=tuple(moved if p is pod else p for p in cluster.pods))


def _remote_peers(cluster: Cluster, node: str) -> list[Pod]:
    """Pods on other nodes that a pod peer of a NetworkPolicy selecting a pod of ``node``
    selects: the remote pods whose addresses the node's ruleset holds (the generated clusters
    have no cluster-scoped policies). Judged once per identity (namespace and labels), with
    the matchers every engine calls."""
    local = _local(cluster, node)
    peers = {
        peer
        for policy in cluster.policies
        if any(selecting((policy,), p, cluster.namespace_labels(p.namespace)) for p in local)
        for rule in (*policy.ingress, *policy.egress)
        for peer in rule.peers
        if isinstance(peer, PodPeer)
    }
    judged: dict[tuple[str, Labels], bool] = {}
    found = []
    for pod in cluster.pods:
        if pod.node == node or pod.host_network:
            continue
        identity = (pod.namespace, pod.labels)
        if identity not in judged:
            labels = cluster.namespace_labels(pod.namespace)
            judged[identity] = any(peer_selects(peer, pod, labels) for peer in peers)
        if judged[identity]:
            found.append(pod)
    return found


def peer_add(cluster: Cluster, node: str, rng: random.Random) -> Cluster:
    """A new replica, on another node, of a pod that policies of ``node``'s pods admit as a
    peer: what most events a node sees are, its ruleset gaining an address in peer sets and
    maps only."""
    return _with_replica(cluster, rng.choice(_remote_peers(cluster, node)), rng, "r")


def peer_delete(cluster: Cluster, node: str, rng: random.Random) -> Cluster:
    return _without(cluster, rng.choice(_remote_peers(cluster, node)))


def policy_add(cluster: Cluster, node: str, rng: random.Random) -> Cluster:
    """An allow policy for the app of a pod on ``node``: ingress from its own namespace's
    pods of another app, on a port range."""
    pod = rng.choice(_local(cluster, node))
    app = pod.labels.get("app", "")
    neighbours = sorted({p.labels.get("app", "") for p in cluster.pods if p.namespace == pod.namespace} - {app})
    source = rng.choice(neighbours) if neighbours else app
    low = 10000 + rng.randrange(1000)
    rule = Rule(
        Direction.INGRESS,
        0,
        peers=(PodPeer(OwnNamespace(pod.namespace), LabelSelector.from_labels({"app": source})),),
        ports=(PortMatch(Protocol.TCP, low, low + 9),),
    )
    name = f"bench-{app}-from-{source}-{low}"
    policy = NetworkPolicy(
        namespace=pod.namespace,
        name=name,
        pod_selector=LabelSelector.from_labels({"app": app}),
        policy_types=frozenset({Direction.INGRESS}),
        ingress=(rule,),
    )
    kept = tuple(p for p in cluster.policies if p.ref != policy.ref)
    return dataclasses.replace(cluster, policies=tuple(sorted((*kept, policy), key=lambda p: p.ref)))


StoreWrite = Callable[[ClusterStore], object]


def _key(value: Pod | NetworkPolicy) -> str:
    return f"{value.namespace}/{value.name}"


def _store_key(value: Namespace | Node | Pod | NetworkPolicy) -> str:
    """Namespaces and nodes are cluster-scoped: the store keys them by name alone."""
    return value.name if isinstance(value, (Namespace, Node)) else _key(value)


def store_writes(before: Cluster, after: Cluster) -> list[StoreWrite]:
    """The store writes of the watch events that turn ``before`` into ``after``: an upsert
    (ADDED or MODIFIED) for every pod and policy object that is new, a removal (DELETED) for
    every key that is gone. Objects are compared by identity, as events share unchanged ones."""
    writes: list[StoreWrite] = []
    for resource, old, new in (
        (Resource.PODS, before.pods, after.pods),
        (Resource.NETWORK_POLICIES, before.policies, after.policies),
    ):
        kept = {id(o) for o in old}
        keys = {_key(o) for o in new}
        for value in new:
            if id(value) not in kept:
                projection = Projection(_key(value), f"uid-{_key(value)}", "1", value)
                writes.append(operator.methodcaller("upsert", resource, projection))
        for value in old:
            if _key(value) not in keys:
                writes.append(operator.methodcaller("remove", resource, _key(value)))
    return writes


def fill(store: ClusterStore, cluster: Cluster) -> None:
    """Put every object of ``cluster`` into ``store``, as the reflectors' initial lists do."""
    for resource, values in (
        (Resource.NAMESPACES, cluster.namespaces),
        (Resource.NODES, cluster.nodes),
        (Resource.PODS, cluster.pods),
        (Resource.NETWORK_POLICIES, cluster.policies),
    ):
        store.replace(resource, [Projection(_store_key(v), f"uid-{_store_key(v)}", "1", v) for v in values])


def add_agent_pod(store: ClusterStore, cluster: Cluster, node: str) -> Pod:
    """Put the pod of ``node``'s agent into ``store``, as ``deploy/base`` runs it (in
    ``kube-system``, on the host network, so with the node's addresses), and return it: an
    agent deployed there knows its name and namespace from the downward API
    (``AgentConfig.pod_name``/``pod_namespace``) and requires it in every snapshot. The events
    never touch it."""
    own = Pod("kube-system", f"policyctl-agent-{node}", Labels({"app.kubernetes.io/name": "policyctl"}), node=node,
              ips=cluster.node_by_name[node].addresses, host_network=True)
    store.upsert(Resource.PODS, Projection(own.key, f"uid-{own.key}", "1", own))
    return own


EVENTS: dict[str, Event] = {
    "pod-add": pod_add,
    "pod-delete": pod_delete,
    "pod-relabel": pod_relabel,
    "policy-add": policy_add,
    "peer-add": peer_add,
    "peer-delete": peer_delete,
}
