"""Transcribe the upstream Kubernetes NetworkPolicy conformance tests into probe cases.

Source: ``kubernetes/kubernetes`` ``test/e2e/network/netpol/network_policy.go`` (the "Netpol"
SIG-network suite), with its helpers ``policies.go`` (``GenNetworkPolicy...``,
``SetSpec...Rules``) and ``reachability.go`` (``Reachability``, ``Peer``). Each ``f.It`` becomes
one YAML file here, and the three ipBlock tests a second one on an IPv6 cluster; the README maps
test names to files and lists every deliberate difference.

Invariants:

* The expected truth tables are upstream's own: each test below repeats upstream's
  ``NewReachability(allPods, true)`` followed by its ``Expect*`` calls, on the nine pods of the
  standard model (``x,y,z`` x ``a,b,c``). Nothing here evaluates a policy, and nothing imports
  policyctl: the corpus is an independent oracle for it.
* Upstream probes every pair through the destination's Service ClusterIP and ignores a pod's
  probe of itself (``ignoreLoopback = true``). So each upstream probe becomes two: ``via: pod``,
  where a pod reaching its own address is always allowed (the probe-case spec), and
  ``via: service``, whose table leaves the self pairs out because upstream states nothing
  about them.
* Policies are written as upstream sends them to the API server (Go's ``omitempty``: empty
  lists and maps vanish, ``policyTypes`` is whatever ``SetSpec*Rules`` appended), so the
  loader's defaulting is exercised, not bypassed.
* Output is deterministic: running this again rewrites every file byte for byte and removes
  YAML files it no longer produces. ``--check`` only verifies that the files on disk match.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
UPSTREAM_FILE = "kubernetes/kubernetes test/e2e/network/netpol/network_policy.go"

NAMESPACES = ("x", "y", "z")
POD_NAMES = ("a", "b", "c")
ALL_PODS = tuple(f"{ns}/{pod}" for ns in NAMESPACES for pod in POD_NAMES)

#: ``v1.LabelMetadataName``: the label the API server puts on every namespace.
NAME_LABEL = "kubernetes.io/metadata.name"

#: Each upstream probe is run both ways; see the module docstring.
VIAS = ("pod", "service")

Json = dict[str, Any]


# --- upstream's Reachability, on the nine pods of the standard model -------------------------


@dataclass(frozen=True, slots=True)
class Peer:
    """``reachability.go`` ``Peer``: an empty namespace or pod matches every namespace or pod."""

    namespace: str | None = None
    pod: str | None = None

    def matches(self, pod_key: str) -> bool:
        namespace, name = pod_key.split("/")
        return (self.namespace is None or self.namespace == namespace) and (
            self.pod is None or self.pod == name
        )


class Reachability:
    """Mirror of upstream's ``Reachability``: a table over every ordered pair of pods that
    starts at a default and is edited by the same four calls upstream tests make. Later calls
    overwrite earlier ones, exactly as upstream's ``TruthTable.Set`` does."""

    __slots__ = ("_expected",)

    def __init__(self, default: bool = True) -> None:
        self._expected = {src: {dst: default for dst in ALL_PODS} for src in ALL_PODS}

    def expect(self, src: str, dst: str, allowed: bool) -> None:
        """``Expect(from, to, connected)``."""
        self._expected[_pod(src)][_pod(dst)] = allowed

    def expect_all_ingress(self, pod: str, allowed: bool) -> None:
        """``ExpectAllIngress(pod, connected)``: every source to ``pod`` (``SetAllTo``)."""
        for src in ALL_PODS:
            self._expected[src][_pod(pod)] = allowed

    def expect_all_egress(self, pod: str, allowed: bool) -> None:
        """``ExpectAllEgress(pod, connected)``: ``pod`` to every destination (``SetAllFrom``)."""
        for dst in ALL_PODS:
            self._expected[_pod(pod)][dst] = allowed

    def expect_peer(
        self,
        *,
        from_ns: str | None = None,
        from_pod: str | None = None,
        to_ns: str | None = None,
        to_pod: str | None = None,
        allowed: bool,
    ) -> None:
        """``ExpectPeer(&Peer{from_ns, from_pod}, &Peer{to_ns, to_pod}, connected)``."""
        src_peer, dst_peer = Peer(from_ns, from_pod), Peer(to_ns, to_pod)
        for src in ALL_PODS:
            for dst in ALL_PODS:
                if src_peer.matches(src) and dst_peer.matches(dst):
                    self._expected[src][dst] = allowed

    def table(self, *, via: str) -> dict[str, dict[str, bool]]:
        """The expected table for one probe. Upstream ignores loopback, so a pod's probe of
        itself is ours to state: allowed through its own address, left out through a Service."""
        table: dict[str, dict[str, bool]] = {}
        for src in ALL_PODS:
            row = {}
            for dst in ALL_PODS:
                if src != dst:
                    row[dst] = self._expected[src][dst]
                elif via == "pod":
                    row[dst] = True
            table[src] = row
        return table


def _pod(key: str) -> str:
    if key not in ALL_PODS:
        raise ValueError(f"{key!r} is not a pod of the standard model")
    return key


# --- upstream's policy builders (policies.go), producing manifests as sent to the API -------


def match_labels(**labels: str) -> Json:
    """``metav1.LabelSelector{MatchLabels: labels}``; an empty map is omitted, leaving ``{}``."""
    return {"matchLabels": dict(labels)} if labels else {}


def labels_selector(labels: Mapping[str, str]) -> Json:
    """``match_labels`` for keys that are not Python identifiers."""
    return {"matchLabels": dict(labels)} if labels else {}


def match_expression(key: str, operator: str, values: Iterable[str]) -> Json:
    """A selector with one ``LabelSelectorRequirement``."""
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


