"""Bringing a lab up to a cluster, and taking labs down, also after a crash.

``sync`` is the one path from a cluster to a running lab, for ``lab up`` and for every step
the :class:`~policyctl.lab.engine.LabEngine` observes: plan, make the namespaces match
(``netns.apply_plan``), compile each node's ruleset for the cluster as the lab runs it and
apply the ones that changed through the enforcer, then the nodes' Service tables
(``lab.services``), so a Service never leads to a pod before its policy is in force. Order
matters for cleanup too: the lab's description is saved before anything is created, so
whatever a crash leaves behind is found.

``down_all`` removes every lab it can prove abandoned: those from ``lab up``, those whose
owning process is gone, and namespaces under ``pcl-`` that no live lab claims.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from policyctl.lab import netns
from policyctl.lab.rulesets import Applier, Compiler
from policyctl.lab.services import apply_services, service_ruleset
from policyctl.lab.state import (
    PREFIX_ROOT,
    LabState,
    drop_lease,
    lease_alive,
    list_states,
    load_state,
    process_alive,
    remove_state,
    save_state,
)
from policyctl.lab.topology import Cni, LabPlan, NodePlan, PlanError, lab_cluster, plan_lab
from policyctl.policy.diagnostics import PolicyctlError
from policyctl.policy.model import Family, Protocol
from policyctl.policy.cluster import Cluster

READY_FILE = "servers.ready"


class LabError(PolicyctlError):
    """The lab cannot be built for this cluster here; the message says why."""


def sync(
    state: LabState,
    cluster: Cluster,
    *,
    cni: Cni,
    families: Iterable[Family] | None,
    compiler: Compiler,
    applier: Applier,
    applied: dict[str, str],
) -> LabState:
    """Make the lab of ``state`` run ``cluster``; returns the state with the new plan (also
    saved). ``applied`` (node -> ruleset JSON last applied) is updated in place so unchanged
    rulesets are not re-applied."""
    try:
        plan = plan_lab(cluster, prefix=state.prefix, cni=cni, families=families)
    except PlanError as error:
        raise LabError(str(error)) from None
    new_state = dataclasses.replace(state, plan=plan)
    save_state(new_state)
    if state.plan is not None and state.plan.nodes != plan.nodes:
        applied.clear()
    netns.apply_plan(plan, previous=state.plan)
    running = lab_cluster(cluster, plan)
    changed: dict[str, tuple[NodePlan, str]] = {}
    for node in plan.nodes:
        ruleset = json.dumps(compiler(running, node.name), indent=1, sort_keys=True)
        if applied.get(node.name) != ruleset:
            changed[node.name] = (node, ruleset)

    def apply_one(item: tuple[NodePlan, str]) -> None:
        node, ruleset = item
        path = state.directory / f"ruleset-{node.name}.json"
        path.write_text(ruleset + "\n")
        applier(node.netns, node.name, path)
        applied[node.name] = ruleset

    # Nodes are independent: their enforcers run side by side, as on a cluster.
    with ThreadPoolExecutor(max_workers=max(len(changed), 1)) as pool:
        list(pool.map(apply_one, [changed[name] for name in sorted(changed)]))
    services = service_ruleset(plan)
    for node in plan.nodes:
        if applied.get(f"services:{node.name}") != services:
            apply_services(node.netns, services)
            applied[f"services:{node.name}"] = services
    return new_state


def start_servers(state: LabState, *, wait: float = 10.0) -> LabState:
    """Start the server daemon of a ``lab up`` lab inside its underlay namespace (so that
    teardown finds it there) and wait until it serves."""
    if state.plan is None:
        raise LabError(f"lab {state.name} has no plan yet")
    ready = state.directory / READY_FILE
    ready.unlink(missing_ok=True)
    process = subprocess.Popen(
        ["ip", "netns", "exec", state.plan.underlay_netns, sys.executable, "-m", "policyctl.lab.servers",
         str(state.directory)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(state.directory / "servers.log", "ab"),
        start_new_session=True,
    )
    new_state = dataclasses.replace(state, server_pid=process.pid)
    save_state(new_state)
    deadline = time.monotonic() + wait
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise LabError(f"the lab servers did not start (see {state.directory / 'servers.log'})")
        time.sleep(0.05)
    return new_state


def down(name: str) -> list[str]:
    """Remove the lab ``name``: its servers, namespaces (and so links, routes, nft tables)
    and description. Returns the namespaces removed."""
    state = load_state(name)
    if state.server_pid and process_alive(state.server_pid):
        netns.kill_pids([state.server_pid])
    removed = netns.teardown(state.prefix)
    remove_state(state.name)
    drop_lease(state.prefix)
    return removed


def down_all() -> list[str]:
    """Remove every abandoned lab and every ``pcl-`` namespace no live lab claims."""
    removed: list[str] = []
    claimed: set[str] = set()
    for state in list_states():
        if state.kind == "engine" and state.owner_pid != os.getpid() and process_alive(state.owner_pid):
            claimed.add(state.prefix)
            continue
        removed += down(state.name)
    leftovers = sorted({_prefix_of(n) for n in netns.list_netns(PREFIX_ROOT)} - claimed)
    for prefix in leftovers:
        if lease_alive(prefix):
            continue
        removed += netns.teardown(prefix)
        drop_lease(prefix)
    return removed


def _prefix_of(name: str) -> str:
    """``pcl-1a2b3c-node-x`` -> ``pcl-1a2b3c-``."""
    head, _, rest = name.partition(PREFIX_ROOT)
    return PREFIX_ROOT + rest.split("-", 1)[0] + "-"


def endpoints_of(cluster: Cluster, extra: Iterable[tuple[Protocol, int]] = ()) -> tuple[tuple[Protocol, int], ...]:
    """What ``lab up`` pods serve: every declared container port and numeric policy port,
    plus ``extra``; every protocol for each, as the probe-case spec asks of lab pods."""
    numbers = {c.port for p in cluster.pods for c in p.ports}
    for policy in cluster.policies:
        for rule in policy.ingress + policy.egress:
            for port in rule.ports:
                if isinstance(port.port, int):
                    numbers.add(port.port)
    numbers |= {n for _, n in extra}
    return tuple(sorted((protocol, n) for n in numbers for protocol in Protocol))


def describe(state: LabState) -> Mapping[str, Any]:
    """A lab as plain data, for ``lab status``."""
    plan: LabPlan | None = state.plan
    return {
        "name": state.name,
        "prefix": state.prefix,
        "kind": state.kind,
        "servers": bool(state.server_pid and process_alive(state.server_pid)),
        "cni": plan.cni.value if plan else None,
        "nodes": {n.name: {"netns": n.netns, "addresses": [str(a) for a in n.addresses]} for n in plan.nodes}
        if plan
        else {},
        "pods": {p.key: {"node": p.node, "netns": p.netns, "addresses": list(p.addresses)} for p in plan.pods}
        if plan
        else {},
    }
