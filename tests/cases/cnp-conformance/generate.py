"""Transcribe the network-policy-api conformance suite into probe cases.

Source: ``kubernetes-sigs/network-policy-api`` ``conformance/tests/*.go`` (the 24 ``ConformanceTest``
values, Admin and Baseline tiers of ClusterNetworkPolicy, standard and experimental features), the
policies each test applies from ``conformance/base/<tier>/*.yaml``, and the cluster every test runs
in, ``conformance/base/manifests.yaml``. Each test becomes one YAML file named after its
``ShortName``; the README maps tests and subtests to files and steps and lists every deliberate
difference.

Invariants:

* Expectations are upstream's own assertions and nothing else: each ``PokeServer(client, protocol,
  server.Status.PodIP, port, shouldConnect)`` call is one expected cell ``client -> server`` of the
  probe for ``port``/``protocol``, with ``shouldConnect`` as its value. Pairs upstream does not
  probe are not stated. Nothing here evaluates a policy, and nothing imports policyctl.
* Policy changes are replayed as upstream makes them: a subtest that patches a policy (rule swaps,
  a new action, priority or protocol list, a rule inserted) starts a step whose ``policies:``
  holds the whole patched object, which replaces the previous one by kind and name; upstream's
  changes persist from one subtest to the next, and so does the state replayed here. A deleted
  NetworkPolicy is a ``remove_policies`` entry, a namespace relabelled a ``namespace_labels`` one.
  When a test patches a policy before its first assertion, the manifest gets a step of its own.
* The cluster is upstream's: the five namespaces with their labels, the two replicas of each
  StatefulSet with the pod labels and named container ports of its template, the hostNetwork
  ``centaur`` pods with the ports upstream templates in (``HostNetworkPorts``, default range).
* Output is deterministic: running this again rewrites every file byte for byte and removes YAML
  files it no longer produces. ``--check`` only verifies that the files on disk match.
"""

from __future__ import annotations

import argparse
import copy
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
UPSTREAM_REPO = "kubernetes-sigs/network-policy-api"
UPSTREAM_COMMIT = "0eec1b0e5fa92715b4c0f4c48d3c8d2913ed2159"

Json = dict[str, Any]

CNP_API_VERSION = "policy.networking.k8s.io/v1alpha2"
NAME_LABEL = "kubernetes.io/metadata.name"
HOUSE_LABEL = "conformance-house"
OS_LABEL = "kubernetes.io/os"

# --- the cluster of conformance/base/manifests.yaml -------------------------------------------

NAMESPACE_PREFIX = "network-policy-conformance-"
#: StatefulSet name -> the house (namespace suffix and ``conformance-house`` label) it runs in.
STATEFULSETS = {
    "harry-potter": "gryffindor",
    "draco-malfoy": "slytherin",
    "cedric-diggory": "hufflepuff",
    "luna-lovegood": "ravenclaw",
    "centaur": "forbidden-forrest",
}
HOUSES = tuple(STATEFULSETS.values())
REPLICAS = 2
HOST_NETWORK_SET = "centaur"

#: The suite's default ``HostNetworkPortRangeStart`` and its eight ports (``HostNetworkPorts``).
HOST_NETWORK_PORTS = tuple(range(34345, 34345 + 8))
NODES = ("node-1", "node-2")
NODE_ADDRESSES = {"node-1": "172.18.0.2", "node-2": "172.18.0.3"}


def namespace(house: str) -> str:
    return NAMESPACE_PREFIX + house


def pod(name: str) -> str:
    """``harry-potter-0`` -> ``network-policy-conformance-gryffindor/harry-potter-0``."""
    statefulset, _, ordinal = name.rpartition("-")
    if statefulset not in STATEFULSETS or not ordinal.isdigit() or int(ordinal) >= REPLICAS:
        raise ValueError(f"{name!r} is not a pod of the conformance cluster")
    return f"{namespace(STATEFULSETS[statefulset])}/{name}"


