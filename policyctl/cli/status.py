"""``policyctl status [POLICY]``: on how many nodes each policy is programmed, and how fast.

Read from the API server: the ``Programmed`` Events the agents publish (``policyctl agent
--publish-events``, one Event per policy and node, updated on each later programming), the
Nodes, and the policies themselves (NetworkPolicies, and the cluster-scoped kinds where their
CRDs are served), so a policy no agent has programmed yet shows as 0 of N nodes.

An Event says where and how fast a policy was last programmed; a node that has not yet
programmed the policy's latest change still shows its earlier Event until its agent catches
up (Events carry no generation of the policy).

Exit status: 0; with POLICY, 1 when it is not programmed on every node; 2 for unusable input
(no such policy, no API server).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import click

from policyctl.cli.inputs import EXIT_NO, EXIT_OK, emit_document, fail, input_errors, output_option
from policyctl.policy.suggest import did_you_mean

SCHEMA_VERSION = 1
_POLICY_LISTS = (
    ("NetworkPolicy", "/apis/networking.k8s.io/v1/networkpolicies"),
    ("ClusterNetworkPolicy", "/apis/policy.networking.k8s.io/v1beta1/clusternetworkpolicies"),
    ("ClusterNetworkPolicy", "/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies"),
    ("AdminNetworkPolicy", "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies"),
    ("BaselineAdminNetworkPolicy", "/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies"),
)


@dataclass(frozen=True, slots=True)
class PolicyStatus:
    """One policy: the nodes that programmed it (node -> seconds), out of ``total`` nodes."""

    policy: Any
    nodes: dict[str, float]
    last: float
    total: int

    @property
    def slowest(self) -> tuple[str, float] | None:
        return max(self.nodes.items(), key=lambda item: (item[1], item[0])) if self.nodes else None

    @property
    def everywhere(self) -> bool:
        return self.total > 0 and len(self.nodes) >= self.total


@click.command()
@click.argument("policy", required=False, metavar="[POLICY]")
@click.option(
    "--kubeconfig", default=None, metavar="FILE", help="Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config)."
)
@click.option("--context", default=None, help="Kubeconfig context.")
@output_option(("table", "json"))
def status(policy: str | None, kubeconfig: str | None, context: str | None, output: str) -> None:
    """Show on how many nodes each policy is programmed, and the slowest delay.

    \b
    POLICY is NAMESPACE/NAME (a NetworkPolicy) or KIND/NAME, e.g.
    ClusterNetworkPolicy/deny-lab; without it every policy is shown.

    \b
    Examples:
      policyctl status
      policyctl status shop/payments-ingress -o json
    """
    from policyctl.kubeapi.config import connect

    with input_errors():
        api = connect(kubeconfig=kubeconfig, context=context).api
        statuses = _statuses(api)
    if policy is not None:
        chosen = [s for s in statuses if _matches(s.policy, policy)]
        if not chosen:
            names = [n for s in statuses for n in _names(s.policy) if n]
            raise fail(f"no policy {policy!r} in the cluster or its Events{did_you_mean(policy, names)}")
        statuses = chosen
    if output == "json":
        emit_document({"schema_version": SCHEMA_VERSION, "policies": [_json(s) for s in statuses]}, "json")
    else:
        _table(statuses)
    if policy is not None:
        raise click.exceptions.Exit(EXIT_OK if all(s.everywhere for s in statuses) else EXIT_NO)


def _names(key: Any) -> tuple[str, ...]:
    """The spellings that name a policy: ``NAMESPACE/NAME`` for a NetworkPolicy, ``KIND/NAME``."""
    return (str(key), f"{key.namespace}/{key.name}" if key.kind == "NetworkPolicy" else "", f"{key.kind}/{key.name}")


def _matches(key: Any, text: str) -> bool:
    return text in _names(key)


def _statuses(api: Any) -> list[PolicyStatus]:
    from policyctl.agent.programmed import PolicyKey, read_event
    from policyctl.kubeapi.events import list_events, list_items

    total = len(list_items(api, "/api/v1/nodes"))
    known: set[Any] = set()
    for kind, path in _POLICY_LISTS:
        for item in list_items(api, path, missing_ok=True):
            meta = item.get("metadata") or {}
            known.add(PolicyKey(kind, str(meta.get("namespace") or ""), str(meta.get("name"))))
    nodes: dict[Any, dict[str, float]] = {key: {} for key in known}
    last: dict[Any, float] = {}
    for programmed in filter(None, (read_event(e) for e in list_events(api))):
        nodes.setdefault(programmed.policy, {})[programmed.node] = programmed.latency
        last[programmed.policy] = max(last.get(programmed.policy, 0.0), programmed.at)
    return [PolicyStatus(key, nodes[key], last.get(key, 0.0), total) for key in sorted(nodes)]


def _when(seconds: float) -> str | None:
    if not seconds:
        return None
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(status: PolicyStatus) -> dict[str, Any]:
    slowest = status.slowest
    return {
        "policy": str(status.policy),
        "kind": status.policy.kind,
        "namespace": status.policy.namespace or None,
        "name": status.policy.name,
        "programmed_nodes": len(status.nodes),
        "nodes": status.total,
        "slowest": None if slowest is None else {"node": slowest[0], "seconds": round(slowest[1], 6)},
        "latency_seconds": {node: round(seconds, 6) for node, seconds in sorted(status.nodes.items())},
        "last_programmed": _when(status.last),
    }


def _table(statuses: Iterable[PolicyStatus]) -> None:
    from rich.table import Table

    from policyctl.cli.inputs import console

    table = Table("policy", "programmed", "slowest", "last programmed")
    for s in statuses:
        slowest = s.slowest
        table.add_row(str(s.policy), f"{len(s.nodes)}/{s.total} nodes",
                      "-" if slowest is None else f"{slowest[1] * 1000:.0f} ms ({slowest[0]})", _when(s.last) or "-")
    console().print(table)