def peer(*, pods: Json | None = None, namespaces: Json | None = None) -> Json:
    """``NetworkPolicyPeer`` with the fields in Go's struct order; ``None`` is a nil pointer."""
    result: Json = {}
    if pods is not None:
        result["podSelector"] = pods
    if namespaces is not None:
        result["namespaceSelector"] = namespaces
    return result


def ip_block(cidr: str, *excepts: str) -> Json:
    block: Json = {"cidr": cidr}
    if excepts:
        block["except"] = list(excepts)
    return {"ipBlock": block}


def port(number_or_name: int | str | None = None, *, protocol: str | None = None) -> Json:
    """``NetworkPolicyPort``: a nil protocol or port is omitted (the API defaults TCP)."""
    result: Json = {}
    if protocol is not None:
        result["protocol"] = protocol
    if number_or_name is not None:
        result["port"] = number_or_name
    return result


def rule(*, peers: list[Json] | None = None, ports: list[Json] | None = None, key: str) -> Json:
    result: Json = {}
    if peers:
        result[key] = peers
    if ports:
        result["ports"] = ports
    return result


def ingress_rule(*peers: Json, ports: list[Json] | None = None) -> Json:
    """``NetworkPolicyIngressRule{From: peers, Ports: ports}``."""
    return rule(peers=list(peers), ports=ports, key="from")


def egress_rule(*peers: Json, ports: list[Json] | None = None) -> Json:
    """``NetworkPolicyEgressRule{To: peers, Ports: ports}``."""
    return rule(peers=list(peers), ports=ports, key="to")


def network_policy(
    namespace: str,
    name: str,
    pod_selector: Json,
    *,
    ingress: list[Json] | None = None,
    egress: list[Json] | None = None,
    policy_types: list[str] | None = None,
) -> Json:
    """``GenNetworkPolicyWithNameAnd...(name, selector, SetSpecIngressRules(...),
    SetSpecEgressRules(...))`` created in ``namespace``.

    ``ingress=None`` means ``SetSpecIngressRules`` was not called; ``ingress=[]`` that it was
    called with no rules. Each call appends its type to ``policyTypes`` (Ingress before Egress
    in every upstream use), and an empty rule list is dropped on the wire by ``omitempty``.
    ``policy_types`` overrides the list for the one test that assigns it directly.
    """
    types = policy_types
    if types is None:
        types = [t for t, rules in (("Ingress", ingress), ("Egress", egress)) if rules is not None]
    spec: Json = {"podSelector": pod_selector}
    if types:
        spec["policyTypes"] = types
    if ingress:
        spec["ingress"] = ingress
    if egress:
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


# --- the shape of a transcribed test ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    """One ``ValidateOrFail(k8s, &TestCase{ToPort, Protocol, Reachability})``."""

    port: int
    protocol: str
    reachability: Reachability


@dataclass(frozen=True, slots=True)
class Step:
    """The cluster changes upstream makes before a run of ``ValidateOrFail`` calls."""

    probes: tuple[Probe, ...]
    policies: tuple[Json, ...] = ()
    remove_policies: tuple[str, ...] = ()
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    pod_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpstreamTest:
    """One upstream ``f.It``: its full name (Describe, Context, It) and our steps."""

    describe: str
    context: str
    it: str
    steps: tuple[Step, ...]

    @property
    def name(self) -> str:
        """The name ginkgo reports, ``feature.NetworkPolicy`` label included."""
        return f"{self.describe} {self.context} {self.it} [Feature:NetworkPolicy]"

    @property
    def slug(self) -> str:
        prefix = {"TCP": "", "UDP": "udp-", "SCTP": "sctp-"}[_context_protocol(self.context)]
        words = re.sub(r"[^a-z0-9]+", "-", self.it.lower().replace("'", "")).strip("-")
        return prefix + words.removeprefix("should-")


def _context_protocol(context: str) -> str:
    for protocol in ("UDP", "SCTP"):
        if context.endswith(f"using {protocol}"):
            return protocol
    return "TCP"


TCP_CONTEXT = ("[sig-network] Netpol", "NetworkPolicy between server and client")
UDP_CONTEXT = ("[sig-network] Netpol [LinuxOnly]", "NetworkPolicy between server and client using UDP")
SCTP_CONTEXT = (
    "[sig-network] Netpol [Feature:SCTPConnectivity] [LinuxOnly]",
    "NetworkPolicy between server and client using SCTP",
)

TESTS: list[Callable[[], UpstreamTest]] = []


def upstream(func: Callable[[], UpstreamTest]) -> Callable[[], UpstreamTest]:
    """Register a transcription; the list keeps upstream's order."""
    TESTS.append(func)
    return func


def single(context: tuple[str, str], it: str, policies: list[Json], *probes: Probe) -> UpstreamTest:
    """A test that creates its policies once and validates once or more."""
    return UpstreamTest(*context, it, (Step(tuple(probes), policies=tuple(policies)),))


def deny_all_ingress(namespace: str, name: str) -> Json:
    """``GenNetworkPolicyWithNameAndPodSelector(name, LabelSelector{}, SetSpecIngressRules())``."""
    return network_policy(namespace, name, {}, ingress=[])


def ns_name_is(namespace: str) -> Json:
    """``LabelSelector{MatchLabels: {namespaceLabelKey: ns}}``."""
    return labels_selector({NAME_LABEL: namespace})


# --- the transcriptions, in upstream's order --------------------------------------------------


@upstream
def default_deny_ingress() -> UpstreamTest:
    r = Reachability()
    r.expect_peer(to_ns="x", allowed=False)
    return single(
        TCP_CONTEXT,
        "should support a 'default-deny-ingress' policy",
        [deny_all_ingress("x", "deny-ingress")],
        Probe(80, "TCP", r),
    )