def container_ports(statefulset: str) -> list[Json]:
    """The named ``containerPort`` entries of the StatefulSet's template. The agnhost servers on
    8080/TCP, 5353/UDP and 9003, 9005/SCTP declare no container port upstream, so none here."""
    if statefulset != HOST_NETWORK_SET:
        return [
            {"name": "web", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ]
    tcp0, tcp1, udp2, udp4 = (HOST_NETWORK_PORTS[i] for i in (0, 1, 2, 4))
    return [
        {"name": f"web-{tcp0}", "port": tcp0, "protocol": "TCP"},
        {"name": f"web-{tcp1}", "port": tcp1, "protocol": "TCP"},
        {"name": f"dns-{udp2}", "port": udp2, "protocol": "UDP"},
        {"name": f"dns-{udp4}", "port": udp4, "protocol": "UDP"},
    ]


def model(*, node_labels: bool) -> Json:
    """The inline model. Replica ``i`` of every StatefulSet is on ``NODES[i]`` (upstream leaves
    placement to the scheduler; two hostNetwork replicas serving the same ports cannot share a
    node). With ``node_labels`` the nodes carry their addresses and the labels a kubelet sets,
    which ``nodes`` peers select on."""
    nodes: Json | list[str]
    if node_labels:
        nodes = {
            node: {
                "addresses": [NODE_ADDRESSES[node]],
                "labels": {"kubernetes.io/hostname": node, OS_LABEL: "linux"},
            }
            for node in NODES
        }
    else:
        nodes = list(NODES)
    pods: Json = {}
    for statefulset, house in STATEFULSETS.items():
        for ordinal in range(REPLICAS):
            spec: Json = {
                "labels": {HOUSE_LABEL: house},
                "node": NODES[ordinal],
                "ports": container_ports(statefulset),
            }
            if statefulset == HOST_NETWORK_SET:
                spec["host_network"] = True
            pods[pod(f"{statefulset}-{ordinal}")] = spec
    return {
        "ip_families": ["IPv4"],
        "nodes": nodes,
        "namespaces": {namespace(house): {HOUSE_LABEL: house} for house in HOUSES},
        "pods": pods,
    }


# --- ClusterNetworkPolicy and NetworkPolicy as the manifests write them ------------------------


def name_is(house: str) -> Json:
    """``matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-<house>}``."""
    return {"matchLabels": {NAME_LABEL: namespace(house)}}


def house_is(house: str) -> Json:
    """``matchLabels: {conformance-house: <house>}``."""
    return {"matchLabels": {HOUSE_LABEL: house}}


def linux_nodes() -> Json:
    return {"matchLabels": {OS_LABEL: "linux"}}


def subject_namespaces(selector: Json) -> Json:
    return {"namespaces": selector}


def subject_pods(namespaces: Json, pods: Json) -> Json:
    return {"pods": {"namespaceSelector": namespaces, "podSelector": pods}}


def namespaces_peer(selector: Json) -> Json:
    return {"namespaces": selector}


def pods_peer(namespaces: Json, pods: Json) -> Json:
    return {"pods": {"namespaceSelector": namespaces, "podSelector": pods}}


def nodes_peer(selector: Json) -> Json:
    return {"nodes": selector}


def networks_peer(*cidrs: str) -> Json:
    return {"networks": list(cidrs)}


def port(protocol: str, number: int) -> Json:
    """``- <protocol>: {destinationPort: {number: N}}``; ``protocol`` is tcp, udp or sctp."""
    return {protocol: {"destinationPort": {"number": number}}}


def port_range(protocol: str, start: int, end: int) -> Json:
    return {protocol: {"destinationPort": {"range": {"start": start, "end": end}}}}


def named_port(name: str) -> Json:
    return {"destinationNamedPort": name}


def rule(name: str, action: str, peers: list[Json], protocols: list[Json] | None = None, *, key: str) -> Json:
    result: Json = {"name": name, "action": action, key: peers}
    if protocols:
        result["protocols"] = protocols
    return result


def ingress(name: str, action: str, *peers: Json, protocols: list[Json] | None = None) -> Json:
    return rule(name, action, list(peers), protocols, key="from")


def egress(name: str, action: str, *peers: Json, protocols: list[Json] | None = None) -> Json:
    return rule(name, action, list(peers), protocols, key="to")


def cnp(
    name: str,
    tier: str,
    priority: int,
    subject: Json,
    *,
    ingress_rules: list[Json] | None = None,
    egress_rules: list[Json] | None = None,
) -> Json:
    spec: Json = {"tier": tier, "priority": priority, "subject": subject}
    if ingress_rules:
        spec["ingress"] = ingress_rules
    if egress_rules:
        spec["egress"] = egress_rules
    return {"apiVersion": CNP_API_VERSION, "kind": "ClusterNetworkPolicy", "metadata": {"name": name}, "spec": spec}


# --- the shape of a transcribed test ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Poke:
    """``PokeServer(client, protocol, server.Status.PodIP, port, shouldConnect)``."""

    client: str
    protocol: str
    server: str
    port: int
    allowed: bool


def poke(client: str, protocol: str, server: str, number: int, allowed: bool) -> Poke:
    """Arguments in upstream's order; pods by their upstream names (``harry-potter-0``)."""
    return Poke(pod(client), protocol.upper(), pod(server), number, allowed)


@dataclass(frozen=True, slots=True)
class Step:
    """The cluster changes upstream makes, then the assertions that follow them. ``origin`` says
    which subtest (and which part of it) the step transcribes."""

    origin: str
    pokes: tuple[Poke, ...]
    policies: tuple[Json, ...] = ()
    remove_policies: tuple[str, ...] = ()
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpstreamTest:
    """One ``suite.ConformanceTest``."""

    short_name: str
    description: str
    source: str
    manifest: str
    features: tuple[str, ...]
    steps: tuple[Step, ...]
    subtests: tuple[str, ...]
    node_labels: bool = False

    @property
    def filename(self) -> str:
        return f"{self.short_name}.yaml"


STANDARD = ("ClusterNetworkPolicy",)
NAMED_PORTS = (*STANDARD, "ClusterNetworkPolicyNamedPorts")
NODE_PEERS = (*STANDARD, "ClusterNetworkPolicyEgressNodePeers")


class Replay:
    """Replays one upstream test: its manifest, then each subtest's changes and assertions."""

    def __init__(self, *manifest: Json) -> None:
        self._current = {_ref(p): p for p in manifest}
        self._policies: dict[str, Json] = {_ref(p): p for p in manifest}
        self._removals: list[str] = []
        self._labels: dict[str, dict[str, str]] = {}
        self._notes: list[str] = []
        self._manifest_pending = True
        self._subtest = ""
        self._part = 0
        self.subtests: list[str] = []
        self.steps: list[Step] = []

    def subtest(self, name: str) -> None:
        """``t.Run(name, ...)``."""
        self._subtest, self._part = name, 0
        self.subtests.append(name)

    def patch(self, name: str, change: Callable[[Json], None], note: str) -> None:
        """``GetClusterNetworkPolicy`` + ``DeepCopy`` + ``change`` + ``PatchClusterNetworkPolicy``."""
        ref = f"ClusterNetworkPolicy/{name}"
        if self._manifest_pending:
            self._flush((), origin="the manifest applied (no probes: the subtest below patches it first)")
        updated = copy.deepcopy(self._current[ref])
        change(updated["spec"])
        self._current[ref] = self._policies[ref] = updated
        self._notes.append(f"{name}: {note}")

    def delete_network_policy(self, ns: str, name: str) -> None:
        self._removals.append(f"{ns}/{name}")
        self._current.pop(f"NetworkPolicy/{ns}/{name}")
        self._notes.append(f"NetworkPolicy {ns}/{name} deleted")

    def set_namespace_labels(self, house: str, labels: Mapping[str, str]) -> None:
        """``SetLabels(labels)`` + ``PatchNamespace``; the API server keeps the name label."""
        self._labels[namespace(house)] = dict(labels)
        self._notes.append(f"namespace {namespace(house)} labels set to {dict(labels)}")

    def check(self, *pokes: Poke) -> None:
        """The ``PokeServer`` calls of the current subtest up to its next cluster change."""
        self._part += 1
        origin = f't.Run("{self._subtest}")'
        if self._manifest_pending:
            origin = f"the manifest applied, then {origin}"
        if self._part > 1:
            origin += f", part {self._part}"
        if self._notes:
            origin += f" [{'; '.join(self._notes)}]"
        self._flush(pokes, origin=origin)

    def _flush(self, pokes: tuple[Poke, ...], *, origin: str) -> None:
        self.steps.append(
            Step(
                origin,
                pokes,
                tuple(self._policies.values()),
                tuple(self._removals),
                dict(self._labels),
            )
        )
        self._policies, self._removals, self._labels, self._notes = {}, [], {}, []
        self._manifest_pending = False

    def test(
        self, short_name: str, description: str, source: str, manifest: str, features: tuple[str, ...],
        *, node_labels: bool = False,
    ) -> UpstreamTest:
        return UpstreamTest(
            short_name, description, f"conformance/tests/{source}", f"conformance/base/{manifest}",
            features, tuple(self.steps), tuple(self.subtests), node_labels,
        )


def _ref(policy: Json) -> str:
    meta = policy["metadata"]
    name = f"{meta['namespace']}/{meta['name']}" if "namespace" in meta else meta["name"]
    return f"{policy['kind']}/{name}"


def swap(direction: str, i: int, j: int) -> Callable[[Json], None]:
    """``rules[i], rules[j] = rules[j], rules[i]`` on ``spec.ingress`` or ``spec.egress``."""

    def change(spec: Json) -> None:
        rules = spec[direction]
        rules[i], rules[j] = rules[j], rules[i]

    return change


def swap_both(i: int, j: int) -> Callable[[Json], None]:
    def change(spec: Json) -> None:
        swap("egress", i, j)(spec)
        swap("ingress", i, j)(spec)

    return change


def set_protocols(direction: str, index: int, protocols: list[Json]) -> Callable[[Json], None]:
    def change(spec: Json) -> None:
        spec[direction][index]["protocols"] = protocols

    return change


def set_action(direction: str, index: int, action: str) -> Callable[[Json], None]:
    def change(spec: Json) -> None:
        spec[direction][index]["action"] = action

    return change


def set_priority(priority: int) -> Callable[[Json], None]:
    def change(spec: Json) -> None:
        spec["priority"] = priority

    return change


def prepend_egress(new_rule: Json) -> Callable[[Json], None]:
    def change(spec: Json) -> None:
        spec["egress"] = [new_rule, *spec["egress"]]

    return change


TESTS: list[Callable[[], UpstreamTest]] = []


def upstream(func: Callable[[], UpstreamTest]) -> Callable[[], UpstreamTest]:
    TESTS.append(func)
    return func


# --- the policies of conformance/base ------------------------------------------------------------


def admin_ingress_tcp() -> Json:
    """``admin_tier/standard-ingress-tcp-rules.yaml``."""
    return cnp("ingress-tcp", "Admin", 3, subject_namespaces(name_is("gryffindor")), ingress_rules=[
        ingress("allow-from-ravenclaw-everything", "Accept", namespaces_peer(name_is("ravenclaw"))),
        ingress("deny-from-ravenclaw-everything", "Deny", namespaces_peer(name_is("ravenclaw"))),
        ingress("pass-from-ravenclaw-everything", "Pass", namespaces_peer(name_is("ravenclaw"))),
        ingress("deny-from-slytherin-at-port-80", "Deny", namespaces_peer(name_is("slytherin")),
                protocols=[port("tcp", 80)]),
        ingress("pass-from-slytherin-at-port-80", "Pass", namespaces_peer(name_is("slytherin")),
                protocols=[port("tcp", 80)]),
        ingress("allow-from-hufflepuff-at-port-80", "Accept", namespaces_peer(name_is("hufflepuff")),
                protocols=[port("tcp", 80)]),
        ingress("deny-from-hufflepuff-everything-else", "Deny", namespaces_peer(name_is("hufflepuff"))),
    ])


def admin_ingress_udp() -> Json:
    """``admin_tier/standard-ingress-udp-rules.yaml``."""
    return cnp("ingress-udp", "Admin", 4, subject_namespaces(name_is("hufflepuff")), ingress_rules=[
        ingress("allow-from-ravenclaw-everything", "Accept", namespaces_peer(name_is("ravenclaw"))),
        ingress("deny-from-ravenclaw-everything", "Deny", namespaces_peer(name_is("ravenclaw"))),
        ingress("pass-from-ravenclaw-everything", "Pass", namespaces_peer(name_is("ravenclaw"))),
        ingress("deny-from-slytherin-at-port-5353", "Deny", namespaces_peer(name_is("slytherin")),
                protocols=[port("udp", 5353)]),
        ingress("pass-from-slytherin-at-port-5353", "Pass", namespaces_peer(name_is("slytherin")),
                protocols=[port("udp", 5353)]),
        ingress("allow-from-gryffindor-at-port-53", "Accept", namespaces_peer(name_is("gryffindor")),
                protocols=[port("udp", 53)]),
        ingress("deny-from-gryffindor-everything-else", "Deny", namespaces_peer(name_is("gryffindor"))),
    ])


def admin_ingress_sctp() -> Json:
    """``admin_tier/standard-ingress-sctp-rules.yaml``."""
    return cnp("ingress-sctp", "Admin", 5, subject_namespaces(name_is("ravenclaw")), ingress_rules=[
        ingress("allow-from-gryffindor-everything", "Accept", namespaces_peer(name_is("gryffindor"))),
        ingress("deny-from-gryffindor-everything", "Deny", namespaces_peer(name_is("gryffindor"))),
        ingress("pass-from-gryffindor-everything", "Pass", namespaces_peer(name_is("gryffindor"))),
        ingress("deny-from-slytherin-at-port-9003", "Deny", namespaces_peer(name_is("slytherin")),
                protocols=[port("sctp", 9003)]),
        ingress("pass-from-slytherin-at-port-9003", "Pass", namespaces_peer(name_is("slytherin")),
                protocols=[port("sctp", 9003)]),
        ingress("allow-from-hufflepuff-at-port-9003", "Accept", namespaces_peer(name_is("hufflepuff")),
                protocols=[port("sctp", 9003)]),
        ingress("deny-from-hufflepuff-everything-else", "Deny", namespaces_peer(name_is("hufflepuff"))),
    ])


def admin_egress_tcp() -> Json:
    """``admin_tier/standard-egress-tcp-rules.yaml``."""
    return cnp("egress-tcp", "Admin", 6, subject_namespaces(name_is("gryffindor")), egress_rules=[
        egress("allow-to-ravenclaw-everything", "Accept", namespaces_peer(name_is("ravenclaw"))),
        egress("deny-to-ravenclaw-everything", "Deny", namespaces_peer(name_is("ravenclaw"))),
        egress("pass-to-ravenclaw-everything", "Pass", namespaces_peer(name_is("ravenclaw"))),
        egress("deny-to-slytherin-at-port-80", "Deny", namespaces_peer(name_is("slytherin")),
               protocols=[port("tcp", 80)]),
        egress("pass-to-slytherin-at-port-80", "Pass", namespaces_peer(name_is("slytherin")),
               protocols=[port("tcp", 80)]),
        egress("allow-to-hufflepuff-at-port-8080", "Accept", namespaces_peer(name_is("hufflepuff")),
               protocols=[port("tcp", 8080)]),
        egress("deny-to-hufflepuff-everything-else", "Deny", namespaces_peer(name_is("hufflepuff"))),
    ])


def admin_egress_udp() -> Json:
    """``admin_tier/standard-egress-udp-rules.yaml``."""
    return cnp("egress-udp", "Admin", 7, subject_namespaces(name_is("hufflepuff")), egress_rules=[
        egress("allow-to-ravenclaw-everything", "Accept", namespaces_peer(name_is("ravenclaw"))),
        egress("deny-to-ravenclaw-everything", "Deny", namespaces_peer(name_is("ravenclaw"))),
        egress("pass-to-ravenclaw-everything", "Pass", namespaces_peer(name_is("ravenclaw"))),
        egress("deny-to-slytherin-at-port-5353", "Deny", namespaces_peer(name_is("slytherin")),
               protocols=[port("udp", 5353)]),
        egress("pass-to-slytherin-at-port-5353", "Pass", namespaces_peer(name_is("slytherin")),
               protocols=[port("udp", 5353)]),
        egress("allow-to-gryffindor-at-port-53", "Accept", namespaces_peer(name_is("gryffindor")),
               protocols=[port("udp", 53)]),
        egress("deny-to-gryffindor-everything-else", "Deny", namespaces_peer(name_is("gryffindor"))),
    ])


def admin_egress_sctp() -> Json:
    """``admin_tier/standard-egress-sctp-rules.yaml``."""
    return cnp("egress-sctp", "Admin", 8, subject_namespaces(name_is("ravenclaw")), egress_rules=[
        egress("allow-to-gryffindor-everything", "Accept", namespaces_peer(name_is("gryffindor"))),
        egress("deny-to-gryffindor-everything", "Deny", namespaces_peer(name_is("gryffindor"))),
        egress("pass-to-gryffindor-everything", "Pass", namespaces_peer(name_is("gryffindor"))),
        egress("deny-to-slytherin-at-port-9003", "Deny", namespaces_peer(name_is("slytherin")),
               protocols=[port("sctp", 9003)]),
        egress("pass-to-slytherin-at-port-9003", "Pass", namespaces_peer(name_is("slytherin")),
               protocols=[port("sctp", 9003)]),
        egress("allow-to-hufflepuff-at-port-9003", "Accept", namespaces_peer(name_is("hufflepuff")),
               protocols=[port("sctp", 9003)]),
        egress("deny-to-hufflepuff-everything-else", "Deny", namespaces_peer(name_is("hufflepuff"))),
    ])


def three_protocols(tcp: int, udp: int, sctp: int) -> list[Json]:
    return [port("tcp", tcp), port("udp", udp), port("sctp", sctp)]


def admin_gress() -> Json:
    """``admin_tier/standard-gress-rules-combined.yaml``."""
    return cnp(
        "gress-rules", "Admin", 15, subject_namespaces(name_is("gryffindor")),
        egress_rules=[
            egress("allow-to-ravenclaw-everything", "Accept", namespaces_peer(name_is("ravenclaw"))),
            egress("deny-to-ravenclaw-everything", "Deny", namespaces_peer(name_is("ravenclaw"))),
            egress("pass-to-ravenclaw-everything", "Pass", namespaces_peer(name_is("ravenclaw"))),
            egress("deny-to-slytherin-at-ports-80-53-9003", "Deny", namespaces_peer(name_is("slytherin")),
                   protocols=three_protocols(80, 53, 9003)),
            egress("pass-to-slytherin-at-port-80-53-9003", "Pass", namespaces_peer(name_is("slytherin")),
                   protocols=three_protocols(80, 53, 9003)),
            egress("allow-to-hufflepuff-at-ports-8080-5353-9003", "Accept", namespaces_peer(name_is("hufflepuff")),
                   protocols=three_protocols(8080, 5353, 9003)),
            egress("deny-to-hufflepuff-everything-else", "Deny", namespaces_peer(name_is("hufflepuff"))),
        ],
        ingress_rules=[
            ingress("allow-from-ravenclaw-everything", "Accept", namespaces_peer(name_is("ravenclaw"))),
            ingress("deny-from-ravenclaw-everything", "Deny", namespaces_peer(name_is("ravenclaw"))),
            ingress("pass-from-ravenclaw-everything", "Pass", namespaces_peer(name_is("ravenclaw"))),
            ingress("deny-from-slytherin-at-port-80-53-9003", "Deny", namespaces_peer(name_is("slytherin")),
                    protocols=three_protocols(80, 53, 9003)),
            ingress("pass-from-slytherin-at-port-80-53-9003", "Pass", namespaces_peer(name_is("slytherin")),
                    protocols=three_protocols(80, 53, 9003)),
            ingress("allow-from-hufflepuff-at-port-80-5353-9003", "Accept", namespaces_peer(name_is("hufflepuff")),
                    protocols=three_protocols(80, 5353, 9003)),
            ingress("deny-from-hufflepuff-everything-else", "Deny", namespaces_peer(name_is("hufflepuff"))),
        ],
    )


def gryffindor_pods() -> Json:
    return subject_pods(house_is("gryffindor"), house_is("gryffindor"))


def slytherin_pods() -> Json:
    return pods_peer(house_is("slytherin"), house_is("slytherin"))


def admin_priority_field() -> tuple[Json, Json, Json]:
    """``admin_tier/standard-priority-field.yaml``: two Admin policies and a Baseline one."""
    deny_50 = cnp(
        "priority-50-example", "Admin", 50, gryffindor_pods(),
        ingress_rules=[ingress("deny-all-ingress-from-slytherin", "Deny", slytherin_pods())],
        egress_rules=[egress("deny-all-egress-to-slytherin", "Deny", slytherin_pods())],
    )
    pass_60 = cnp(
        "old-priority-60-new-priority-40-example", "Admin", 60, gryffindor_pods(),
        ingress_rules=[ingress("pass-all-ingress-from-slytherin", "Pass", slytherin_pods())],
        egress_rules=[egress("pass-all-egress-to-slytherin", "Pass", slytherin_pods())],
    )
    baseline = cnp(
        "default", "Baseline", 10, gryffindor_pods(),
        ingress_rules=[ingress("allow-all-ingress-from-slytherin", "Accept", slytherin_pods())],
        egress_rules=[egress("allow-all-egress-to-slytherin", "Accept", slytherin_pods())],
    )
    return deny_50, pass_60, baseline


INTEGRATION_NETWORK_POLICY = ("network-policy-conformance-gryffindor", "allow-gress-from-to-slytherin-to-gryffindor")


def api_integration() -> tuple[Json, Json, Json]:
    """``api_integration/standard-anp-np-banp.yaml``. The NetworkPolicy's ``podSelector:`` is
    null there, which the API server decodes as the empty selector written here."""
    admin = cnp(
        "pass-example", "Admin", 10, subject_namespaces(house_is("gryffindor")),
        ingress_rules=[ingress("deny-all-ingress-from-slytherin", "Deny", namespaces_peer(house_is("slytherin")))],
        egress_rules=[egress("deny-all-egress-to-slytherin", "Deny", namespaces_peer(house_is("slytherin")))],
    )
    ns, name = INTEGRATION_NETWORK_POLICY
    network_policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespaceSelector": house_is("slytherin")}]}],
            "egress": [{"to": [{"namespaceSelector": house_is("slytherin")}]}],
        },
    }
    baseline = cnp(
        "default", "Baseline", 10, subject_namespaces(house_is("gryffindor")),
        ingress_rules=[ingress("deny-all-ingress-from-slytherin", "Deny", namespaces_peer(house_is("slytherin")))],
        egress_rules=[egress("deny-all-egress-to-slytherin", "Deny", namespaces_peer(house_is("slytherin")))],
    )
    return admin, network_policy, baseline


