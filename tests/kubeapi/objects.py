"""Raw API objects as the API server stores them, for the fake server."""

from __future__ import annotations

from typing import Any


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def pod(
    key: str,
    labels: dict[str, str] | None = None,
    *,
    ip: str | None = None,
    node: str = "node-a",
    phase: str = "Running",
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    ns, _, name = key.partition("/")
    status: dict[str, Any] = {"phase": phase}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    container: dict[str, Any] = {"name": "main", "image": "registry.k8s.io/pause:3.9"}
    if ports:
        container["ports"] = ports
    return {"kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {},
                         "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": node, "containers": [container]},
            "status": status}  # fmt: skip


def node(name: str, ip: str) -> dict[str, Any]:
    return {"kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": ip},
                                     {"type": "Hostname", "address": name}]}}  # fmt: skip


def policy(key: str, spec: dict[str, Any]) -> dict[str, Any]:
    ns, _, name = key.partition("/")
    return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns,
            "generation": 1, "annotations": {"owner": "shop"}}, "spec": spec}  # fmt: skip


def deny_all(key: str) -> dict[str, Any]:
    return policy(key, {"podSelector": {}})