@upstream
def default_deny_all() -> UpstreamTest:
    policy = network_policy("x", "deny-all", {}, ingress=[], egress=[])
    r = Reachability()
    r.expect_peer(to_ns="x", allowed=False)
    r.expect_peer(from_ns="x", allowed=False)
    return single(TCP_CONTEXT, "should support a 'default-deny-all' policy", [policy], Probe(80, "TCP", r))


@upstream
def allow_from_pods_within_namespace() -> UpstreamTest:
    policy = network_policy(
        "x", "x-a-allows-x-b", match_labels(pod="a"), ingress=[ingress_rule(peer(pods=match_labels(pod="b")))]
    )
    r = Reachability()
    r.expect_all_ingress("x/a", False)
    r.expect("x/b", "x/a", True)
    return single(
        TCP_CONTEXT,
        "should enforce policy to allow traffic from pods within server namespace based on PodSelector",
        [policy],
        Probe(80, "TCP", r),
    )


@upstream
def allow_ingress_for_target() -> UpstreamTest:
    allow = network_policy(
        "x", "allow-all-to-a", match_labels(pod="a"), ingress=[ingress_rule(peer(pods={}, namespaces={}))]
    )
    r = Reachability()
    r.expect_all_ingress("x/a", True)
    r.expect_all_ingress("x/b", False)
    r.expect_all_ingress("x/c", False)
    return single(
        TCP_CONTEXT,
        "should enforce policy to allow ingress traffic for a target",
        [deny_all_ingress("x", "deny-all"), allow],
        Probe(80, "TCP", r),
    )


@upstream
def allow_ingress_from_all_namespaces() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-from-another-ns",
        match_labels(pod="a"),
        ingress=[ingress_rule(peer(namespaces=match_labels()))],
    )
    return single(
        TCP_CONTEXT,
        "should enforce policy to allow ingress traffic from pods in all namespaces",
        [policy],
        Probe(80, "TCP", Reachability()),
    )


@upstream
def allow_only_from_other_namespace() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-client-a-via-ns-selector",
        match_labels(pod="a"),
        ingress=[ingress_rule(peer(namespaces=ns_name_is("y")))],
    )
    r = Reachability()
    r.expect_peer(from_ns="x", to_ns="x", to_pod="a", allowed=False)
    r.expect_peer(from_ns="z", to_ns="x", to_pod="a", allowed=False)
    return single(
        TCP_CONTEXT,
        "should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector",
        [policy],
        Probe(80, "TCP", r),
    )


@upstream
def pod_selector_match_expressions() -> UpstreamTest:
    policy = network_policy(
        "x",
        "x-a-allows-x-b",
        match_labels(pod="a"),
        ingress=[ingress_rule(peer(pods=match_expression("pod", "In", ["b"])))],
    )
    r = Reachability()
    r.expect_all_ingress("x/a", False)
    r.expect("x/b", "x/a", True)
    return single(
        TCP_CONTEXT,
        "should enforce policy based on PodSelector with MatchExpressions",
        [policy],
        Probe(80, "TCP", r),
    )


@upstream
def namespace_selector_match_expressions() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-ns-y-match-selector",
        match_labels(pod="a"),
        ingress=[ingress_rule(peer(namespaces=match_expression(NAME_LABEL, "In", ["y"])))],
    )
    r = Reachability()
    r.expect_peer(from_ns="x", to_ns="x", to_pod="a", allowed=False)
    r.expect_peer(from_ns="z", to_ns="x", to_pod="a", allowed=False)
    return single(
        TCP_CONTEXT,
        "should enforce policy based on NamespaceSelector with MatchExpressions",
        [policy],
        Probe(80, "TCP", r),
    )


@upstream
def pod_selector_or_namespace_selector() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-ns-y-match-selector",
        match_labels(pod="a"),
        ingress=[
            ingress_rule(
                peer(namespaces=match_expression(NAME_LABEL, "NotIn", ["x"])),
                peer(pods=match_labels(pod="b")),
            )
        ],
    )
    r = Reachability()
    r.expect("x/a", "x/a", False)
    r.expect("x/c", "x/a", False)
    return single(
        TCP_CONTEXT,
        "should enforce policy based on PodSelector or NamespaceSelector",
        [policy],
        Probe(80, "TCP", r),
    )


@upstream
def pod_selector_and_namespace_selector() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-ns-y-podselector-and-nsselector",
        match_labels(pod="a"),
        ingress=[
            ingress_rule(
                peer(pods=match_labels(pod="b"), namespaces=match_expression(NAME_LABEL, "NotIn", ["x"]))
            )
        ],
    )
    r = Reachability()
    r.expect_all_ingress("x/a", False)
    r.expect("y/b", "x/a", True)
    r.expect("z/b", "x/a", True)
    return single(
        TCP_CONTEXT,
        "should enforce policy based on PodSelector and NamespaceSelector",
        [policy],
        Probe(80, "TCP", r),
    )


@upstream
def multiple_pod_and_namespace_selectors() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-ns-y-z-pod-b-c",
        match_labels(pod="a"),
        ingress=[
            ingress_rule(
                peer(
                    pods=match_expression("pod", "In", ["b", "c"]),
                    namespaces=match_expression(NAME_LABEL, "NotIn", ["x"]),
                )
            )
        ],
    )
    r = Reachability()
    r.expect_peer(from_ns="x", to_ns="x", to_pod="a", allowed=False)
    r.expect("y/a", "x/a", False)
    r.expect("z/a", "x/a", False)
    return single(
        TCP_CONTEXT,
        "should enforce policy based on Multiple PodSelectors and NamespaceSelectors",
        [policy],
        Probe(80, "TCP", r),
    )


@upstream
def any_pod_selectors() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-ns-x-pod-b-c",
        match_labels(pod="a"),
        ingress=[ingress_rule(peer(pods=match_labels(pod="b")), peer(pods=match_labels(pod="c")))],
    )
    r = Reachability()
    r.expect_all_ingress("x/a", False)
    r.expect("x/b", "x/a", True)
    r.expect("x/c", "x/a", True)
    return single(
        TCP_CONTEXT, "should enforce policy based on any PodSelectors", [policy], Probe(80, "TCP", r)
    )