def admin_egress_inline_cidr() -> Json:
    """``admin_tier/standard-egress-inline-cidr-rules.yaml``."""
    return cnp("inline-cidr-as-peers-example", "Admin", 85, gryffindor_pods(), egress_rules=[
        egress("allow-egress-to-slytherin", "Accept", slytherin_pods()),
        egress("deny-egress-to-internet", "Deny", networks_peer("0.0.0.0/0", "::/0")),
    ])


def admin_egress_node_peers() -> Json:
    """``admin_tier/experimental-egress-selector-rules.yaml`` with upstream's default
    ``HostNetworkPorts`` substituted."""
    hp = HOST_NETWORK_PORTS
    return cnp("node-and-cidr-as-peers-example", "Admin", 75, gryffindor_pods(), egress_rules=[
        egress(f"allow-egress-to-{hp[0]}-on-nodes", "Accept", nodes_peer(linux_nodes()),
               protocols=[port("tcp", hp[0])]),
        egress(f"pass-egress-to-{hp[2]}-on-nodes", "Pass", nodes_peer(linux_nodes()),
               protocols=[port("udp", hp[2])]),
        egress("deny-egress-to-slytherin-and-nodes-and-internet", "Deny", slytherin_pods(),
               nodes_peer(linux_nodes()), networks_peer("0.0.0.0/0", "::/0")),
    ])


def baseline_ingress_tcp() -> Json:
    """``baseline_tier/standard-ingress-tcp-rules.yaml``."""
    return cnp("default", "Baseline", 10, subject_namespaces(name_is("gryffindor")), ingress_rules=[
        ingress("allow-from-ravenclaw-everything", "Accept", namespaces_peer(name_is("ravenclaw"))),
        ingress("deny-from-ravenclaw-everything", "Deny", namespaces_peer(name_is("ravenclaw"))),
        ingress("deny-from-slytherin-at-port-80", "Deny", namespaces_peer(name_is("slytherin")),
                protocols=[port("tcp", 80)]),
        ingress("allow-from-hufflepuff-at-port-80", "Accept", namespaces_peer(name_is("hufflepuff")),
                protocols=[port("tcp", 80)]),
        ingress("deny-from-hufflepuff-everything-else", "Deny", namespaces_peer(name_is("hufflepuff"))),
    ])


def baseline_ingress_udp() -> Json:
    """``baseline_tier/standard-ingress-udp-rules.yaml``."""
    return cnp("default", "Baseline", 10, subject_namespaces(name_is("hufflepuff")), ingress_rules=[
        ingress("allow-from-ravenclaw-everything", "Accept", namespaces_peer(name_is("ravenclaw"))),
        ingress("deny-from-ravenclaw-everything", "Deny", namespaces_peer(name_is("ravenclaw"))),
        ingress("deny-from-slytherin-at-port-5353", "Deny", namespaces_peer(name_is("slytherin")),
                protocols=[port("udp", 5353)]),
        ingress("allow-from-gryffindor-at-port-53", "Accept", namespaces_peer(name_is("gryffindor")),
                protocols=[port("udp", 53)]),
        ingress("deny-from-gryffindor-everything-else", "Deny", namespaces_peer(name_is("gryffindor"))),
    ])


def baseline_ingress_sctp() -> Json:
    """``baseline_tier/standard-ingress-sctp-rules.yaml``."""
    return cnp("default", "Baseline", 10, subject_namespaces(name_is("ravenclaw")), ingress_rules=[
        ingress("allow-from-gryffindor-everything", "Accept", namespaces_peer(name_is("gryffindor"))),
        ingress("deny-from-gryffindor-everything", "Deny", namespaces_peer(name_is("gryffindor"))),
        ingress("deny-from-slytherin-at-port-9003", "Deny", namespaces_peer(name_is("slytherin")),
                protocols=[port("sctp", 9003)]),
        ingress("allow-from-hufflepuff-at-port-9003", "Accept", namespaces_peer(name_is("hufflepuff")),
                protocols=[port("sctp", 9003)]),
        ingress("deny-from-hufflepuff-everything-else", "Deny", namespaces_peer(name_is("hufflepuff"))),
    ])


def baseline_egress_tcp() -> Json:
    """``baseline_tier/standard-egress-tcp-rules.yaml``."""
    return cnp("default", "Baseline", 10, subject_namespaces(name_is("gryffindor")), egress_rules=[
        egress("allow-to-ravenclaw-everything", "Accept", namespaces_peer(name_is("ravenclaw"))),
        egress("deny-to-ravenclaw-everything", "Deny", namespaces_peer(name_is("ravenclaw"))),
        egress("deny-to-slytherin-at-port-80", "Deny", namespaces_peer(name_is("slytherin")),
               protocols=[port("tcp", 80)]),
        egress("allow-to-hufflepuff-at-port-8080", "Accept", namespaces_peer(name_is("hufflepuff")),
               protocols=[port("tcp", 8080)]),
        egress("deny-to-hufflepuff-everything-else", "Deny", namespaces_peer(name_is("hufflepuff"))),
    ])


def baseline_egress_udp() -> Json:
    """``baseline_tier/standard-egress-udp-rules.yaml``."""
    return cnp("default", "Baseline", 10, subject_namespaces(name_is("hufflepuff")), egress_rules=[
        egress("allow-to-ravenclaw-everything", "Accept", namespaces_peer(name_is("ravenclaw"))),
        egress("deny-to-ravenclaw-everything", "Deny", namespaces_peer(name_is("ravenclaw"))),
        egress("deny-to-slytherin-at-port-5353", "Deny", namespaces_peer(name_is("slytherin")),
               protocols=[port("udp", 5353)]),
        egress("allow-to-gryffindor-at-port-53", "Accept", namespaces_peer(name_is("gryffindor")),
               protocols=[port("udp", 53)]),
        egress("deny-to-gryffindor-everything-else", "Deny", namespaces_peer(name_is("gryffindor"))),
    ])


