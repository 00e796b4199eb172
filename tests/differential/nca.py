"""Running network-config-analyzer (NCA) on a cluster and reading its connectivity.

NCA is installed in its own virtual environment (``scripts/dev`` puts it in ``.venv/nca``)
because it pins exact versions of PyYAML and networkx that conflict with the Kubernetes
client. It is found through ``POLICYCTL_NCA``, then ``.venv/nca/bin/nca``, then ``PATH``.

Input, as ``../shared/research/nca-deviations.md`` describes it: a directory of NetworkPolicy
manifests, a v1 PodList (labels, container ports, ``status.podIP``/``podIPs``) and a
NamespaceList. Output of ``-o txt_no_fw_rules``: one line per connected pair and set of
protocols, ``x/a[Pod] => y/b[Pod] : {protocols:TCP,UDP,dst_ports:80-90,100}`` or ``: All
connections``; a pair not printed is not connected.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from policyctl.policy.model import Pod, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.policy.portsummary import FIRST_PORT, LAST_PORT

REPO = Path(__file__).resolve().parents[2]
Ports = tuple[tuple[Protocol, int, int], ...]
"""Allowed (protocol, first, last) runs, merged and sorted: one pair's connectivity."""

ALL: Ports = tuple((p, FIRST_PORT, LAST_PORT) for p in Protocol)
_LINE = re.compile(r"^(\S+)\[Pod\] => (\S+)\[Pod\] : (.*)$")


def nca_binary() -> str | None:
    candidates = [
        os.environ.get("POLICYCTL_NCA", ""),
        str(REPO / ".venv" / "nca" / "bin" / "nca"),
        shutil.which("nca") or "",
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def merge(items: Iterable[tuple[Protocol, int, int]]) -> Ports:
    merged: list[tuple[Protocol, int, int]] = []
    order = {p: i for i, p in enumerate(Protocol)}
    for protocol, first, last in sorted(items, key=lambda r: (order[r[0]], r[1], r[2])):
        if merged and merged[-1][0] is protocol and merged[-1][2] + 1 >= first:
            merged[-1] = (protocol, merged[-1][1], max(merged[-1][2], last))
        else:
            merged.append((protocol, first, last))
    return tuple(merged)


def parse_connections(text: str) -> tuple[tuple[Protocol, int, int], ...]:
    """``{protocols:TCP,UDP,dst_ports:80-90,100}`` -> runs; ``All connections`` -> every port
    of TCP, UDP and SCTP (what policies can speak of)."""
    if text.strip() == "All connections":
        return ALL
    body = text.strip().strip("{}")
    protocols_part, _, ports_part = body.partition(",dst_ports:")
    names = [n.strip() for n in protocols_part.removeprefix("protocols:").split(",")]
    spans: list[tuple[int, int]] = []
    for item in ports_part.split(",") if ports_part else []:
        first, _, last = item.strip().partition("-")
        spans.append((int(first), int(last or first)))
    spans = spans or [(FIRST_PORT, LAST_PORT)]
    return tuple((Protocol(n), a, b) for n in names if n in Protocol.__members__ for a, b in spans)


def parse_output(output: str) -> dict[tuple[str, str], Ports]:
    found: dict[tuple[str, str], list[tuple[Protocol, int, int]]] = {}
    for line in output.splitlines():
        match = _LINE.match(line.strip())
        if match:
            found.setdefault((match.group(1), match.group(2)), []).extend(parse_connections(match.group(3)))
    return {pair: merge(runs) for pair, runs in found.items()}


def _pod_manifest(pod: Pod) -> dict[str, object]:
    ports = [
        {"containerPort": c.port, "protocol": c.protocol.value, **({"name": c.name} if c.name else {})}
        for c in pod.ports
    ]
    ips = [str(a) for a in pod.ips]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": dict(pod.labels)},
        "spec": {"containers": [{"name": "c", "image": "i", "ports": ports}]},
        "status": {"podIP": ips[0], "podIPs": [{"ip": a} for a in ips]},
    }


def write_inputs(
    cluster: Cluster, policies: Iterable[Mapping[str, object]], directory: Path
) -> tuple[Path, Path, Path]:
    """The cluster's pods (with addresses, hostNetwork ones left out) and namespaces as NCA
    reads them, and the policy manifests, under ``directory``."""
    pods = [_pod_manifest(p) for p in cluster.pods if p.ips and not p.host_network]
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n.name, "labels": dict(n.labels)}}
        for n in cluster.namespaces
    ]
    pod_file, namespace_file, policy_dir = (
        directory / "pods.yaml",
        directory / "namespaces.yaml",
        directory / "policies",
    )
    policy_dir.mkdir(parents=True, exist_ok=True)
    pod_file.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "PodList", "items": pods}))
    namespace_file.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "NamespaceList", "items": namespaces}))
    (policy_dir / "policies.yaml").write_text(yaml.safe_dump_all(list(policies)))
    return pod_file, namespace_file, policy_dir


def nca_connectivity(binary: str, *, pods: Path, namespaces: Path, policies: Path) -> dict[tuple[str, str], Ports]:
    """Every connected ordered pair of pods (``ns/name``) and what it may open."""
    completed = subprocess.run(
        [binary, "--connectivity", str(policies), "-p", str(pods), "-n", str(namespaces), "-o", "txt_no_fw_rules"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        raise AssertionError(f"nca exited {completed.returncode}:\n{completed.stdout}\n{completed.stderr}")
    return parse_output(completed.stdout)