def allow_from_y_pod_a() -> tuple[Json, Reachability]:
    """Shared by the TCP, UDP and SCTP versions of the "pod in a different namespace" test."""
    policy = network_policy(
        "x",
        "allow-ns-y-pod-a-via-namespace-pod-selector",
        match_labels(pod="a"),
        ingress=[ingress_rule(peer(pods=match_labels(pod="a"), namespaces=ns_name_is("y")))],
    )
    r = Reachability()
    r.expect_all_ingress("x/a", False)
    r.expect("y/a", "x/a", True)
    return policy, r


POD_IN_OTHER_NAMESPACE = (
    "should enforce policy to allow traffic only from a pod in a different namespace"
    " based on PodSelector and NamespaceSelector"
)


@upstream
def pod_in_other_namespace() -> UpstreamTest:
    policy, r = allow_from_y_pod_a()
    return single(TCP_CONTEXT, POD_IN_OTHER_NAMESPACE, [policy], Probe(80, "TCP", r))


def allow_port_81_from_y(name: str, protocol: str) -> Json:
    return network_policy(
        "x",
        name,
        match_labels(pod="a"),
        ingress=[ingress_rule(peer(namespaces=ns_name_is("y")), ports=[port(81, protocol=protocol)])],
    )


def only_y_reaches_x_a(*, explicit_y: bool) -> Reachability:
    r = Reachability()
    r.expect_peer(from_ns="x", to_ns="x", to_pod="a", allowed=False)
    if explicit_y:
        r.expect_peer(from_ns="y", to_ns="x", to_pod="a", allowed=True)
    r.expect_peer(from_ns="z", to_ns="x", to_pod="a", allowed=False)
    return r


@upstream
def based_on_ports() -> UpstreamTest:
    policy = allow_port_81_from_y("allow-client-a-via-ns-selector", "TCP")
    return single(
        TCP_CONTEXT,
        "should enforce policy based on Ports",
        [policy],
        Probe(81, "TCP", only_y_reaches_x_a(explicit_y=True)),
    )


@upstream
def stacked_policies() -> UpstreamTest:
    allow_81 = allow_port_81_from_y("allow-client-a-via-ns-selector", "TCP")
    allow_80 = network_policy(
        "x",
        "allow-client-a-via-ns-selector-80",
        match_labels(pod="a"),
        ingress=[ingress_rule(peer(namespaces=ns_name_is("y")), ports=[port(80, protocol="TCP")])],
    )
    allow = only_y_reaches_x_a(explicit_y=True)
    deny = Reachability()
    deny.expect_all_ingress("x/a", False)
    return UpstreamTest(
        *TCP_CONTEXT,
        "should enforce multiple, stacked policies with overlapping podSelectors",
        (
            Step((Probe(81, "TCP", allow), Probe(80, "TCP", deny)), policies=(allow_81,)),
            Step((Probe(80, "TCP", allow),), policies=(allow_80,)),
        ),
    )


@upstream
def allow_all() -> UpstreamTest:
    policy = network_policy("x", "allow-all", match_labels(), ingress=[ingress_rule()])
    r = Reachability()
    return single(
        TCP_CONTEXT, "should support allow-all policy", [policy], Probe(80, "TCP", r), Probe(81, "TCP", r)
    )


@upstream
def ingress_on_one_named_port() -> UpstreamTest:
    policy = network_policy(
        "x", "allow-all", match_labels(), ingress=[ingress_rule(ports=[port("serve-81-tcp")])]
    )
    port_80 = Reachability()
    port_80.expect_peer(to_ns="x", allowed=False)
    return single(
        TCP_CONTEXT,
        "should allow ingress access on one named port",
        [policy],
        Probe(81, "TCP", Reachability()),
        Probe(80, "TCP", port_80),
    )


@upstream
def ingress_from_namespace_on_one_named_port() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-client-a-via-ns-selector-80",
        match_labels(pod="a"),
        ingress=[
            ingress_rule(peer(namespaces=ns_name_is("y")), ports=[port("serve-80-tcp", protocol="TCP")])
        ],
    )
    port_81 = Reachability()
    port_81.expect_all_ingress("x/a", False)
    return single(
        TCP_CONTEXT,
        "should allow ingress access from namespace on one named port",
        [policy],
        Probe(80, "TCP", only_y_reaches_x_a(explicit_y=False)),
        Probe(81, "TCP", port_81),
    )


@upstream
def egress_on_one_named_port() -> UpstreamTest:
    policy = network_policy(
        "x", "allow-egress", match_labels(), egress=[egress_rule(ports=[port("serve-80-tcp")])]
    )
    port_81 = Reachability()
    port_81.expect_peer(from_ns="x", allowed=False)
    return single(
        TCP_CONTEXT,
        "should allow egress access on one named port",
        [policy],
        Probe(80, "TCP", Reachability()),
        Probe(81, "TCP", port_81),
    )


@upstream
def updated_policy() -> UpstreamTest:
    allow = network_policy("x", "allow-all-mutate-to-deny-all", match_labels(), ingress=[ingress_rule()])
    deny = network_policy("x", "allow-all-mutate-to-deny-all", match_labels(), ingress=[])
    denied = Reachability()
    denied.expect_peer(to_ns="x", allowed=False)
    return UpstreamTest(
        *TCP_CONTEXT,
        "should enforce updated policy",
        (
            Step((Probe(81, "TCP", Reachability()),), policies=(allow,)),
            Step((Probe(81, "TCP", denied),), policies=(deny,)),
        ),
    )