def baseline_egress_sctp() -> Json:
    """``baseline_tier/standard-egress-sctp-rules.yaml``."""
    return cnp("default", "Baseline", 10, subject_namespaces(name_is("ravenclaw")), egress_rules=[
        egress("allow-to-gryffindor-everything", "Accept", namespaces_peer(name_is("gryffindor"))),
        egress("deny-to-gryffindor-everything", "Deny", namespaces_peer(name_is("gryffindor"))),
        egress("deny-to-slytherin-at-port-9003", "Deny", namespaces_peer(name_is("slytherin")),
               protocols=[port("sctp", 9003)]),
        egress("allow-to-hufflepuff-at-port-9003", "Accept", namespaces_peer(name_is("hufflepuff")),
               protocols=[port("sctp", 9003)]),
        egress("deny-to-hufflepuff-everything-else", "Deny", namespaces_peer(name_is("hufflepuff"))),
    ])


def baseline_gress() -> Json:
    """``baseline_tier/standard-gress-rules-combined.yaml`` (its Accept rule towards hufflepuff is
    named for two ports but lists three protocols, as upstream writes it)."""
    return cnp(
        "default", "Baseline", 10, subject_namespaces(name_is("gryffindor")),
        egress_rules=[
            egress("allow-to-ravenclaw-everything", "Accept", namespaces_peer(name_is("ravenclaw"))),
            egress("deny-to-ravenclaw-everything", "Deny", namespaces_peer(name_is("ravenclaw"))),
            egress("deny-to-slytherin-at-ports-80-53-9003", "Deny", namespaces_peer(name_is("slytherin")),
                   protocols=three_protocols(80, 53, 9003)),
            egress("allow-to-hufflepuff-at-ports-8080-5353", "Accept", namespaces_peer(name_is("hufflepuff")),
                   protocols=three_protocols(8080, 5353, 9003)),
            egress("deny-to-hufflepuff-everything-else", "Deny", namespaces_peer(name_is("hufflepuff"))),
        ],
        ingress_rules=[
            ingress("allow-from-ravenclaw-everything", "Accept", namespaces_peer(name_is("ravenclaw"))),
            ingress("deny-from-ravenclaw-everything", "Deny", namespaces_peer(name_is("ravenclaw"))),
            ingress("deny-from-slytherin-at-port-80-53-9003", "Deny", namespaces_peer(name_is("slytherin")),
                    protocols=three_protocols(80, 53, 9003)),
            ingress("allow-from-hufflepuff-at-port-80-5353-9003", "Accept", namespaces_peer(name_is("hufflepuff")),
                    protocols=three_protocols(80, 5353, 9003)),
            ingress("deny-from-hufflepuff-everything-else", "Deny", namespaces_peer(name_is("hufflepuff"))),
        ],
    )


def baseline_egress_inline_cidr() -> Json:
    """``baseline_tier/standard-egress-inline-cidr-rules.yaml``."""
    return cnp("default", "Baseline", 10, subject_namespaces(name_is("gryffindor")), egress_rules=[
        egress("allow-egress-to-slytherin", "Accept", slytherin_pods()),
        egress("deny-egress-to-internet", "Deny", networks_peer("0.0.0.0/0", "::/0")),
    ])


def baseline_egress_node_peers() -> Json:
    """``baseline_tier/experimental-egress-selector-rules.yaml`` with upstream's default
    ``HostNetworkPorts`` substituted."""
    hp = HOST_NETWORK_PORTS
    return cnp("default", "Baseline", 10, subject_namespaces(name_is("gryffindor")), egress_rules=[
        egress(f"allow-egress-to-{hp[0]}-on-nodes", "Accept", nodes_peer(linux_nodes()),
               protocols=[port_range("tcp", hp[0], hp[1])]),
        egress("deny-egress-to-nodes-and-internet", "Deny", nodes_peer(linux_nodes()),
               networks_peer("0.0.0.0/0", "::/0")),
    ])


# --- the transcriptions: Admin tier ------------------------------------------------------------


@upstream
def admin_tier_ingress_tcp() -> UpstreamTest:
    r = Replay(admin_ingress_tcp())
    r.subtest("Should support an 'allow-ingress' policy for TCP protocol; ensure rule ordering is respected")
    r.check(poke("luna-lovegood-0", "tcp", "harry-potter-0", 80, True),
            poke("luna-lovegood-1", "tcp", "harry-potter-0", 8080, True))
    r.subtest("Should support an 'allow-ingress' policy for TCP protocol at the specified port")
    r.check(poke("cedric-diggory-0", "tcp", "harry-potter-1", 80, True),
            poke("cedric-diggory-1", "tcp", "harry-potter-1", 8080, False))
    r.subtest("Should support an 'deny-ingress' policy for TCP protocol; ensure rule ordering is respected")
    r.patch("ingress-tcp", swap("ingress", 0, 1), "ingress rules 0 and 1 swapped")
    r.check(poke("luna-lovegood-0", "tcp", "harry-potter-1", 80, False),
            poke("luna-lovegood-1", "tcp", "harry-potter-1", 8080, False))
    r.subtest("Should support a 'deny-ingress' policy for TCP protocol at the specified port")
    r.check(poke("draco-malfoy-0", "tcp", "harry-potter-0", 80, False),
            poke("draco-malfoy-1", "tcp", "harry-potter-0", 8080, True))
    r.subtest("Should support an 'pass-ingress' policy for TCP protocol; ensure rule ordering is respected")
    r.patch("ingress-tcp", swap("ingress", 0, 2), "ingress rules 0 and 2 swapped")
    r.check(poke("luna-lovegood-0", "tcp", "harry-potter-0", 80, True),
            poke("luna-lovegood-1", "tcp", "harry-potter-0", 8080, True))
    r.subtest("Should support a 'pass-ingress' policy for TCP protocol at the specified port")
    r.patch("ingress-tcp", swap("ingress", 3, 4), "ingress rules 3 and 4 swapped")
    r.check(poke("draco-malfoy-0", "tcp", "harry-potter-0", 80, True),
            poke("draco-malfoy-1", "tcp", "harry-potter-0", 8080, True))
    return r.test(
        "CNPAdminTierIngressTCP",
        "Tests support for ingress traffic (TCP protocol) using cluster network policy API based on a server "
        "and client model",
        "admin-network-policy-standard-ingress-tcp-rules.go", "admin_tier/standard-ingress-tcp-rules.yaml", STANDARD,
    )


@upstream
def admin_tier_ingress_udp() -> UpstreamTest:
    r = Replay(admin_ingress_udp())
    r.subtest("Should support an 'allow-ingress' policy for UDP protocol; ensure rule ordering is respected")
    r.check(poke("luna-lovegood-0", "udp", "cedric-diggory-0", 53, True),
            poke("luna-lovegood-1", "udp", "cedric-diggory-0", 5353, True))
    r.subtest("Should support an 'allow-ingress' policy for UDP protocol at the specified port")
    r.check(poke("harry-potter-0", "udp", "cedric-diggory-1", 53, True),
            poke("harry-potter-1", "udp", "cedric-diggory-1", 5353, False))
    r.subtest("Should support an 'deny-ingress' policy for UDP protocol; ensure rule ordering is respected")
    r.patch("ingress-udp", swap("ingress", 0, 1), "ingress rules 0 and 1 swapped")
    r.check(poke("luna-lovegood-0", "udp", "cedric-diggory-1", 53, False),
            poke("luna-lovegood-1", "udp", "cedric-diggory-1", 5353, False))
    r.subtest("Should support a 'deny-ingress' policy for UDP protocol at the specified port")
    r.check(poke("draco-malfoy-0", "udp", "cedric-diggory-0", 5353, False),
            poke("draco-malfoy-1", "udp", "cedric-diggory-0", 53, True))
    r.subtest("Should support an 'pass-ingress' policy for UDP protocol; ensure rule ordering is respected")
    r.patch("ingress-udp", swap("ingress", 0, 2), "ingress rules 0 and 2 swapped")
    r.check(poke("luna-lovegood-0", "udp", "cedric-diggory-1", 5353, True),
            poke("luna-lovegood-1", "udp", "cedric-diggory-1", 53, True))
    r.subtest("Should support a 'pass-ingress' policy for UDP protocol at the specified port")
    r.patch("ingress-udp", swap("ingress", 3, 4), "ingress rules 3 and 4 swapped")
    r.check(poke("draco-malfoy-0", "udp", "cedric-diggory-0", 5353, True),
            poke("draco-malfoy-1", "udp", "cedric-diggory-0", 53, True))
    return r.test(
        "CNPAdminTierIngressUDP",
        "Tests support for ingress traffic (UDP protocol) using cluster network policy API based on a server "
        "and client model",
        "admin-network-policy-standard-ingress-udp-rules.go", "admin_tier/standard-ingress-udp-rules.yaml", STANDARD,
    )


@upstream
def admin_tier_ingress_sctp() -> UpstreamTest:
    r = Replay(admin_ingress_sctp())
    r.subtest("Should support an 'allow-ingress' policy for SCTP protocol; ensure rule ordering is respected")
    r.check(poke("harry-potter-0", "sctp", "luna-lovegood-0", 9003, True),
            poke("harry-potter-1", "sctp", "luna-lovegood-0", 9005, True))
    r.subtest("Should support an 'allow-ingress' policy for SCTP protocol at the specified port")
    r.check(poke("cedric-diggory-0", "sctp", "luna-lovegood-1", 9003, True),
            poke("cedric-diggory-1", "sctp", "luna-lovegood-1", 9005, False))
    r.subtest("Should support an 'deny-ingress' policy for SCTP protocol; ensure rule ordering is respected")
    r.patch("ingress-sctp", swap("ingress", 0, 1), "ingress rules 0 and 1 swapped")
    r.check(poke("harry-potter-0", "sctp", "luna-lovegood-1", 9003, False),
            poke("harry-potter-1", "sctp", "luna-lovegood-1", 9005, False))
    r.subtest("Should support a 'deny-ingress' policy for SCTP protocol at the specified port")
    r.check(poke("draco-malfoy-0", "sctp", "luna-lovegood-0", 9003, False),
            poke("draco-malfoy-1", "sctp", "luna-lovegood-0", 9005, True))
    r.subtest("Should support an 'pass-ingress' policy for SCTP protocol; ensure rule ordering is respected")
    r.patch("ingress-sctp", swap("ingress", 0, 2), "ingress rules 0 and 2 swapped")
    r.check(poke("harry-potter-0", "sctp", "luna-lovegood-1", 9003, True),
            poke("harry-potter-1", "sctp", "luna-lovegood-1", 9005, True))
    r.subtest("Should support a 'pass-ingress' policy for SCTP protocol at the specified port")
    r.patch("ingress-sctp", swap("ingress", 3, 4), "ingress rules 3 and 4 swapped")
    r.check(poke("draco-malfoy-0", "sctp", "luna-lovegood-0", 9003, True),
            poke("draco-malfoy-1", "sctp", "luna-lovegood-0", 9005, True))
    return r.test(
        "CNPAdminTierIngressSCTP",
        "Tests support for ingress traffic (SCTP protocol) using cluster network policy API based on a server "
        "and client model",
        "admin-network-policy-standard-ingress-sctp-rules.go", "admin_tier/standard-ingress-sctp-rules.yaml",
        STANDARD,
    )


