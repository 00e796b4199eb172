"""Raw ``policy.networking.k8s.io`` objects as the API server stores them, for the fake server."""

from __future__ import annotations

from typing import Any


def pods_of(namespace_labels: dict[str, str], pod_labels: dict[str, str]) -> dict[str, Any]:
    selectors = {"namespaceSelector": {"matchLabels": namespace_labels}, "podSelector": {"matchLabels": pod_labels}}
    return {"pods": selectors}


def cnp(name: str, *, tier: str = "Admin", priority: int = 10, subject: dict[str, Any] | None = None,
        ingress: list[dict[str, Any]] | None = None, egress: list[dict[str, Any]] | None = None,
        api_version: str = "policy.networking.k8s.io/v1beta1") -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {"tier": tier, "priority": priority, "subject": subject or {"namespaces": {}}}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"apiVersion": api_version, "kind": "ClusterNetworkPolicy",
            "metadata": {"name": name, "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z",
                         "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": spec, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}  # fmt: skip


def anp(name: str, *, priority: int, ingress: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
            "metadata": {"name": name},
            "spec": {"priority": priority, "subject": {"namespaces": {}}, "ingress": ingress}}  # fmt: skip


def banp(ingress: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "BaselineAdminNetworkPolicy",
            "metadata": {"name": "default"}, "spec": {"subject": {"namespaces": {}}, "ingress": ingress}}  # fmt: skip