@upstream
def ingress_from_updated_namespace() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-client-a-via-ns-selector",
        match_labels(pod="a"),
        ingress=[ingress_rule(peer(namespaces=match_labels(ns2="updated")))],
    )
    before = Reachability()
    before.expect_all_ingress("x/a", False)
    after = Reachability()
    after.expect_all_ingress("x/a", False)
    after.expect_peer(from_ns="y", allowed=True)
    return UpstreamTest(
        *TCP_CONTEXT,
        "should allow ingress access from updated namespace",
        (
            Step((Probe(80, "TCP", before),), policies=(policy,)),
            Step((Probe(80, "TCP", after),), namespace_labels={"y": {"ns": "y", "ns2": "updated"}}),
        ),
    )


@upstream
def ingress_from_updated_pod() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-client-a-via-pod-selector",
        match_labels(pod="a"),
        ingress=[ingress_rule(peer(pods=match_labels(pod="b", pod2="updated")))],
    )
    before = Reachability()
    before.expect_all_ingress("x/a", False)
    after = Reachability()
    after.expect_all_ingress("x/a", False)
    after.expect("x/b", "x/a", True)
    return UpstreamTest(
        *TCP_CONTEXT,
        "should allow ingress access from updated pod",
        (
            Step((Probe(80, "TCP", before),), policies=(policy,)),
            Step((Probe(80, "TCP", after),), pod_labels={"x/b": {"pod": "b", "pod2": "updated"}}),
        ),
    )


@upstream
def deny_ingress_from_other_namespaces() -> UpstreamTest:
    policy = network_policy("x", "deny-empty-policy", {}, ingress=[ingress_rule(peer(pods=match_labels()))])
    r = Reachability()
    r.expect_peer(from_ns="y", to_ns="x", allowed=False)
    r.expect_peer(from_ns="z", to_ns="x", allowed=False)
    return single(
        TCP_CONTEXT, "should deny ingress from pods on other namespaces", [policy], Probe(80, "TCP", r)
    )


@upstream
def deny_ingress_to_updated_pod() -> UpstreamTest:
    policy = network_policy(
        "x", "deny-ingress-via-label-selector", match_labels(target="isolated"), ingress=[]
    )
    isolated = Reachability()
    isolated.expect_all_ingress("x/a", False)
    return UpstreamTest(
        *TCP_CONTEXT,
        "should deny ingress access to updated pod",
        (
            Step((Probe(80, "TCP", Reachability()),), policies=(policy,)),
            Step((Probe(80, "TCP", isolated),), pod_labels={"x/a": {"pod": "a", "target": "isolated"}}),
        ),
    )


@upstream
def deny_egress_by_pod_selector() -> UpstreamTest:
    policy = network_policy("x", "deny-egress-pod-a", match_labels(pod="a"), egress=[])
    r = Reachability()
    r.expect_all_egress("x/a", False)
    return single(
        TCP_CONTEXT, "should deny egress from pods based on PodSelector", [policy], Probe(80, "TCP", r)
    )


@upstream
def deny_egress_from_namespace() -> UpstreamTest:
    policy = network_policy("x", "deny-egress-ns-x", {}, egress=[])
    r = Reachability()
    r.expect_peer(from_ns="x", allowed=False)
    return single(
        TCP_CONTEXT, "should deny egress from all pods in a namespace", [policy], Probe(80, "TCP", r)
    )


@upstream
def ingress_and_egress_together() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-client-a-via-pod-selector",
        match_labels(pod="a"),
        ingress=[ingress_rule(peer(pods=match_labels(pod="b")))],
        egress=[egress_rule(ports=[port(80)])],
        policy_types=["Egress", "Ingress"],
    )
    port_80 = Reachability()
    port_80.expect_all_ingress("x/a", False)
    port_80.expect("x/b", "x/a", True)
    port_81 = Reachability()
    port_81.expect_all_ingress("x/a", False)
    port_81.expect_all_egress("x/a", False)
    port_81.expect("x/b", "x/a", True)
    return single(
        TCP_CONTEXT,
        "should work with Ingress, Egress specified together",
        [policy],
        Probe(80, "TCP", port_80),
        Probe(81, "TCP", port_81),
    )


@upstream
def egress_denied_on_client_side() -> UpstreamTest:
    egress = network_policy(
        "x",
        "allow-to-ns-y-pod-a",
        match_labels(pod="a"),
        egress=[egress_rule(peer(pods=match_labels(pod="a"), namespaces=ns_name_is("y")))],
    )
    from_x_a = ingress_rule(peer(pods=match_labels(pod="a"), namespaces=ns_name_is("x")))
    ingress_a = network_policy(
        "y", "allow-from-xa-on-ya-match-selector", match_labels(pod="a"), ingress=[from_x_a]
    )
    ingress_b = network_policy(
        "y", "allow-from-xa-on-yb-match-selector", match_labels(pod="b"), ingress=[from_x_a]
    )
    r = Reachability()
    r.expect_peer(from_ns="x", from_pod="a", allowed=False)
    r.expect_peer(to_ns="y", to_pod="a", allowed=False)
    r.expect_peer(from_ns="x", from_pod="a", to_ns="y", to_pod="a", allowed=True)
    r.expect_peer(to_ns="y", to_pod="b", allowed=False)
    return single(
        TCP_CONTEXT,
        "should support denying of egress traffic on the client side"
        " (even if the server explicitly allows this traffic)",
        [egress, ingress_a, ingress_b],
        Probe(80, "TCP", r),
    )


@upstream
def egress_to_pod_in_other_namespace() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-to-ns-y-pod-a",
        match_labels(pod="a"),
        egress=[egress_rule(peer(pods=match_labels(pod="a"), namespaces=ns_name_is("y")))],
    )
    r = Reachability()
    r.expect_all_egress("x/a", False)
    r.expect("x/a", "y/a", True)
    return single(
        TCP_CONTEXT,
        "should enforce egress policy allowing traffic to a server in a different namespace"
        " based on PodSelector and NamespaceSelector",
        [policy],
        Probe(80, "TCP", r),
    )