@upstream
def admin_tier_egress_tcp() -> UpstreamTest:
    r = Replay(admin_egress_tcp())
    r.subtest("Should support an 'allow-egress' policy for TCP protocol; ensure rule ordering is respected")
    r.check(poke("harry-potter-0", "tcp", "luna-lovegood-0", 80, True),
            poke("harry-potter-1", "tcp", "luna-lovegood-0", 8080, True))
    r.subtest("Should support an 'allow-egress' policy for TCP protocol at the specified port")
    r.check(poke("harry-potter-0", "tcp", "cedric-diggory-1", 8080, True),
            poke("harry-potter-1", "tcp", "cedric-diggory-1", 80, False))
    r.subtest("Should support an 'deny-egress' policy for TCP protocol; ensure rule ordering is respected")
    r.patch("egress-tcp", swap("egress", 0, 1), "egress rules 0 and 1 swapped")
    r.check(poke("harry-potter-0", "tcp", "luna-lovegood-1", 80, False),
            poke("harry-potter-1", "tcp", "luna-lovegood-1", 8080, False))
    r.subtest("Should support a 'deny-egress' policy for TCP protocol at the specified port")
    r.check(poke("harry-potter-0", "tcp", "draco-malfoy-0", 80, False),
            poke("harry-potter-1", "tcp", "draco-malfoy-0", 8080, True))
    r.subtest("Should support an 'pass-egress' policy for TCP protocol; ensure rule ordering is respected")
    r.patch("egress-tcp", swap("egress", 0, 2), "egress rules 0 and 2 swapped")
    r.check(poke("harry-potter-0", "tcp", "luna-lovegood-0", 80, True),
            poke("harry-potter-1", "tcp", "luna-lovegood-0", 8080, True))
    r.subtest("Should support a 'pass-egress' policy for TCP protocol at the specified port")
    r.patch("egress-tcp", swap("egress", 3, 4), "egress rules 3 and 4 swapped")
    r.check(poke("harry-potter-0", "tcp", "draco-malfoy-0", 80, True),
            poke("harry-potter-1", "tcp", "draco-malfoy-0", 8080, True))
    return r.test(
        "CNPAdminTierEgressTCP",
        "Tests support for egress traffic (TCP protocol) using cluster network policy API based on a server "
        "and client model",
        "admin-network-policy-standard-egress-tcp-rules.go", "admin_tier/standard-egress-tcp-rules.yaml", STANDARD,
    )


@upstream
def admin_tier_egress_udp() -> UpstreamTest:
    r = Replay(admin_egress_udp())
    r.subtest("Should support an 'allow-egress' policy for UDP protocol; ensure rule ordering is respected")
    r.check(poke("cedric-diggory-0", "udp", "luna-lovegood-0", 53, True),
            poke("cedric-diggory-1", "udp", "luna-lovegood-0", 5353, True))
    r.subtest("Should support an 'allow-egress' policy for UDP protocol at the specified port")
    r.check(poke("cedric-diggory-0", "udp", "harry-potter-1", 53, True),
            poke("cedric-diggory-1", "udp", "harry-potter-1", 5353, False))
    r.subtest("Should support an 'deny-egress' policy for UDP protocol; ensure rule ordering is respected")
    r.patch("egress-udp", swap("egress", 0, 1), "egress rules 0 and 1 swapped")
    r.check(poke("cedric-diggory-0", "udp", "luna-lovegood-1", 53, False),
            poke("cedric-diggory-1", "udp", "luna-lovegood-1", 5353, False))
    r.subtest("Should support a 'deny-egress' policy for UDP protocol at the specified port")
    r.check(poke("cedric-diggory-0", "udp", "draco-malfoy-0", 5353, False),
            poke("cedric-diggory-1", "udp", "draco-malfoy-0", 53, True))
    r.subtest("Should support an 'pass-egress' policy for UDP protocol; ensure rule ordering is respected")
    r.patch("egress-udp", swap("egress", 0, 2), "egress rules 0 and 2 swapped")
    r.check(poke("cedric-diggory-0", "udp", "luna-lovegood-1", 5353, True),
            poke("cedric-diggory-1", "udp", "luna-lovegood-1", 53, True))
    r.subtest("Should support a 'pass-egress' policy for UDP protocol at the specified port")
    r.patch("egress-udp", swap("egress", 3, 4), "egress rules 3 and 4 swapped")
    r.check(poke("cedric-diggory-0", "udp", "draco-malfoy-0", 5353, True),
            poke("cedric-diggory-1", "udp", "draco-malfoy-0", 53, True))
    return r.test(
        "CNPAdminTierEgressUDP",
        "Tests support for egress traffic (UDP protocol) using cluster network policy API based on a server "
        "and client model",
        "admin-network-policy-standard-egress-udp-rules.go", "admin_tier/standard-egress-udp-rules.yaml", STANDARD,
    )


@upstream
def admin_tier_egress_sctp() -> UpstreamTest:
    r = Replay(admin_egress_sctp())
    r.subtest("Should support an 'allow-egress' policy for SCTP protocol; ensure rule ordering is respected")
    r.check(poke("luna-lovegood-0", "sctp", "harry-potter-0", 9003, True),
            poke("luna-lovegood-1", "sctp", "harry-potter-0", 9005, True))
    r.subtest("Should support an 'allow-egress' policy for SCTP protocol at the specified port")
    r.check(poke("luna-lovegood-0", "sctp", "cedric-diggory-1", 9003, True),
            poke("luna-lovegood-1", "sctp", "cedric-diggory-1", 9005, False))
    r.subtest("Should support an 'deny-egress' policy for SCTP protocol; ensure rule ordering is respected")
    r.patch("egress-sctp", swap("egress", 0, 1), "egress rules 0 and 1 swapped")
    r.check(poke("luna-lovegood-0", "sctp", "harry-potter-1", 9003, False),
            poke("luna-lovegood-1", "sctp", "harry-potter-1", 9005, False))
    r.subtest("Should support a 'deny-egress' policy for SCTP protocol at the specified port")
    r.check(poke("luna-lovegood-0", "sctp", "draco-malfoy-0", 9003, False),
            poke("luna-lovegood-1", "sctp", "draco-malfoy-0", 9005, True))
    r.subtest("Should support an 'pass-egress' policy for SCTP protocol; ensure rule ordering is respected")
    r.patch("egress-sctp", swap("egress", 0, 2), "egress rules 0 and 2 swapped")
    r.check(poke("luna-lovegood-0", "sctp", "harry-potter-1", 9003, True),
            poke("luna-lovegood-1", "sctp", "harry-potter-1", 9005, True))
    r.subtest("Should support a 'pass-egress' policy for SCTP protocol at the specified port")
    r.patch("egress-sctp", swap("egress", 3, 4), "egress rules 3 and 4 swapped")
    r.check(poke("luna-lovegood-0", "sctp", "draco-malfoy-0", 9003, True),
            poke("luna-lovegood-1", "sctp", "draco-malfoy-0", 9005, True))
    return r.test(
        "CNPAdminTierEgressSCTP",
        "Tests support for egress traffic (SCTP protocol) using cluster network policy API based on a server "
        "and client model",
        "admin-network-policy-standard-egress-sctp-rules.go", "admin_tier/standard-egress-sctp-rules.yaml", STANDARD,
    )


@upstream
def admin_tier_gress() -> UpstreamTest:
    r = Replay(admin_gress())
    r.subtest("Should support an 'allow-gress' policy across different protocols")
    r.check(poke("harry-potter-0", "tcp", "luna-lovegood-0", 80, True),
            poke("harry-potter-1", "udp", "luna-lovegood-0", 53, True),
            poke("harry-potter-0", "sctp", "luna-lovegood-0", 9003, True),
            poke("luna-lovegood-0", "tcp", "harry-potter-0", 80, True),
            poke("luna-lovegood-1", "udp", "harry-potter-0", 53, True),
            poke("luna-lovegood-1", "sctp", "harry-potter-0", 9003, True))
    r.subtest("Should support an 'allow-gress' policy across different protocols at the specified ports")
    r.check(poke("harry-potter-0", "tcp", "cedric-diggory-1", 8080, True),
            poke("harry-potter-1", "tcp", "cedric-diggory-1", 80, False),
            poke("harry-potter-0", "udp", "cedric-diggory-1", 5353, True),
            poke("harry-potter-1", "udp", "cedric-diggory-1", 53, False),
            poke("harry-potter-0", "sctp", "cedric-diggory-1", 9003, True),
            poke("harry-potter-1", "sctp", "cedric-diggory-1", 9005, False),
            poke("cedric-diggory-0", "tcp", "harry-potter-1", 80, True),
            poke("cedric-diggory-1", "tcp", "harry-potter-1", 8080, False),
            poke("cedric-diggory-0", "udp", "harry-potter-1", 5353, True),
            poke("cedric-diggory-1", "udp", "harry-potter-1", 53, False),
            poke("cedric-diggory-0", "sctp", "harry-potter-1", 9003, True),
            poke("cedric-diggory-1", "sctp", "harry-potter-1", 9005, False))
    r.subtest("Should support an 'deny-gress' policy across different protocols")
    r.patch("gress-rules", swap_both(0, 1), "egress rules 0 and 1 swapped, ingress rules 0 and 1 swapped")
    r.check(poke("harry-potter-0", "tcp", "luna-lovegood-1", 80, False),
            poke("harry-potter-1", "udp", "luna-lovegood-1", 53, False),
            poke("harry-potter-0", "sctp", "luna-lovegood-1", 9003, False),
            poke("luna-lovegood-0", "tcp", "harry-potter-1", 80, False),
            poke("luna-lovegood-1", "udp", "harry-potter-1", 53, False),
            poke("luna-lovegood-1", "sctp", "harry-potter-1", 9003, False))
    r.subtest("Should support a 'deny-gress' policy across different protocols at the specified ports")
    r.check(poke("harry-potter-0", "tcp", "draco-malfoy-0", 80, False),
            poke("harry-potter-1", "tcp", "draco-malfoy-0", 8080, True),
            poke("harry-potter-0", "udp", "draco-malfoy-0", 53, False),
            poke("harry-potter-1", "udp", "draco-malfoy-0", 5353, True),
            poke("harry-potter-0", "sctp", "draco-malfoy-0", 9003, False),
            poke("harry-potter-1", "sctp", "draco-malfoy-0", 9005, True),
            poke("draco-malfoy-0", "tcp", "harry-potter-0", 80, False),
            poke("draco-malfoy-1", "tcp", "harry-potter-0", 8080, True),
            poke("draco-malfoy-0", "udp", "harry-potter-0", 53, False),
            poke("draco-malfoy-1", "udp", "harry-potter-0", 5353, True),
            poke("draco-malfoy-0", "sctp", "harry-potter-0", 9003, False),
            poke("draco-malfoy-1", "sctp", "harry-potter-0", 9005, True))
    r.subtest("Should support an 'pass-gress' policy across different protocols")
    r.patch("gress-rules", swap_both(0, 2), "egress rules 0 and 2 swapped, ingress rules 0 and 2 swapped")
    r.check(poke("harry-potter-0", "tcp", "luna-lovegood-0", 80, True),
            poke("harry-potter-0", "udp", "luna-lovegood-0", 5353, True),
            poke("harry-potter-0", "sctp", "luna-lovegood-0", 9003, True),
            poke("luna-lovegood-0", "tcp", "harry-potter-0", 80, True),
            poke("luna-lovegood-1", "udp", "harry-potter-0", 53, True),
            poke("luna-lovegood-1", "sctp", "harry-potter-0", 9003, True))
    r.subtest("Should support a 'pass-gress' policy across different protocols at the specified ports")
    r.patch("gress-rules", swap_both(3, 4), "egress rules 3 and 4 swapped, ingress rules 3 and 4 swapped")
    r.check(poke("harry-potter-0", "tcp", "draco-malfoy-0", 80, True),
            poke("harry-potter-1", "tcp", "draco-malfoy-0", 8080, True),
            poke("harry-potter-0", "udp", "draco-malfoy-0", 53, True),
            poke("harry-potter-1", "udp", "draco-malfoy-0", 5353, True),
            poke("harry-potter-0", "sctp", "draco-malfoy-0", 9003, True),
            poke("harry-potter-1", "sctp", "draco-malfoy-0", 9005, True),
            poke("draco-malfoy-0", "tcp", "harry-potter-0", 80, True),
            poke("draco-malfoy-1", "tcp", "harry-potter-0", 8080, True),
            poke("draco-malfoy-0", "udp", "harry-potter-0", 53, True),
            poke("draco-malfoy-1", "udp", "harry-potter-0", 5353, True),
            poke("draco-malfoy-0", "sctp", "harry-potter-0", 9003, True),
            poke("draco-malfoy-1", "sctp", "harry-potter-0", 9005, True))
    return r.test(
        "CNPAdminTierGress",
        "Tests support for combined ingress and egress traffic rules in the cluster network policy API based "
        "on a server and client model",
        "admin-network-policy-standard-gress-rules.go", "admin_tier/standard-gress-rules-combined.yaml", STANDARD,
    )


