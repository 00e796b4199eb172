"""Where a running lab is described, so later commands (``lab exec``, ``lab probe``, ``lab
down``) find it.

Each lab has a directory ``/run/policyctl-lab/<name>/`` (``$POLICYCTL_LAB_STATE`` overrides the
root) holding ``lab.json``: its prefix, its plan, the ports its servers serve, and who owns it.
The file is written *before* anything is created and removed *after* everything is gone, so a
crash at any point leaves a file that ``lab down`` can finish from. ``/run`` is a tmpfs: after
a reboot neither the file nor the namespaces exist.

Owners: a lab from ``lab up`` belongs to the command line (``kind = "cli"``) and lives until
``lab down``; a lab a :class:`~policyctl.lab.engine.LabEngine` builds (``kind = "engine"``)
belongs to that process, and ``lab down --all`` removes it only once that process is gone.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policyctl.lab.topology import Cni, LabPlan, NodePlan, PodPlan, Route
from policyctl.policy.diagnostics import PolicyctlError
from policyctl.policy.model import Family, Protocol

STATE_FILE = "lab.json"
PREFIX_ROOT = "pcl-"
#: Which process keeps each prefix alive. Always here, whatever the state root, so that
#: ``lab down --all`` never removes a lab that a running process (with its descriptions kept
#: elsewhere) still uses.
LEASES = Path("/run/policyctl-lab-leases")


class LabStateError(PolicyctlError):
    """No such lab, or its description cannot be read."""


def state_root() -> Path:
    return Path(os.environ.get("POLICYCTL_LAB_STATE", "/run/policyctl-lab"))


def new_prefix() -> str:
    """``pcl-<6 hex>-``: short enough that prefixed link names fit IFNAMSIZ."""
    return f"{PREFIX_ROOT}{secrets.token_hex(3)}-"


@dataclass(frozen=True, slots=True)
class LabState:
    """A lab's description. ``plan`` is None between writing the file and planning."""

    name: str
    prefix: str
    kind: str
    owner_pid: int
    plan: LabPlan | None = None
    endpoints: tuple[tuple[Protocol, int], ...] = ()
    server_pid: int | None = None
    source: tuple[str, ...] = field(default=())

    @property
    def directory(self) -> Path:
        return state_root() / self.name


def _route_json(route: Route) -> dict[str, Any]:
    return {"destination": route.destination, "device": route.device, "via": route.via,
            "source": route.source, "onlink": route.onlink}


def plan_to_json(plan: LabPlan) -> dict[str, Any]:
    return {
        "prefix": plan.prefix,
        "cni": plan.cni.value,
        "families": [f.value for f in plan.families],
        "underlay_netns": plan.underlay_netns,
        "underlay_bridge": plan.underlay_bridge,
        "service_networks": list(plan.service_networks),
        "nodes": [
            {
                "name": n.name, "netns": n.netns, "underlay_link": n.underlay_link,
                "underlay_peer": n.underlay_peer, "underlay_addresses": list(n.underlay_addresses),
                "bridge": n.bridge, "gateways": list(n.gateways),
                "routes": [_route_json(r) for r in n.routes],
            }
            for n in plan.nodes
        ],
        "pods": [
            {
                "key": p.key, "node": p.node, "netns": p.netns, "link": p.link,
                "host_link": p.host_link, "addresses": list(p.addresses),
                "routes": [_route_json(r) for r in p.routes], "host_network": p.host_network,
            }
            for p in plan.pods
        ],
    }


def plan_from_json(data: dict[str, Any]) -> LabPlan:
    def routes(items: list[dict[str, Any]]) -> tuple[Route, ...]:
        return tuple(Route(**r) for r in items)

    return LabPlan(
        prefix=data["prefix"],
        cni=Cni(data["cni"]),
        families=tuple(Family(f) for f in data["families"]),
        underlay_netns=data["underlay_netns"],
        underlay_bridge=data["underlay_bridge"],
        service_networks=tuple(data.get("service_networks", ())),
        nodes=tuple(
            NodePlan(**{**n, "underlay_addresses": tuple(n["underlay_addresses"]),
                        "gateways": tuple(n["gateways"]), "routes": routes(n["routes"])})
            for n in data["nodes"]
        ),
        pods=tuple(
            PodPlan(**{**p, "addresses": tuple(p["addresses"]), "routes": routes(p["routes"])})
            for p in data["pods"]
        ),
    )


def save_state(state: LabState) -> None:
    """Write atomically (rename), so a reader never sees half a file."""
    state.directory.mkdir(parents=True, exist_ok=True)
    data = {
        "name": state.name,
        "prefix": state.prefix,
        "kind": state.kind,
        "owner_pid": state.owner_pid,
        "plan": plan_to_json(state.plan) if state.plan else None,
        "endpoints": [[p.value, n] for p, n in state.endpoints],
        "server_pid": state.server_pid,
        "source": list(state.source),
    }
    temporary = state.directory / (STATE_FILE + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    temporary.replace(state.directory / STATE_FILE)


def load_state(where: str | Path) -> LabState:
    """A lab by name, or by its directory."""
    directory = Path(where) if os.sep in str(where) else state_root() / str(where)
    path = directory / STATE_FILE
    try:
        data = json.loads(path.read_text())
        return LabState(
            name=data["name"],
            prefix=data["prefix"],
            kind=data["kind"],
            owner_pid=int(data["owner_pid"]),
            plan=plan_from_json(data["plan"]) if data.get("plan") else None,
            endpoints=tuple((Protocol(p), int(n)) for p, n in data.get("endpoints", [])),
            server_pid=data.get("server_pid"),
            source=tuple(data.get("source", [])),
        )
    except FileNotFoundError:
        raise LabStateError(f"no lab named {directory.name!r} (no {path})") from None
    except (ValueError, KeyError, TypeError) as error:
        raise LabStateError(f"{path}: unreadable lab description: {error}") from error


def list_states() -> list[LabState]:
    """Every lab with a readable description, by name."""
    root = state_root()
    if not root.is_dir():
        return []
    found = []
    for directory in sorted(root.iterdir()):
        try:
            found.append(load_state(directory))
        except LabStateError:
            continue
    return found


def remove_state(name: str) -> None:
    shutil.rmtree(state_root() / name, ignore_errors=True)


def take_lease(prefix: str, pid: int) -> None:
    LEASES.mkdir(parents=True, exist_ok=True)
    (LEASES / prefix).write_text(f"{pid}\n")


def drop_lease(prefix: str) -> None:
    (LEASES / prefix).unlink(missing_ok=True)


def lease_alive(prefix: str) -> bool:
    """Whether the process holding ``prefix`` still runs (no lease: nobody holds it)."""
    try:
        return process_alive(int((LEASES / prefix).read_text().strip()))
    except (OSError, ValueError):
        return False


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return False