@upstream
def ingress_any_port_one_protocol() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-ingress-by-proto",
        match_labels(pod="a"),
        ingress=[ingress_rule(ports=[port(protocol="TCP")])],
    )
    udp = Reachability()
    udp.expect_peer(to_ns="x", to_pod="a", allowed=False)
    return single(
        TCP_CONTEXT,
        "should enforce ingress policy allowing any port traffic to a server on a specific protocol",
        [policy],
        Probe(80, "TCP", Reachability()),
        Probe(80, "UDP", udp),
    )


@upstream
def ingress_allow_all_takes_precedence() -> UpstreamTest:
    only_80 = network_policy(
        "x", "allow-ingress-port-80", match_labels(), ingress=[ingress_rule(ports=[port(80)])]
    )
    allow_all_ = network_policy("x", "allow-ingress", match_labels(), ingress=[ingress_rule()])
    blocked = Reachability()
    blocked.expect_peer(to_ns="x", allowed=False)
    return UpstreamTest(
        *TCP_CONTEXT,
        "should enforce multiple ingress policies with ingress allow-all policy taking precedence",
        (
            Step((Probe(81, "TCP", blocked),), policies=(only_80,)),
            Step((Probe(81, "TCP", Reachability()),), policies=(allow_all_,)),
        ),
    )


@upstream
def egress_allow_all_takes_precedence() -> UpstreamTest:
    only_80 = network_policy(
        "x", "allow-egress-port-80", match_labels(), egress=[egress_rule(ports=[port(80)])]
    )
    allow_all_ = network_policy("x", "allow-egress", match_labels(), egress=[egress_rule()])
    blocked = Reachability()
    blocked.expect_peer(from_ns="x", allowed=False)
    return UpstreamTest(
        *TCP_CONTEXT,
        "should enforce multiple egress policies with egress allow-all policy taking precedence",
        (
            Step((Probe(81, "TCP", blocked),), policies=(only_80,)),
            Step((Probe(81, "TCP", Reachability()),), policies=(allow_all_,)),
        ),
    )


@upstream
def stop_enforcing_after_delete() -> UpstreamTest:
    policy = network_policy("x", "deny-all", {}, ingress=[], egress=[])
    denied = Reachability()
    denied.expect_peer(from_ns="x", allowed=False)
    denied.expect_peer(to_ns="x", allowed=False)
    return UpstreamTest(
        *TCP_CONTEXT,
        "should stop enforcing policies after they are deleted",
        (
            Step((Probe(80, "TCP", denied),), policies=(policy,)),
            Step((Probe(80, "TCP", Reachability()),), remove_policies=("x/deny-all",)),
        ),
    )


def cidr_egress_policy(*block: Json) -> Json:
    """``allow-client-a-via-cidr-egress-rule``: x/a may egress only to ``block``."""
    return network_policy(
        "x", "allow-client-a-via-cidr-egress-rule", match_labels(pod="a"), egress=[egress_rule(*block)]
    )


@dataclass(frozen=True, slots=True)
class AddressFamily:
    """How a test spells a pod's address: ``{{ip4:x/b}}`` and the host mask (32 or 128) that
    upstream picks with ``utilnet.IsIPv6String(pod.Status.PodIP)``."""

    token: str
    host_mask: int
    suffix: str

    def host(self, pod: str) -> str:
        return f"{{{{{self.token}:{pod}}}}}/{self.host_mask}"

    def large(self, pod: str) -> str:
        """``<pod IP>/4``: the /4 around the pod (the API keeps the network, dropping host bits)."""
        return f"{{{{{self.token}:{pod}}}}}/4"


IPV4 = AddressFamily("ip4", 32, "")
IPV6 = AddressFamily("ip6", 128, "-ipv6")


def egress_to_cidr(family: AddressFamily) -> UpstreamTest:
    r = Reachability()
    r.expect_all_egress("x/a", False)
    r.expect("x/a", "y/b", True)
    return single(
        TCP_CONTEXT,
        "should allow egress access to server in CIDR block",
        [cidr_egress_policy(ip_block(family.host("y/b")))],
        Probe(80, "TCP", r),
    )


def except_clause(family: AddressFamily) -> UpstreamTest:
    policy = cidr_egress_policy(ip_block(family.large("x/a"), family.host("x/b")))
    r = Reachability()
    r.expect("x/a", "x/b", False)
    return single(
        TCP_CONTEXT,
        "should enforce except clause while egress access to server in CIDR block",
        [policy],
        Probe(80, "TCP", r),
    )


def cidr_and_except_overlap(family: AddressFamily) -> UpstreamTest:
    excepting = cidr_egress_policy(ip_block(family.large("x/a"), family.host("x/b")))
    allowing = cidr_egress_policy(ip_block(family.host("x/b")))
    before = Reachability()
    before.expect("x/a", "x/b", False)
    after = Reachability()
    after.expect_all_egress("x/a", False)
    after.expect("x/a", "x/b", True)
    return UpstreamTest(
        *TCP_CONTEXT,
        "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed",
        (
            Step((Probe(80, "TCP", before),), policies=(excepting,)),
            Step((Probe(80, "TCP", after),), policies=(allowing,)),
        ),
    )


CIDR_TESTS = (egress_to_cidr, except_clause, cidr_and_except_overlap)

for _cidr_test in CIDR_TESTS:
    upstream(partial(_cidr_test, IPV4))