@upstream
def admin_tier_integration() -> UpstreamTest:
    r = Replay(*api_integration())
    r.subtest("Should Deny traffic from slytherin to gryffindor respecting admin CNP")
    r.check(poke("draco-malfoy-0", "tcp", "harry-potter-0", 80, False),
            poke("draco-malfoy-1", "tcp", "harry-potter-0", 8080, False))
    r.subtest("Should Deny traffic to slytherin from gryffindor respecting admin CNP")
    r.check(poke("harry-potter-0", "tcp", "draco-malfoy-0", 80, False),
            poke("harry-potter-1", "tcp", "draco-malfoy-0", 8080, False))
    r.subtest("Should support a 'pass-ingress' policy for admin CNP and respect the match for network policy")
    r.patch("pass-example", set_action("ingress", 0, "Pass"), "ingress rule 0 action set to Pass")
    r.check(poke("draco-malfoy-0", "tcp", "harry-potter-0", 80, True),
            poke("draco-malfoy-1", "tcp", "harry-potter-0", 8080, True))
    r.subtest("Should support a 'pass-egress' policy for admin CNP and respect the match for network policy")
    r.patch("pass-example", set_action("egress", 0, "Pass"), "egress rule 0 action set to Pass")
    r.check(poke("harry-potter-0", "tcp", "draco-malfoy-0", 80, True),
            poke("harry-potter-1", "tcp", "draco-malfoy-0", 8080, True))
    r.subtest(
        "Should support a 'pass-ingress' policy for admin CNP and respect the match for baseline cluster network "
        "policy"
    )
    r.delete_network_policy(*INTEGRATION_NETWORK_POLICY)
    r.check(poke("draco-malfoy-0", "tcp", "harry-potter-0", 80, False),
            poke("draco-malfoy-1", "tcp", "harry-potter-0", 8080, False))
    r.subtest(
        "Should support a 'pass-egress' policy for admin CNP and respect the match for baseline cluster network "
        "policy"
    )
    r.check(poke("harry-potter-0", "tcp", "draco-malfoy-0", 80, False),
            poke("harry-potter-1", "tcp", "draco-malfoy-0", 8080, False))
    return r.test(
        "CNPAdminTierIntegration",
        "Tests integration support for gress traffic between admin CNP, NP and baseline CNP using PASS action "
        "based on a server and client model",
        "admin-network-policy-standard-integration.go", "api_integration/standard-anp-np-banp.yaml", STANDARD,
    )


@upstream
def admin_tier_priority_field() -> UpstreamTest:
    r = Replay(*admin_priority_field())
    r.subtest("Should Deny traffic from slytherin to gryffindor respecting admin CNP")
    r.check(poke("draco-malfoy-0", "tcp", "harry-potter-0", 80, False),
            poke("draco-malfoy-1", "tcp", "harry-potter-0", 8080, False))
    r.subtest("Should Deny traffic to slytherin from gryffindor respecting admin CNP")
    r.check(poke("harry-potter-0", "tcp", "draco-malfoy-0", 80, False),
            poke("harry-potter-1", "tcp", "draco-malfoy-0", 8080, False))
    r.subtest(
        "Should respect admin CNP priority field; thus passing both ingress and egress traffic over to baseline CNP"
    )
    r.patch("old-priority-60-new-priority-40-example", set_priority(40), "priority 60 changed to 40")
    r.check(poke("draco-malfoy-0", "tcp", "harry-potter-0", 80, True),
            poke("draco-malfoy-1", "tcp", "harry-potter-0", 8080, True),
            poke("harry-potter-0", "tcp", "draco-malfoy-0", 80, True),
            poke("harry-potter-1", "tcp", "draco-malfoy-0", 8080, True))
    return r.test(
        "CNPAdminTierPriorityField",
        "Tests support for cluster network policy API's .spec.priority field based on a server and client model",
        "admin-network-policy-standard-priority.go", "admin_tier/standard-priority-field.yaml", STANDARD,
    )


def inline_cidr_subtests(r: Replay, policy: str) -> None:
    """The two subtests the Admin and Baseline ``...EgressInlineCIDRPeers`` tests share."""
    r.subtest("Should support a 'deny-egress' rule policy for egress-cidr-peer")
    r.check(*three_protocol_pokes("harry-potter-1", "luna-lovegood-0", False),
            *three_protocol_pokes("harry-potter-1", "cedric-diggory-0", False),
            *three_protocol_pokes("harry-potter-1", "draco-malfoy-0", True))
    r.set_namespace_labels("slytherin", {HOUSE_LABEL: "denied-namespace-label"})
    r.check(*three_protocol_pokes("harry-potter-1", "draco-malfoy-0", False))
    r.set_namespace_labels("slytherin", {HOUSE_LABEL: "slytherin"})
    r.check(*three_protocol_pokes("harry-potter-1", "draco-malfoy-0", True))
    r.subtest("Should support an 'allow-egress' rule policy for egress-cidr-peer")
    allow = egress(
        "allow-egress-to-specific-podIPs", "Accept",
        networks_peer(f"{{{{ip4:{pod('luna-lovegood-0')}}}}}/32", f"{{{{ip4:{pod('cedric-diggory-0')}}}}}/32"),
    )
    r.patch(policy, prepend_egress(allow), "rule allow-egress-to-specific-podIPs inserted before egress rule 0")
    r.check(*three_protocol_pokes("harry-potter-1", "luna-lovegood-0", True),
            *three_protocol_pokes("harry-potter-1", "cedric-diggory-0", True),
            *three_protocol_pokes("harry-potter-1", "luna-lovegood-1", False),
            *three_protocol_pokes("harry-potter-1", "cedric-diggory-1", False))


def three_protocol_pokes(client: str, server: str, allowed: bool) -> tuple[Poke, ...]:
    """The TCP 80, UDP 53, SCTP 9003 trio the inline-CIDR subtests poke each server with."""
    return (poke(client, "tcp", server, 80, allowed),
            poke(client, "udp", server, 53, allowed),
            poke(client, "sctp", server, 9003, allowed))


@upstream
def admin_tier_egress_inline_cidr_peers() -> UpstreamTest:
    r = Replay(admin_egress_inline_cidr())
    inline_cidr_subtests(r, "inline-cidr-as-peers-example")
    return r.test(
        "CNPAdminTierEgressInlineCIDRPeers",
        "Tests support for egress traffic to CIDR peers using cluster network policy API based on a server and "
        "client model",
        "admin-network-policy-standard-egress-inline-cidr-rules.go",
        "admin_tier/standard-egress-inline-cidr-rules.yaml", STANDARD,
    )


@upstream
def admin_tier_egress_named_port() -> UpstreamTest:
    r = Replay(admin_egress_tcp())
    r.subtest("Should support an 'allow-egress' policy for named port")
    r.patch("egress-tcp", set_protocols("egress", 5, [named_port("web")]),
            "egress rule 5 protocols set to destinationNamedPort web")
    r.check(poke("harry-potter-0", "tcp", "cedric-diggory-1", 80, True),
            poke("harry-potter-1", "tcp", "cedric-diggory-1", 8080, False))
    return r.test(
        "CNPAdminTierEgressNamedPort",
        "Tests support for egress traffic on a named port using cluster network policy API based on a server and "
        "client model",
        "admin-network-policy-experimental-egress-rules.go", "admin_tier/standard-egress-tcp-rules.yaml", NAMED_PORTS,
    )


@upstream
def admin_tier_egress_node_peers() -> UpstreamTest:
    hp = HOST_NETWORK_PORTS
    r = Replay(admin_egress_node_peers())
    r.subtest("Should support an 'allow-egress' rule policy for egress-node-peer")
    r.check(poke("harry-potter-1", "tcp", "centaur-1", hp[0], True))
    r.subtest("Should support a 'pass-egress' rule policy for egress-node-peer")
    r.check(poke("harry-potter-1", "udp", "centaur-1", hp[2], True))
    r.subtest("Should support a 'deny-egress' rule policy for egress-node-peer")
    r.check(poke("harry-potter-1", "tcp", "centaur-1", hp[1], False),
            poke("harry-potter-1", "udp", "centaur-1", hp[4], False),
            poke("harry-potter-1", "sctp", "centaur-1", hp[6], False))
    return r.test(
        "CNPAdminTierEgressNodePeers",
        "Tests support for egress traffic to node peers using cluster network policy API based on a server and "
        "client model",
        "admin-network-policy-experimental-egress-rules.go", "admin_tier/experimental-egress-selector-rules.yaml",
        NODE_PEERS, node_labels=True,
    )


