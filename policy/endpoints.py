"""Turning what a user types for a connection end into an end of the model.

Accepted forms, tried in this order so that the common ones need no prefix:

* ``node/NAME``: a node (its host network, e.g. the kubelet);
* an IP address: the pod that has it (a pod on the pod network first, then a hostNetwork pod),
  else the node that has it, else an address outside the cluster;
* a CIDR (``203.0.113.0/24``): a range outside the cluster (a full-length prefix is an address);
* ``NAMESPACE/NAME`` or ``NAME`` with the default namespace: a pod, or else the one workload
  (Deployment, StatefulSet, ...) of that name, since a workload template stands for its pods;
* ``KIND/NAME`` or ``NAMESPACE/KIND/NAME``: a workload, with kubectl's kind names and short
  names (``deploy``, ``deployment``, ``sts``, ``ds``, ``rs``, ``job``, ``cronjob``) or ``pod``.

A name that resolves to nothing raises :class:`EndpointError` listing the closest names, so a
typo gets an answer rather than a silent "denied".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from policyctl.policy.diagnostics import PolicyctlError
from policyctl.policy.model import IPNetwork, Node, Pod
from policyctl.policy.cluster import Cluster
from policyctl.policy.suggest import closest
from policyctl.policy.verdicts import Endpoint

_KINDS = {
    "deployment": ("deploy", "deploy", "deployment", "deployments"),
    "statefulset": ("sts", "sts", "statefulset", "statefulsets"),
    "daemonset": ("ds", "ds", "daemonset", "daemonsets"),
    "replicaset": ("rs", "rs", "replicaset", "replicasets"),
    "job": ("job", "job", "jobs"),
    "cronjob": ("cronjob", "cj", "cronjob", "cronjobs"),
    "replicationcontroller": ("rc", "rc", "replicationcontroller", "replicationcontrollers"),
}
"""Canonical kind -> (short name shown, every spelling accepted)."""

_ALIASES = {spelling: kind for kind, names in _KINDS.items() for spelling in names[1:]}
_POD_KINDS = ("pod", "pods", "po")


class EndpointError(PolicyctlError):
    """An end that names nothing in the cluster; ``suggestions`` are the closest names."""

    def __init__(self, message: str, *, suggestions: tuple[str, ...] = ()) -> None:
        self.suggestions = suggestions
        hint = f"; did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(message + hint)


@dataclass(frozen=True, slots=True)
class ResolvedEndpoint:
    """What ``text`` named: ``endpoint`` (a pod, node or address) or, for a CIDR, ``network``."""

    text: str
    endpoint: Endpoint | None = None
    network: IPNetwork | None = None

    @property
    def kind(self) -> str:
        if self.network is not None:
            return "network"
        if isinstance(self.endpoint, Pod):
            return "pod"
        if isinstance(self.endpoint, Node):
            return "node"
        return "address"


def resolve_endpoint(text: str, cluster: Cluster, *, namespace: str = "default") -> ResolvedEndpoint:
    """The end ``text`` names; :class:`EndpointError` when it names nothing."""
    text = text.strip()
    if text.startswith("node/"):
        name = text.removeprefix("node/")
        node = cluster.node_by_name.get(name)
        if node is None:
            raise EndpointError(f"no node {name!r}", suggestions=_close(name, cluster.node_by_name))
        return ResolvedEndpoint(text, endpoint=node)
    network = _as_network(text)
    if network is not None:
        if network.num_addresses > 1:
            return ResolvedEndpoint(text, network=network)
        return ResolvedEndpoint(text, endpoint=_owner(cluster, network.network_address))
    pod = _pod(text, cluster, namespace=namespace)
    return ResolvedEndpoint(text, endpoint=pod)


def workload_kind(workload: str) -> tuple[str, str] | None:
    """``deploy/web`` -> (``deployment``, ``web``); None when the kind is not a workload."""
    kind, _, name = workload.partition("/")
    canonical = _ALIASES.get(kind.lower())
    return (canonical, name) if canonical and name else None


def workload_label(pod: Pod) -> str:
    """``ns/deploy/web`` for a pod that stands for a workload, else the pod's key."""
    parsed = workload_kind(pod.workload) if pod.workload else None
    if parsed is None:
        return pod.key
    return f"{pod.namespace}/{_KINDS[parsed[0]][0]}/{parsed[1]}"


def _as_network(text: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _owner(cluster: Cluster, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Endpoint:
    owners = sorted(
        (p for p in cluster.pods if address in p.ips), key=lambda p: (p.host_network, p.key)
    )
    if owners:
        return owners[0]
    node = next((n for n in cluster.nodes if address in n.addresses), None)
    return node if node is not None else address


def _pod(text: str, cluster: Cluster, *, namespace: str) -> Pod:
    parts = text.split("/")
    if len(parts) == 2 and text in cluster.pod_by_key:
        return cluster.pod_by_key[text]
    if len(parts) == 3:
        return _workload(cluster, parts[0], parts[1], parts[2], text=text)
    if len(parts) == 2 and (parts[0].lower() in _ALIASES or parts[0].lower() in _POD_KINDS):
        return _workload(cluster, namespace, parts[0], parts[1], text=text)
    if len(parts) == 2:
        return _named(cluster, parts[0], parts[1], text=text)
    if len(parts) == 1 and parts[0]:
        return _named(cluster, namespace, parts[0], text=text)
    raise EndpointError(f"{text!r} is not a pod, workload, node, IP or CIDR")


def _named(cluster: Cluster, namespace: str, name: str, *, text: str) -> Pod:
    key = f"{namespace}/{name}"
    if key in cluster.pod_by_key:
        return cluster.pod_by_key[key]
    workloads = [
        p for p in cluster.pods
        if p.namespace == namespace and p.workload and p.workload.partition("/")[2] == name
    ]
    if len(workloads) == 1:
        return workloads[0]
    if len(workloads) > 1:
        choices = tuple(sorted(workload_label(p) for p in workloads))
        raise EndpointError(f"{key!r} names several workloads; pick one", suggestions=choices)
    raise _unknown(cluster, text)


def _workload(cluster: Cluster, namespace: str, kind: str, name: str, *, text: str) -> Pod:
    if kind.lower() in _POD_KINDS:
        return _named(cluster, namespace, name, text=text)
    canonical = _ALIASES.get(kind.lower())
    if canonical is None:
        known = ", ".join(sorted({names[0] for names in _KINDS.values()}))
        raise EndpointError(f"{text!r}: {kind!r} is not a workload kind ({known}, pod)")
    for pod in sorted(cluster.pods, key=lambda p: p.key):
        if pod.namespace == namespace and pod.workload and workload_kind(pod.workload) == (canonical, name):
            return pod
    raise _unknown(cluster, text)


def _unknown(cluster: Cluster, text: str) -> EndpointError:
    names = {p.key for p in cluster.pods} | {workload_label(p) for p in cluster.pods}
    names |= {f"{p.namespace}/{p.workload.partition('/')[2]}" for p in cluster.pods if p.workload}
    return EndpointError(f"no pod or workload {text!r} in the manifests", suggestions=_close(text, names))


def _close(text: str, names: Iterable[str]) -> tuple[str, ...]:
    return closest(text, names)