@upstream
def ingress_and_egress_independent() -> UpstreamTest:
    allow_egress = network_policy(
        "x", "allow-egress-for-target", match_labels(pod="a"), egress=[egress_rule()]
    )
    deny_ingress = network_policy("x", "deny-ingress-via-label-selector", match_labels(pod="a"), ingress=[])
    denied = Reachability()
    denied.expect_all_ingress("x/a", False)
    return UpstreamTest(
        *TCP_CONTEXT,
        "should enforce policies to check ingress and egress policies can be controlled independently"
        " based on PodSelector",
        (
            Step((Probe(80, "TCP", Reachability()),), policies=(allow_egress,)),
            Step((Probe(80, "TCP", denied),), policies=(deny_ingress,)),
        ),
    )


@upstream
def sctp_is_not_tcp() -> UpstreamTest:
    sctp_only = network_policy(
        "x",
        "allow-only-sctp-ingress-on-port-81",
        match_labels(pod="a"),
        ingress=[ingress_rule(ports=[port(81, protocol="SCTP")])],
    )
    r = Reachability()
    r.expect_peer(to_ns="x", allowed=False)
    return single(
        TCP_CONTEXT,
        "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
        [deny_all_ingress("x", "deny-ingress"), sctp_only],
        Probe(81, "TCP", r),
    )


@upstream
def sctp_policy_isolates() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-only-sctp-ingress-on-port-80",
        match_labels(pod="a"),
        ingress=[ingress_rule(ports=[port(80, protocol="SCTP")])],
    )
    r = Reachability()
    r.expect_all_ingress("x/a", False)
    return single(
        TCP_CONTEXT,
        "should properly isolate pods that are selected by a policy allowing SCTP,"
        " even if the plugin doesn't support SCTP",
        [policy],
        Probe(81, "TCP", r),
    )


@upstream
def udp_only_is_not_tcp() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-only-udp-ingress-on-port-81",
        match_labels(pod="a"),
        ingress=[ingress_rule(ports=[port(81, protocol="UDP")])],
    )
    r = Reachability()
    r.expect_all_ingress("x/a", False)
    return single(
        TCP_CONTEXT,
        "should not allow access by TCP when a policy specifies only UDP",
        [policy],
        Probe(81, "TCP", r),
    )


@upstream
def default_namespace_label_match_labels() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-client-a-via-ns-selector-for-immutable-ns-label",
        match_labels(pod="a"),
        ingress=[ingress_rule(peer(namespaces=ns_name_is("y")))],
    )
    return single(
        TCP_CONTEXT,
        "should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label",
        [policy],
        Probe(80, "TCP", only_y_reaches_x_a(explicit_y=False)),
    )


@upstream
def default_namespace_label_match_expressions() -> UpstreamTest:
    policy = network_policy(
        "x",
        "allow-ns-y-match-selector-for-immutable-ns-label",
        match_labels(pod="a"),
        egress=[egress_rule(peer(namespaces=match_expression(NAME_LABEL, "NotIn", ["y"])))],
    )
    r = Reachability()
    r.expect_peer(from_ns="x", from_pod="a", to_ns="y", allowed=False)
    return single(
        TCP_CONTEXT,
        "should enforce policy based on NamespaceSelector with MatchExpressions using default ns label",
        [policy],
        Probe(80, "TCP", r),
    )


def default_deny_ingress_over(context: tuple[str, str], protocol: str) -> UpstreamTest:
    r = Reachability()
    r.expect_peer(to_ns="x", allowed=False)
    return single(
        context,
        "should support a 'default-deny-ingress' policy",
        [deny_all_ingress("x", "deny-all")],
        Probe(80, protocol, r),
    )


def based_on_ports_over(context: tuple[str, str], protocol: str) -> UpstreamTest:
    policy = allow_port_81_from_y("allow-ingress-on-port-81-ns-x", protocol)
    return single(
        context,
        "should enforce policy based on Ports",
        [policy],
        Probe(81, protocol, only_y_reaches_x_a(explicit_y=False)),
    )


def pod_in_other_namespace_over(context: tuple[str, str], protocol: str) -> UpstreamTest:
    policy, r = allow_from_y_pod_a()
    return single(context, POD_IN_OTHER_NAMESPACE, [policy], Probe(80, protocol, r))


for _context, _protocol in ((UDP_CONTEXT, "UDP"), (SCTP_CONTEXT, "SCTP")):
    for _variant in (default_deny_ingress_over, based_on_ports_over, pod_in_other_namespace_over):
        upstream(partial(_variant, _context, _protocol))


# --- rendering and checking -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rendered:
    """A case ready to write: its file name and the probe-case document."""

    filename: str
    test: UpstreamTest
    document: Json


def standard_model_ipv6() -> Json:
    """The standard model (``probe-cases.md``) spelled inline, but single-stack IPv6: upstream
    runs the same CIDR tests on IPv6 clusters, taking the /128 branch of ``hostMask``."""
    return {
        "ip_families": ["IPv6"],
        "nodes": ["node-1", "node-2"],
        "namespaces": {ns: {"ns": ns} for ns in NAMESPACES},
        "pods": {key: {"labels": {"pod": key.split("/")[1]}} for key in ALL_PODS},
    }


def render(test: UpstreamTest, *, family: AddressFamily = IPV4) -> Rendered:
    """The probe-case document for one upstream test; key order follows the spec's examples."""
    steps = []
    for step in test.steps:
        out: Json = {}
        if step.remove_policies:
            out["remove_policies"] = list(step.remove_policies)
        if step.policies:
            out["policies"] = list(step.policies)
        if step.namespace_labels:
            out["namespace_labels"] = {
                ns: dict(labels) for ns, labels in sorted(step.namespace_labels.items())
            }
        if step.pod_labels:
            out["pod_labels"] = {pod: dict(labels) for pod, labels in sorted(step.pod_labels.items())}
        out["probes"] = [
            {
                "port": probe.port,
                "protocol": probe.protocol,
                **({"family": "IPv6"} if family is IPV6 else {}),
                "via": via,
                "expected": probe.reachability.table(via=via),
            }
            for probe in step.probes
            for via in VIAS
        ]
        steps.append(out)
    name = test.name + (" (IPv6 cluster)" if family is IPV6 else "")
    document: Json = {
        "name": name,
        "model": standard_model_ipv6() if family is IPV6 else "standard",
        "steps": steps,
    }
    return Rendered(f"{test.slug}{family.suffix}.yaml", test, document)