@upstream
def admin_tier_ingress_named_port() -> UpstreamTest:
    r = Replay(admin_ingress_udp())
    r.subtest("Should support an 'allow-ingress' policy for named port")
    r.patch("ingress-udp", set_protocols("ingress", 5, [named_port("dns")]),
            "ingress rule 5 protocols set to destinationNamedPort dns")
    r.check(poke("harry-potter-0", "udp", "cedric-diggory-1", 53, True),
            poke("harry-potter-1", "udp", "cedric-diggory-1", 5353, False))
    return r.test(
        "CNPAdminTierIngressNamedPort",
        "Tests support for ingress traffic on a named port using cluster network policy API based on a server "
        "and client model",
        "admin-network-policy-experimental-ingress-rules.go", "admin_tier/standard-ingress-udp-rules.yaml",
        NAMED_PORTS,
    )


# --- the transcriptions: Baseline tier ---------------------------------------------------------


@upstream
def baseline_tier_ingress_tcp() -> UpstreamTest:
    r = Replay(baseline_ingress_tcp())
    r.subtest("Should support an 'allow-ingress' policy for TCP protocol; ensure rule ordering is respected")
    r.check(poke("luna-lovegood-0", "tcp", "harry-potter-0", 80, True),
            poke("luna-lovegood-1", "tcp", "harry-potter-0", 8080, True))
    r.subtest("Should support an 'allow-ingress' policy for TCP protocol at the specified port")
    r.check(poke("cedric-diggory-0", "tcp", "harry-potter-1", 80, True),
            poke("cedric-diggory-1", "tcp", "harry-potter-1", 8080, False))
    r.subtest("Should support an 'deny-ingress' policy for TCP protocol; ensure rule ordering is respected")
    r.patch("default", swap("ingress", 0, 1), "ingress rules 0 and 1 swapped")
    r.check(poke("luna-lovegood-0", "tcp", "harry-potter-1", 80, False),
            poke("luna-lovegood-1", "tcp", "harry-potter-1", 8080, False))
    r.subtest("Should support a 'deny-ingress' policy for TCP protocol at the specified port")
    r.check(poke("draco-malfoy-0", "tcp", "harry-potter-0", 80, False),
            poke("draco-malfoy-1", "tcp", "harry-potter-0", 8080, True))
    return r.test(
        "CNPBaselineTierIngressTCP",
        "Tests support for ingress traffic (TCP protocol) using baseline cluster network policy API based on a "
        "server and client model",
        "baseline-admin-network-policy-standard-ingress-tcp-rules.go", "baseline_tier/standard-ingress-tcp-rules.yaml",
        STANDARD,
    )


@upstream
def baseline_tier_ingress_udp() -> UpstreamTest:
    r = Replay(baseline_ingress_udp())
    r.subtest("Should support an 'allow-ingress' policy for UDP protocol; ensure rule ordering is respected")
    r.check(poke("luna-lovegood-0", "udp", "cedric-diggory-0", 53, True),
            poke("luna-lovegood-1", "udp", "cedric-diggory-0", 5353, True))
    r.subtest("Should support an 'allow-ingress' policy for UDP protocol at the specified port")
    r.check(poke("harry-potter-0", "udp", "cedric-diggory-1", 53, True),
            poke("harry-potter-1", "udp", "cedric-diggory-1", 5353, False))
    r.subtest("Should support an 'deny-ingress' policy for UDP protocol; ensure rule ordering is respected")
    r.patch("default", swap("ingress", 0, 1), "ingress rules 0 and 1 swapped")
    r.check(poke("luna-lovegood-0", "udp", "cedric-diggory-1", 53, False),
            poke("luna-lovegood-1", "udp", "cedric-diggory-1", 5353, False))
    r.subtest("Should support a 'deny-ingress' policy for UDP protocol at the specified port")
    r.check(poke("draco-malfoy-0", "udp", "cedric-diggory-0", 5353, False),
            poke("draco-malfoy-1", "udp", "cedric-diggory-0", 53, True))
    return r.test(
        "CNPBaselineTierIngressUDP",
        "Tests support for ingress traffic (UDP protocol) using baseline cluster network policy API based on a "
        "server and client model",
        "baseline-admin-network-policy-standard-ingress-udp-rules.go", "baseline_tier/standard-ingress-udp-rules.yaml",
        STANDARD,
    )


@upstream
def baseline_tier_ingress_sctp() -> UpstreamTest:
    r = Replay(baseline_ingress_sctp())
    r.subtest("Should support an 'allow-ingress' policy for SCTP protocol; ensure rule ordering is respected")
    r.check(poke("harry-potter-0", "sctp", "luna-lovegood-0", 9003, True),
            poke("harry-potter-1", "sctp", "luna-lovegood-0", 9005, True))
    r.subtest("Should support an 'allow-ingress' policy for SCTP protocol at the specified port")
    r.check(poke("cedric-diggory-0", "sctp", "luna-lovegood-1", 9003, True),
            poke("cedric-diggory-1", "sctp", "luna-lovegood-1", 9005, False))
    r.subtest("Should support an 'deny-ingress' policy for SCTP protocol; ensure rule ordering is respected")
    r.patch("default", swap("ingress", 0, 1), "ingress rules 0 and 1 swapped")
    r.check(poke("harry-potter-0", "sctp", "luna-lovegood-1", 9003, False),
            poke("harry-potter-1", "sctp", "luna-lovegood-1", 9005, False))
    r.subtest("Should support a 'deny-ingress' policy for SCTP protocol at the specified port")
    r.check(poke("draco-malfoy-0", "sctp", "luna-lovegood-0", 9003, False),
            poke("draco-malfoy-1", "sctp", "luna-lovegood-0", 9005, True))
    return r.test(
        "CNPBaselineTierIngressSCTP",
        "Tests support for ingress traffic (SCTP protocol) using baseline cluster network policy API based on a "
        "server and client model",
        "baseline-admin-network-policy-standard-ingress-sctp-rules.go",
        "baseline_tier/standard-ingress-sctp-rules.yaml", STANDARD,
    )


@upstream
def baseline_tier_egress_tcp() -> UpstreamTest:
    r = Replay(baseline_egress_tcp())
    r.subtest("Should support an 'allow-egress' policy for TCP protocol; ensure rule ordering is respected")
    r.check(poke("harry-potter-0", "tcp", "luna-lovegood-0", 80, True),
            poke("harry-potter-1", "tcp", "luna-lovegood-0", 8080, True))
    r.subtest("Should support an 'allow-egress' policy for TCP protocol at the specified port")
    r.check(poke("harry-potter-0", "tcp", "cedric-diggory-1", 8080, True),
            poke("harry-potter-1", "tcp", "cedric-diggory-1", 80, False))
    r.subtest("Should support an 'deny-egress' policy for TCP protocol; ensure rule ordering is respected")
    r.patch("default", swap("egress", 0, 1), "egress rules 0 and 1 swapped")
    r.check(poke("harry-potter-0", "tcp", "luna-lovegood-1", 80, False),
            poke("harry-potter-1", "tcp", "luna-lovegood-1", 8080, False))
    r.subtest("Should support a 'deny-egress' policy for TCP protocol at the specified port")
    r.check(poke("harry-potter-0", "tcp", "draco-malfoy-0", 80, False),
            poke("harry-potter-1", "tcp", "draco-malfoy-0", 8080, True))
    return r.test(
        "CNPBaselineTierEgressTCP",
        "Tests support for egress traffic (TCP protocol) using baseline cluster network policy API based on a "
        "server and client model",
        "baseline-admin-network-policy-standard-egress-tcp-rules.go", "baseline_tier/standard-egress-tcp-rules.yaml",
        STANDARD,
    )


@upstream
def baseline_tier_egress_udp() -> UpstreamTest:
    r = Replay(baseline_egress_udp())
    r.subtest("Should support an 'allow-egress' policy for UDP protocol; ensure rule ordering is respected")
    r.check(poke("cedric-diggory-0", "udp", "luna-lovegood-0", 53, True),
            poke("cedric-diggory-1", "udp", "luna-lovegood-0", 5353, True))
    r.subtest("Should support an 'allow-egress' policy for UDP protocol at the specified port")
    r.check(poke("cedric-diggory-0", "udp", "harry-potter-1", 53, True),
            poke("cedric-diggory-1", "udp", "harry-potter-1", 5353, False))
    r.subtest("Should support an 'deny-egress' policy for UDP protocol; ensure rule ordering is respected")
    r.patch("default", swap("egress", 0, 1), "egress rules 0 and 1 swapped")
    r.check(poke("cedric-diggory-0", "udp", "luna-lovegood-1", 53, False),
            poke("cedric-diggory-1", "udp", "luna-lovegood-1", 5353, False))
    r.subtest("Should support a 'deny-egress' policy for UDP protocol at the specified port")
    r.check(poke("cedric-diggory-0", "udp", "draco-malfoy-0", 5353, False),
            poke("cedric-diggory-1", "udp", "draco-malfoy-0", 53, True))
    return r.test(
        "CNPBaselineTierEgressUDP",
        "Tests support for egress traffic (UDP protocol) using baseline cluster network policy API based on a "
        "server and client model",
        "baseline-admin-network-policy-standard-egress-udp-rules.go", "baseline_tier/standard-egress-udp-rules.yaml",
        STANDARD,
    )


@upstream
def baseline_tier_egress_sctp() -> UpstreamTest:
    r = Replay(baseline_egress_sctp())
    r.subtest("Should support an 'allow-egress' policy for SCTP protocol; ensure rule ordering is respected")
    r.check(poke("luna-lovegood-0", "sctp", "harry-potter-0", 9003, True),
            poke("luna-lovegood-1", "sctp", "harry-potter-0", 9005, True))
    r.subtest("Should support an 'allow-egress' policy for SCTP protocol at the specified port")
    r.check(poke("luna-lovegood-0", "sctp", "cedric-diggory-1", 9003, True),
            poke("luna-lovegood-1", "sctp", "cedric-diggory-1", 9005, False))
    r.subtest("Should support an 'deny-egress' policy for SCTP protocol; ensure rule ordering is respected")
    r.patch("default", swap("egress", 0, 1), "egress rules 0 and 1 swapped")
    r.check(poke("luna-lovegood-0", "sctp", "harry-potter-1", 9003, False),
            poke("luna-lovegood-1", "sctp", "harry-potter-1", 9005, False))
    r.subtest("Should support a 'deny-egress' policy for SCTP protocol at the specified port")
    r.check(poke("luna-lovegood-0", "sctp", "draco-malfoy-0", 9003, False),
            poke("luna-lovegood-1", "sctp", "draco-malfoy-0", 9005, True))
    return r.test(
        "CNPBaselineTierEgressSCTP",
        "Tests support for egress traffic (SCTP protocol) using baseline cluster network policy API based on a "
        "server and client model",
        "baseline-admin-network-policy-standard-egress-sctp-rules.go", "baseline_tier/standard-egress-sctp-rules.yaml",
        STANDARD,
    )