def all_cases() -> list[Rendered]:
    cases = [render(make()) for make in TESTS]
    cases += [render(cidr_test(IPV6), family=IPV6) for cidr_test in CIDR_TESTS]
    return cases


STEP_KEYS = (
    "remove_policies",
    "policies",
    "namespace_labels",
    "pod_labels",
    "pods_removed",
    "pods_added",
    "probes",
)
PROBE_KEYS = ("port", "protocol", "family", "via", "expected")
POLICY_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check(case: Rendered) -> list[str]:
    """Problems with a rendered case against ``probe-cases.md``; empty when it conforms.

    Checked: the top-level and step keys and their order, probe fields and values, that every
    expected table names only model pods and holds booleans, that ``via: pod`` tables are
    complete with self pairs allowed and ``via: service`` tables are complete without them,
    that policies are namespaced and well named, and that removals name a policy created in an
    earlier step.
    """
    problems: list[str] = []
    where = case.filename
    doc = yaml.safe_load(dump(case.document))
    if list(doc) != ["name", "model", "steps"]:
        problems.append(f"{where}: top-level keys {list(doc)}")
    pods = set(ALL_PODS)
    created: set[str] = set()
    for i, step in enumerate(doc["steps"]):
        at = f"{where}: steps[{i}]"
        order = [STEP_KEYS.index(key) for key in step if key in STEP_KEYS]
        if set(step) - set(STEP_KEYS) or order != sorted(order):
            problems.append(f"{at}: keys {list(step)}")
        for removed in step.get("remove_policies", []):
            if removed not in created:
                problems.append(f"{at}.remove_policies: {removed} was never created")
            created.discard(removed)
        for j, policy in enumerate(step.get("policies", [])):
            meta = policy.get("metadata", {})
            if (
                policy.get("kind") != "NetworkPolicy"
                or meta.get("namespace") not in NAMESPACES
                or not POLICY_NAME.match(meta.get("name", ""))
            ):
                problems.append(f"{at}.policies[{j}]: bad header {meta}")
            created.add(f"{meta.get('namespace')}/{meta.get('name')}")
        for ns in step.get("namespace_labels", {}):
            if ns not in NAMESPACES:
                problems.append(f"{at}.namespace_labels: unknown namespace {ns}")
        for pod in step.get("pod_labels", {}):
            if pod not in pods:
                problems.append(f"{at}.pod_labels: unknown pod {pod}")
        if not step.get("probes"):
            problems.append(f"{at}: no probes")
        for j, probe in enumerate(step.get("probes", [])):
            pat = f"{at}.probes[{j}]"
            if [key for key in probe if key in PROBE_KEYS] != [
                key for key in PROBE_KEYS if key in probe
            ] or set(probe) - set(PROBE_KEYS):
                problems.append(f"{pat}: keys {list(probe)}")
            if not isinstance(probe.get("port"), int) or not 1 <= probe["port"] <= 65535:
                problems.append(f"{pat}.port: {probe.get('port')!r}")
            if probe.get("protocol") not in ("TCP", "UDP", "SCTP"):
                problems.append(f"{pat}.protocol: {probe.get('protocol')!r}")
            if probe.get("family", "IPv4") not in ("IPv4", "IPv6") or probe.get("via") not in VIAS:
                problems.append(f"{pat}: family/via {probe.get('family')!r}/{probe.get('via')!r}")
            table = probe.get("expected", {})
            if set(table) != pods:
                problems.append(f"{pat}.expected: sources {sorted(table)}")
            for src, row in table.items():
                want = pods if probe.get("via") == "pod" else pods - {src}
                if set(row) != want or not all(isinstance(v, bool) for v in row.values()):
                    problems.append(f"{pat}.expected.{src}: destinations {sorted(row)}")
                if probe.get("via") == "pod" and row.get(src) is not True:
                    problems.append(f"{pat}.expected.{src}.{src}: a pod's own address must be allowed")
    return problems


class _PlainDumper(yaml.SafeDumper):
    """Writes a shared object out in full each time: no ``&anchor``/``*alias`` in the cases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(document: Json) -> str:
    return yaml.dump(
        document,
        Dumper=_PlainDumper,
        sort_keys=False,
        default_flow_style=False,
        width=4096,
        allow_unicode=True,
    )


def file_text(case: Rendered) -> str:
    header = (
        f"# Generated by generate.py from {UPSTREAM_FILE}; do not edit.\n"
        f"# Upstream test: {case.test.name}\n"
    )
    return header + dump(case.document)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="verify the files on disk instead of writing them"
    )
    args = parser.parse_args(argv)

    cases = all_cases()
    names = [case.filename for case in cases]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    problems = [f"duplicate file name {name}" for name in duplicates]
    for case in cases:
        problems += check(case)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2

    wanted = {case.filename: file_text(case) for case in cases}
    existing = {path.name for path in HERE.glob("*.yaml")}
    if args.check:
        stale = sorted(existing - set(wanted))
        differ = sorted(
            name
            for name, text in wanted.items()
            if not (HERE / name).is_file() or (HERE / name).read_text() != text
        )
        for name in stale:
            print(f"{name}: not produced by generate.py", file=sys.stderr)
        for name in differ:
            print(f"{name}: missing or out of date; run generate.py", file=sys.stderr)
        return 1 if stale or differ else 0
    for name in sorted(existing - set(wanted)):
        (HERE / name).unlink()
    for name, text in sorted(wanted.items()):
        (HERE / name).write_text(text)
    print(f"wrote {len(wanted)} cases to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