@upstream
def baseline_tier_gress() -> UpstreamTest:
    r = Replay(baseline_gress())
    r.subtest("Should support an 'allow-gress' policy across different protocols")
    r.check(poke("harry-potter-0", "tcp", "luna-lovegood-0", 80, True),
            poke("harry-potter-1", "udp", "luna-lovegood-0", 53, True),
            poke("harry-potter-0", "sctp", "luna-lovegood-0", 9003, True),
            poke("luna-lovegood-0", "tcp", "harry-potter-0", 80, True),
            poke("luna-lovegood-1", "udp", "harry-potter-0", 53, True),
            poke("luna-lovegood-1", "sctp", "harry-potter-0", 9003, True))
    r.subtest("Should support an 'allow-gress' policy across different protocols at the specified ports")
    r.check(poke("harry-potter-0", "tcp", "cedric-diggory-1", 8080, True),
            poke("harry-potter-1", "tcp", "cedric-diggory-1", 80, False),
            poke("harry-potter-0", "udp", "cedric-diggory-1", 5353, True),
            poke("harry-potter-1", "udp", "cedric-diggory-1", 53, False),
            poke("harry-potter-0", "sctp", "cedric-diggory-1", 9003, True),
            poke("harry-potter-1", "sctp", "cedric-diggory-1", 9005, False),
            poke("cedric-diggory-0", "tcp", "harry-potter-1", 80, True),
            poke("cedric-diggory-1", "tcp", "harry-potter-1", 8080, False),
            poke("cedric-diggory-0", "udp", "harry-potter-1", 5353, True),
            poke("cedric-diggory-1", "udp", "harry-potter-1", 53, False),
            poke("cedric-diggory-0", "sctp", "harry-potter-1", 9003, True),
            poke("cedric-diggory-1", "sctp", "harry-potter-1", 9005, False))
    r.subtest("Should support an 'deny-gress' policy across different protocols")
    r.patch("default", swap_both(0, 1), "egress rules 0 and 1 swapped, ingress rules 0 and 1 swapped")
    r.check(poke("harry-potter-0", "tcp", "luna-lovegood-1", 80, False),
            poke("harry-potter-1", "udp", "luna-lovegood-1", 53, False),
            poke("harry-potter-0", "sctp", "luna-lovegood-1", 9003, False),
            poke("luna-lovegood-0", "tcp", "harry-potter-1", 80, False),
            poke("luna-lovegood-1", "udp", "harry-potter-1", 53, False),
            poke("luna-lovegood-1", "sctp", "harry-potter-1", 9003, False))
    r.subtest("Should support a 'deny-gress' policy across different protocols at the specified ports")
    r.check(poke("harry-potter-0", "tcp", "draco-malfoy-0", 80, False),
            poke("harry-potter-1", "tcp", "draco-malfoy-0", 8080, True),
            poke("harry-potter-0", "udp", "draco-malfoy-0", 53, False),
            poke("harry-potter-1", "udp", "draco-malfoy-0", 5353, True),
            poke("harry-potter-0", "sctp", "draco-malfoy-0", 9003, False),
            poke("harry-potter-1", "sctp", "draco-malfoy-0", 9005, True),
            poke("draco-malfoy-0", "tcp", "harry-potter-0", 80, False),
            poke("draco-malfoy-1", "tcp", "harry-potter-0", 8080, True),
            poke("draco-malfoy-0", "udp", "harry-potter-0", 53, False),
            poke("draco-malfoy-1", "udp", "harry-potter-0", 5353, True),
            poke("draco-malfoy-0", "sctp", "harry-potter-0", 9003, False),
            poke("draco-malfoy-1", "sctp", "harry-potter-0", 9005, True))
    return r.test(
        "CNPBaselineTierGress",
        "Tests support for combined ingress and egress traffic rules in the baseline cluster network policy API "
        "based on a server and client model",
        "baseline-admin-network-policy-standard-gress-rules.go", "baseline_tier/standard-gress-rules-combined.yaml",
        STANDARD,
    )


@upstream
def baseline_tier_egress_inline_cidr_peers() -> UpstreamTest:
    r = Replay(baseline_egress_inline_cidr())
    inline_cidr_subtests(r, "default")
    return r.test(
        "CNPBaselineTierEgressInlineCIDRPeers",
        "Tests support for egress traffic to CIDR peers using baseline cluster network policy API based on a "
        "server and client model",
        "baseline-admin-network-policy-standard-egress-inline-cidr-rules.go",
        "baseline_tier/standard-egress-inline-cidr-rules.yaml", STANDARD,
    )


@upstream
def baseline_tier_egress_named_port() -> UpstreamTest:
    r = Replay(baseline_egress_udp())
    r.subtest("Should support an 'allow-egress' policy for named port")
    r.patch("default", set_protocols("egress", 3, [named_port("dns")]),
            "egress rule 3 protocols set to destinationNamedPort dns")
    r.check(poke("cedric-diggory-0", "udp", "harry-potter-1", 53, True),
            poke("cedric-diggory-1", "udp", "harry-potter-1", 5353, False))
    return r.test(
        "CNPBaselineTierEgressNamedPort",
        "Tests support for egress traffic on a named port using baseline cluster network policy API based on a "
        "server and client model",
        "baseline-admin-network-policy-experimental-egress-rules.go", "baseline_tier/standard-egress-udp-rules.yaml",
        NAMED_PORTS,
    )


@upstream
def baseline_tier_egress_node_peers() -> UpstreamTest:
    hp = HOST_NETWORK_PORTS
    r = Replay(baseline_egress_node_peers())
    r.subtest("Should support an 'allow-egress' rule policy for egress-node-peer")
    r.check(poke("harry-potter-0", "tcp", "centaur-1", hp[0], True),
            poke("harry-potter-1", "tcp", "centaur-1", hp[1], True))
    r.subtest("Should support a 'deny-egress' rule policy for egress-node-peer")
    r.check(poke("harry-potter-1", "udp", "centaur-1", hp[4], False),
            poke("harry-potter-1", "sctp", "centaur-1", hp[6], False))
    return r.test(
        "CNPBaselineTierEgressNodePeers",
        "Tests support for egress traffic to node peers using  baseline cluster network policy API based on a "
        "server and client model",
        "baseline-admin-network-policy-experimental-egress-rules.go",
        "baseline_tier/experimental-egress-selector-rules.yaml", NODE_PEERS, node_labels=True,
    )


@upstream
def baseline_tier_ingress_named_port() -> UpstreamTest:
    r = Replay(baseline_ingress_tcp())
    r.subtest("Should support an 'allow-ingress' policy for named port")
    r.patch("default", set_protocols("ingress", 3, [named_port("web")]),
            "ingress rule 3 protocols set to destinationNamedPort web")
    r.check(poke("cedric-diggory-0", "tcp", "harry-potter-1", 80, True),
            poke("cedric-diggory-1", "tcp", "harry-potter-1", 8080, False))
    return r.test(
        "CNPBaselineTierIngressNamedPort",
        "Tests support for ingress traffic on a named port using baseline cluster network policy API based on a "
        "server and client model",
        "baseline-admin-network-policy-experimental-ingress-rules.go", "baseline_tier/standard-ingress-tcp-rules.yaml",
        NAMED_PORTS,
    )


# --- rendering ----------------------------------------------------------------------------------


def probes(pokes: tuple[Poke, ...]) -> list[Json]:
    """One probe per (protocol, port), in the order upstream first pokes it; its ``expected``
    holds exactly the poked cells. A cell poked twice in one step must agree."""
    grouped: dict[tuple[str, int], dict[str, dict[str, bool]]] = {}
    for p in pokes:
        row = grouped.setdefault((p.protocol, p.port), {}).setdefault(p.client, {})
        if row.get(p.server, p.allowed) != p.allowed:
            raise ValueError(f"contradictory pokes {p.client} -> {p.server} {p.protocol}/{p.port}")
        row[p.server] = p.allowed
    return [
        {"port": number, "protocol": protocol, "expected": table}
        for (protocol, number), table in grouped.items()
    ]


def render(test: UpstreamTest) -> Json:
    steps = []
    for step in test.steps:
        out: Json = {}
        if step.remove_policies:
            out["remove_policies"] = list(step.remove_policies)
        if step.policies:
            out["policies"] = list(step.policies)
        if step.namespace_labels:
            out["namespace_labels"] = {ns: dict(labels) for ns, labels in step.namespace_labels.items()}
        if step.pokes:
            out["probes"] = probes(step.pokes)
        steps.append(out)
    return {
        "name": f"{test.short_name}: {test.description}",
        "model": model(node_labels=test.node_labels),
        "steps": steps,
    }


def header(test: UpstreamTest) -> str:
    lines = [
        "Generated by generate.py; do not edit.",
        f"Upstream: {UPSTREAM_REPO} @ {UPSTREAM_COMMIT[:12]}, test {test.short_name}",
        f"  in {test.source}; features: {', '.join(test.features)}",
        f"  policies: {test.manifest}",
        "  cluster: conformance/base/manifests.yaml (the model below; README.md lists the differences)",
        "Every expected cell is one upstream PokeServer(client, protocol, server pod IP, port, shouldConnect)",
        "assertion; pairs upstream does not poke are not stated.",
        "Steps:",
    ]
    for i, step in enumerate(test.steps):
        lines += textwrap.wrap(
            f"steps[{i}]: {step.origin}", width=116, initial_indent="  ", subsequent_indent="      ",
            break_on_hyphens=False,
        )
    return "".join(f"# {line}\n" for line in lines)


class _Dumper(yaml.SafeDumper):
    """Writes a shared object out in full each time (no ``&anchor``/``*alias``), and mappings and
    lists of a few scalars on one line, so labels and ports read at a glance."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _one_line(values: list[Any]) -> bool:
    """Only scalars, and short enough to read on one line."""
    return all(not isinstance(v, (dict, list)) for v in values) and len(repr(values)) <= 90


def _represent_dict(dumper: yaml.SafeDumper, data: dict[Any, Any]) -> yaml.Node:
    flow = bool(data) and _one_line([*data.keys(), *data.values()])
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=_one_line(data))


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)


def dump(document: Json) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=4096)


def all_tests() -> list[UpstreamTest]:
    tests = [make() for make in TESTS]
    names = [t.short_name for t in tests]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate ShortName in {names}")
    return tests


def file_text(test: UpstreamTest) -> str:
    return header(test) + dump(render(test))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the files on disk; write nothing")
    args = parser.parse_args(argv)
    wanted = {t.filename: file_text(t) for t in all_tests()}
    present = {p.name for p in HERE.glob("*.yaml")}
    stale = sorted(n for n, text in wanted.items() if n not in present or (HERE / n).read_text() != text)
    extra = sorted(present - set(wanted))
    if args.check:
        for name in stale:
            print(f"{name}: missing or differs from generate.py", file=sys.stderr)
        for name in extra:
            print(f"{name}: not produced by generate.py", file=sys.stderr)
        return 1 if stale or extra else 0
    for name in stale:
        (HERE / name).write_text(wanted[name])
    for name in extra:
        (HERE / name).unlink()
    print(f"{len(wanted)} cases, {len(stale)} written, {len(extra)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
