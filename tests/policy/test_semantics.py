"""The reference semantics, one table row per rule of the NetworkPolicy API.

Every row names the behaviour it pins; the comment above it quotes the API reference (or the
upstream e2e test, or docs/semantics.md for what the API leaves open) it implements. Expected
values come from those sentences, not from running the code.

Standard model (tests.builders.standard_cluster): namespaces x, y, z labelled ns=<name>; pods
a, b, c labelled pod=<name>, ports 80/81 TCP/UDP/SCTP; x/a, x/c, y/b, z/a, z/c on node-1
(192.168.0.1), the others on node-2 (192.168.0.2); x/a is 10.244.1.10, x/b 10.244.2.11,
x/c 10.244.1.12, y/a 10.244.2.13.
"""

from __future__ import annotations

import pytest

from policyctl.policy.model import Direction, Family
from policyctl.policy.semantics import evaluate, evaluate_direction, is_isolated, selecting_policies
from policyctl.policy.verdicts import Bypass, Verdict
from tests.builders import (
    cluster,
    connect,
    container_port,
    ip_block,
    namespace,
    node,
    pod,
    pod_peer,
    policy,
    port,
    requirement,
    rule,
    selector,
    standard_cluster,
    with_policies,
)

STANDARD = standard_cluster()
DENY_INGRESS_X = policy("x/deny-ingress", {}, types=["Ingress"])
DENY_EGRESS_X = policy("x/deny-egress", {}, types=["Egress"])
DENY_BOTH_X = policy("x/deny-both", {}, types=["Ingress", "Egress"])


def allow_to_a(*peers, ports=()):
    """x/allow-a: pods pod=a in x admit ingress from ``peers`` on ``ports``."""
    return standard_cluster(policy("x/allow-a", {"pod": "a"}, ingress=[rule(*peers, ports=ports)]))


def egress_from_a(*peers, ports=()):
    """x/egress-a: pods pod=a in x may open connections to ``peers`` on ``ports`` only."""
    return standard_cluster(policy("x/egress-a", {"pod": "a"}, egress=[rule(*peers, ports=ports)], types=["Egress"]))


NAMED = cluster(
    namespace("x", ns="x"),
    node("node-1", "192.168.0.1"),
    pod(
        "x/web",
        {"app": "web"},
        node="node-1",
        ips=["10.0.0.10"],
        ports=[container_port(8080, "TCP", "http"), container_port(53, "UDP", "dns")],
    ),
    pod("x/client", {"app": "client"}, node="node-1", ips=["10.0.0.20"], ports=[container_port(9090, "TCP", "http")]),
)


def named(*policies):
    return with_policies(NAMED, *policies)


DUAL = cluster(
    namespace("x", ns="x"),
    node("node-1", "192.168.0.1", "fd00:192::1"),
    node("node-2", "192.168.0.2", "fd00:192::2"),
    pod("x/a", {"pod": "a"}, node="node-1", ips=["10.0.1.10", "fd00:10:1::10"]),
    pod("x/b", {"pod": "b"}, node="node-2", ips=["10.0.2.11", "fd00:10:2::11"]),
    pod("x/v4", {"pod": "v4"}, node="node-2", ips=["10.0.2.12"]),
    pod("x/template", {"pod": "t"}, node=None),
    pod("x/host", {"pod": "host"}, node="node-2", ips=["192.168.0.2", "fd00:192::2"], host_network=True),
    pod("x/host-1", {"pod": "host"}, node="node-1", ips=["192.168.0.1"], host_network=True),
    policy(
        "x/ingress-a",
        {"pod": "a"},
        ingress=[rule(ip_block("fd00:10:2::/64"), ports=[port(443)]), rule(pod_peer({"pod": "t"}))],
    ),
)

LABELS = cluster(
    namespace("x", ns="x"),
    namespace("prod", env="prod"),
    namespace("plain"),
    node("node-1", "192.168.0.1"),
    pod("x/a", {"pod": "a"}, node="node-1", ips=["10.0.0.1"]),
    pod("prod/b", {"pod": "b"}, node="node-1", ips=["10.0.0.2"]),
    pod("plain/c", {}, node="node-1", ips=["10.0.0.3"]),
)


def labels_with(*peers):
    return with_policies(LABELS, policy("x/allow-a", {"pod": "a"}, ingress=[rule(*peers)]))


def row(name, base, source, destination, port_number=80, *, allowed, reason=None, bypass=None, **connection):
    return pytest.param(
        base, connect(base, source, destination, port_number, **connection), allowed, reason, bypass, id=name
    )


def reasons_of(verdict: Verdict) -> list[str]:
    found = [verdict.note]
    for half in (verdict.egress, verdict.ingress):
        found.append(half.note)
        for result in half.policies:
            for r in result.rules:
                found.extend(reason for peer in r.peers for reason in peer.reasons)
                found.extend(p.reason for p in r.ports)
    return found


ROWS = [
    # "Outgoing traffic is allowed if there are no NetworkPolicies selecting the pod" (and the
    # same for ingress): with no policies everything is allowed.
    row("no-policy-allows-everything", STANDARD, "x/a", "y/b", allowed=True),
    # "An empty podSelector selects all pods in this namespace"; "If this field is empty then
    # this NetworkPolicy does not allow any traffic".
    row(
        "empty-podselector-isolates-every-pod-of-namespace",
        standard_cluster(DENY_INGRESS_X),
        "y/a",
        "x/c",
        allowed=False,
    ),
    # Policies are namespaced: "selects particular Pods in the same namespace as the NetworkPolicy".
    row(
        "policy-in-other-namespace-never-selects",
        standard_cluster(policy("y/deny", {}, types=["Ingress"])),
        "x/a",
        "x/b",
        allowed=True,
    ),
    # "A pod is isolated for egress if there is any NetworkPolicy that both selects the pod and
    # has "Egress" in its policyTypes": an Ingress-only policy leaves egress open...
    row("ingress-only-policy-leaves-egress-open", standard_cluster(DENY_INGRESS_X), "x/a", "y/a", allowed=True),
    # ... and an Egress-only policy leaves ingress open.
    row("egress-only-policy-leaves-ingress-open", standard_cluster(DENY_EGRESS_X), "y/a", "x/a", allowed=True),
    row("egress-only-policy-isolates-egress", standard_cluster(DENY_EGRESS_X), "x/a", "y/a", allowed=False),
    # policyTypes "Valid options are ["Ingress"], ["Egress"], or ["Ingress", "Egress"]": rules of
    # a direction not listed are ignored (an allow-all ingress rule under Egress-only types).
    row(
        "ingress-rules-ignored-when-ingress-not-in-policytypes",
        standard_cluster(policy("x/p", {}, ingress=[rule()], types=["Egress"])),
        "x/a", "y/a", allowed=False,
    ),
    row(
        "egress-rules-ignored-when-egress-not-in-policytypes",
        standard_cluster(policy("x/p", {}, egress=[rule()], types=["Ingress"])),
        "y/a", "x/a", allowed=False,
    ),
    # "If this field is empty or missing, this rule matches all sources" and "... all ports":
    # the rule `{}` allows everything, from anywhere, on any port and protocol.
    row("empty-ingress-rule-allows-all-pods", allow_to_a(), "z/c", "x/a", 9999, protocol="UDP", allowed=True),
    row("empty-ingress-rule-allows-external", allow_to_a(), "203.0.113.9", "x/a", allowed=True),
    # Missing/empty `from` with ports: every source, only those ports.
    row(
        "missing-from-matches-all-sources-on-listed-port", allow_to_a(ports=[port(80)]), "z/b", "x/a", 80, allowed=True
    ),
    row("missing-from-still-restricts-ports", allow_to_a(ports=[port(80)]), "z/b", "x/a", 81, allowed=False),
    # podSelector without namespaceSelector "selects the pods matching podSelector in the
    # policy's own namespace".
    row("podselector-peer-matches-own-namespace", allow_to_a(pod_peer({"pod": "b"})), "x/b", "x/a", allowed=True),
    row(
        "podselector-peer-never-matches-other-namespace",
        allow_to_a(pod_peer({"pod": "b"})), "y/b", "x/a", allowed=False,
        reason="policy namespace x only: peer is in y",
    ),
    # namespaceSelector alone "selects all pods in the namespaces selected by namespaceSelector".
    row(
        "namespaceselector-peer-matches-every-pod-there",
        allow_to_a(pod_peer(None, {"ns": "y"})),
        "y/c",
        "x/a",
        allowed=True,
    ),
    row(
        "namespaceselector-peer-rejects-other-namespaces",
        allow_to_a(pod_peer(None, {"ns": "y"})), "x/b", "x/a", allowed=False,
        reason="namespace x: ns=y required, has ns=x",
    ),
    # "if present but empty, it selects all namespaces".
    row("empty-namespaceselector-selects-all-namespaces", allow_to_a(pod_peer(None, {})), "z/c", "x/a", allowed=True),
    row(
        "empty-namespaceselector-selects-no-external-address",
        allow_to_a(pod_peer(None, {})), "203.0.113.9", "x/a", allowed=False,
        reason="203.0.113.9 is not a pod: only ipBlocks can match it",
    ),
    # "If namespaceSelector is also set, then the NetworkPolicyPeer as a whole selects the pods
    # matching podSelector in the Namespaces selected by NamespaceSelector": one peer = AND.
    row(
        "namespace-and-pod-selector-in-one-peer-and-both-hold",
        allow_to_a(pod_peer({"pod": "b"}, {"ns": "y"})),
        "y/b",
        "x/a",
        allowed=True,
    ),
    row(
        "namespace-and-pod-selector-in-one-peer-pod-fails",
        allow_to_a(pod_peer({"pod": "b"}, {"ns": "y"})), "y/c", "x/a", allowed=False,
        reason="pod y/c: label pod=b required, has pod=c",
    ),
    row(
        "namespace-and-pod-selector-in-one-peer-namespace-fails",
        allow_to_a(pod_peer({"pod": "b"}, {"ns": "y"})),
        "z/b",
        "x/a",
        allowed=False,
    ),
    # "Items in this list are combined using a logical OR operation": two peers = OR.
    row(
        "two-peers-are-ored-first",
        allow_to_a(pod_peer({"pod": "b"}, {}), pod_peer(None, {"ns": "y"})),
        "z/b",
        "x/a",
        allowed=True,
    ),
    row(
        "two-peers-are-ored-second",
        allow_to_a(pod_peer({"pod": "b"}, {}), pod_peer(None, {"ns": "y"})),
        "y/c",
        "x/a",
        allowed=True,
    ),
    row(
        "two-peers-are-ored-neither",
        allow_to_a(pod_peer({"pod": "b"}, {}), pod_peer(None, {"ns": "y"})),
        "z/c",
        "x/a",
        allowed=False,
    ),
    # "the traffic matches at least one ingress rule across all of the NetworkPolicy objects
    # whose podSelector matches the pod": policies are additive.
    row(
        "union-of-policies-second-policy-allows",
        standard_cluster(
            policy("x/from-b", {"pod": "a"}, ingress=[rule(pod_peer({"pod": "b"}))]),
            policy("x/from-y", {}, ingress=[rule(pod_peer(None, {"ns": "y"}))]),
        ),
        "y/c", "x/a", allowed=True,
    ),
    row(
        "union-of-policies-deny-all-adds-nothing-to-deny",
        standard_cluster(DENY_INGRESS_X, policy("x/from-b", {"pod": "a"}, ingress=[rule(pod_peer({"pod": "b"}))])),
        "x/b", "x/a", allowed=True,
    ),
    row(
        "union-of-policies-neither-allows",
        standard_cluster(DENY_INGRESS_X, policy("x/from-b", {"pod": "a"}, ingress=[rule(pod_peer({"pod": "b"}))])),
        "x/c", "x/a", allowed=False,
    ),
    # Label selector operators: "a missing key is not an empty value" (NotIn matches a namespace
    # without the key, In ("") does not).
    row(
        "notin-matches-namespace-without-key",
        labels_with(pod_peer(None, selector(None, requirement("env", "NotIn", "prod")))),
        "plain/c",
        "x/a",
        allowed=True,
    ),
    row(
        "notin-rejects-namespace-with-value",
        labels_with(pod_peer(None, selector(None, requirement("env", "NotIn", "prod")))),
        "prod/b",
        "x/a",
        allowed=False,
    ),
    row(
        "in-empty-value-rejects-missing-key",
        labels_with(pod_peer(None, selector(None, requirement("env", "In", "")))), "plain/c", "x/a", allowed=False,
        reason="namespace plain: env in () required, has no env label",
    ),
    # Exists in the podSelector with a namespaceSelector: the namespaceSelector decides the
    # namespaces, as for every other operator.
    row(
        "exists-podselector-with-namespaceselector",
        labels_with(pod_peer(selector(None, requirement("pod", "Exists")), {"env": "prod"})),
        "prod/b",
        "x/a",
        allowed=True,
    ),
    row(
        "doesnotexist-podselector-matches-unlabelled-pod",
        labels_with(pod_peer(selector(None, requirement("pod", "DoesNotExist")), {})),
        "plain/c",
        "x/a",
        allowed=True,
    ),
    # IPBlock: "a particular CIDR ... The except entry describes CIDRs that should not be included".
    # The network and last addresses belong to the CIDR; one past either end does not.
    row("ipblock-cidr-first-address", allow_to_a(ip_block("203.0.113.0/24")), "203.0.113.0", "x/a", allowed=True),
    row("ipblock-cidr-last-address", allow_to_a(ip_block("203.0.113.0/24")), "203.0.113.255", "x/a", allowed=True),
    row(
        "ipblock-just-below-cidr",
        allow_to_a(ip_block("203.0.113.0/24")),
        "203.0.112.255",
        "x/a",
        allowed=False,
        reason="203.0.112.255 is outside 203.0.113.0/24",
    ),
    row("ipblock-just-above-cidr", allow_to_a(ip_block("203.0.113.0/24")), "203.0.114.0", "x/a", allowed=False),
    row(
        "ipblock-except-first-address",
        allow_to_a(ip_block("198.51.0.0/16", "198.51.1.0/24")),
        "198.51.1.0",
        "x/a",
        allowed=False,
        reason="198.51.1.0 is in except 198.51.1.0/24",
    ),
    row(
        "ipblock-except-last-address",
        allow_to_a(ip_block("198.51.0.0/16", "198.51.1.0/24")),
        "198.51.1.255",
        "x/a",
        allowed=False,
    ),
    row(
        "ipblock-just-below-except",
        allow_to_a(ip_block("198.51.0.0/16", "198.51.1.0/24")),
        "198.51.0.255",
        "x/a",
        allowed=True,
    ),
    row(
        "ipblock-just-above-except",
        allow_to_a(ip_block("198.51.0.0/16", "198.51.1.0/24")),
        "198.51.2.0",
        "x/a",
        allowed=True,
    ),
    row("ipblock-other-family-never-matches", allow_to_a(ip_block("::/0")), "203.0.113.9", "x/a", allowed=False),
    # Upstream e2e "should allow egress access to server in CIDR block": ipBlocks match pod IPs.
    row("ipblock-matches-pod-ip-egress", egress_from_a(ip_block("10.244.2.11/32")), "x/a", "x/b", allowed=True),
    row("ipblock-pod-ip-outside-cidr-egress", egress_from_a(ip_block("10.244.2.11/32")), "x/a", "x/c", allowed=False),
    # Upstream e2e "should enforce except clause while egress access to server in CIDR block".
    row(
        "ipblock-except-excludes-pod-ip",
        egress_from_a(ip_block("10.244.0.0/16", "10.244.2.11/32")),
        "x/a",
        "x/b",
        allowed=False,
    ),
    row(
        "ipblock-except-spares-other-pod-ip",
        egress_from_a(ip_block("10.244.0.0/16", "10.244.2.11/32")),
        "x/a",
        "y/a",
        allowed=True,
    ),
    row("ipblock-matches-pod-ip-ingress", allow_to_a(ip_block("10.244.2.11/32")), "x/b", "x/a", allowed=True),
    # Numeric ports: "only traffic on the specified protocol AND port will be matched".
    row("numeric-port-matches", allow_to_a(ports=[port(81)]), "y/a", "x/a", 81, allowed=True),
    row(
        "numeric-port-wrong-number",
        allow_to_a(ports=[port(81)]),
        "y/a",
        "x/a",
        80,
        allowed=False,
        reason="81/TCP: connection is to 80",
    ),
    row("numeric-port-wrong-protocol", allow_to_a(ports=[port(81)]), "y/a", "x/a", 81, protocol="UDP", allowed=False),
    # "If this field is not provided, this matches all port names and numbers" (of the protocol).
    row(
        "portless-port-matches-all-of-protocol",
        allow_to_a(ports=[port(None, "UDP")]),
        "y/a",
        "x/a",
        5353,
        protocol="UDP",
        allowed=True,
    ),
    row(
        "portless-port-other-protocol",
        allow_to_a(ports=[port(None, "UDP")]),
        "y/a",
        "x/a",
        5353,
        protocol="TCP",
        allowed=False,
    ),
    # "protocol represents the protocol (TCP, UDP, or SCTP)".
    row(
        "sctp-port-matches-sctp", allow_to_a(ports=[port(80, "SCTP")]), "y/a", "x/a", 80, protocol="SCTP", allowed=True
    ),
    row(
        "sctp-port-rejects-tcp",
        allow_to_a(ports=[port(80, "SCTP")]),
        "y/a",
        "x/a",
        80,
        protocol="TCP",
        allowed=False,
        reason="80/SCTP is SCTP, connection is TCP",
    ),
    # endPort: "the range of ports from port to endPort if set, inclusive".
    row("endport-range-start", allow_to_a(ports=[port(8080, end_port=8090)]), "y/a", "x/a", 8080, allowed=True),
    row("endport-range-end", allow_to_a(ports=[port(8080, end_port=8090)]), "y/a", "x/a", 8090, allowed=True),
    row(
        "endport-below-range",
        allow_to_a(ports=[port(8080, end_port=8090)]),
        "y/a",
        "x/a",
        8079,
        allowed=False,
        reason="8079 is outside 8080-8090/TCP",
    ),
    row("endport-above-range", allow_to_a(ports=[port(8080, end_port=8090)]), "y/a", "x/a", 8091, allowed=False),
    # Named port: "a numerical or named port on a pod", resolved on the destination pod.
    row(
        "named-port-ingress-resolves-on-destination",
        named(policy("x/p", {"app": "web"}, ingress=[rule(ports=[port("http")])])),
        "x/client",
        "x/web",
        8080,
        allowed=True,
    ),
    row(
        "named-port-ingress-other-number",
        named(policy("x/p", {"app": "web"}, ingress=[rule(ports=[port("http")])])),
        "x/client",
        "x/web",
        9090,
        allowed=False,
        reason='named port "http" is 8080/TCP on x/web, connection is to 9090',
    ),
    row(
        "named-port-wrong-protocol",
        named(policy("x/p", {"app": "web"}, ingress=[rule(ports=[port("dns", "TCP")])])),
        "x/client",
        "x/web",
        53,
        allowed=False,
        reason='named port "dns" is 53/UDP on x/web, not TCP',
    ),
    row(
        "named-port-udp",
        named(policy("x/p", {"app": "web"}, ingress=[rule(ports=[port("dns", "UDP")])])),
        "x/client",
        "x/web",
        53,
        protocol="UDP",
        allowed=True,
    ),
    row(
        "named-port-absent-name",
        named(policy("x/p", {"app": "web"}, ingress=[rule(ports=[port("metrics")])])),
        "x/client",
        "x/web",
        8080,
        allowed=False,
        reason='named port "metrics" is not defined on x/web',
    ),
    # In egress rules the name is resolved on the destination too, never on the source (the
    # client names 9090 "http", the server 8080).
    row(
        "named-port-egress-resolves-on-destination",
        named(policy("x/p", {"app": "client"}, egress=[rule(ports=[port("http")])], types=["Egress"])),
        "x/client",
        "x/web",
        8080,
        allowed=True,
    ),
    row(
        "named-port-egress-not-on-source",
        named(policy("x/p", {"app": "client"}, egress=[rule(ports=[port("http")])], types=["Egress"])),
        "x/client",
        "x/web",
        9090,
        allowed=False,
    ),
    row(
        "named-port-egress-to-external-matches-nothing",
        named(
            policy(
                "x/p", {"app": "client"}, egress=[rule(ip_block("0.0.0.0/0"), ports=[port("http")])], types=["Egress"]
            )
        ),
        "x/client", "203.0.113.9", 8080, allowed=False,
        reason='named port "http" matches nothing: 203.0.113.9 is not a pod',
    ),
    # Dual-stack: each family on its own; ipBlock fd00:10:2::/64 admits x/b over IPv6 only.
    row("dual-stack-ipv6-ipblock-admits-ipv6", DUAL, "x/b", "x/a", 443, family="IPv6", allowed=True),
    row(
        "dual-stack-ipv6-ipblock-not-ipv4",
        DUAL,
        "x/b",
        "x/a",
        443,
        family="IPv4",
        allowed=False,
        reason="ipBlock fd00:10:2::/64 is IPv6, connection is IPv4",
    ),
    # A single-stack end in the other family: no such connection can exist.
    row(
        "impossible-family",
        DUAL,
        "x/v4",
        "x/b",
        80,
        family="IPv6",
        allowed=False,
        reason="no such connection: x/v4 has no IPv6 address",
    ),
    # A pod with no address at all (a workload template) is still decided by labels and ports.
    row(
        "addressless-pod-decided-by-labels",
        DUAL,
        "x/template",
        "x/a",
        80,
        allowed=True,
        reason="no IPv4 address known for x/template",
    ),
    # Decisions the API leaves open (docs/semantics.md), as Bypass values.
    row(
        "external-to-external-not-a-pod",
        STANDARD,
        "203.0.113.9",
        "198.51.100.1",
        allowed=True,
        bypass=(Direction.INGRESS, Bypass.NOT_A_POD),
    ),
    row("external-to-isolated-pod-is-ordinary", standard_cluster(DENY_INGRESS_X), "203.0.113.9", "x/a", allowed=False),
    row(
        "hostnetwork-destination-never-selected",
        with_policies(DUAL, policy("x/deny", {}, types=["Ingress", "Egress"])), "node:node-1", "x/host", allowed=True,
        bypass=(Direction.INGRESS, Bypass.HOST_NETWORK),
    ),
    row(
        "hostnetwork-source-never-selected",
        with_policies(DUAL, policy("x/deny", {}, types=["Egress"])), "x/host", "203.0.113.9", allowed=True,
        bypass=(Direction.EGRESS, Bypass.HOST_NETWORK),
    ),
    row(
        "hostnetwork-peer-not-matched-by-podselector",
        with_policies(DUAL, policy("x/p", {"pod": "b"}, ingress=[rule(pod_peer({"pod": "host"}))])),
        "x/host-1",
        "x/b",
        allowed=False,
        reason="x/host-1 is a hostNetwork pod: only ipBlocks can match it (the address of node node-1)",
    ),
    row(
        "hostnetwork-peer-is-its-node-address",
        with_policies(DUAL, policy("x/p", {"pod": "b"}, ingress=[rule(ip_block("192.168.0.1/32"))])),
        "x/host-1",
        "x/b",
        allowed=True,
    ),
    row(
        "same-pod-own-address",
        standard_cluster(DENY_BOTH_X),
        "x/a",
        "x/a",
        allowed=True,
        bypass=(Direction.INGRESS, Bypass.SAME_POD),
    ),
    row("same-pod-via-service-hairpins", standard_cluster(DENY_BOTH_X), "x/a", "x/a", via_service=True, allowed=False),
    row(
        "from-own-node-allowed",
        standard_cluster(DENY_INGRESS_X),
        "node:node-1",
        "x/a",
        allowed=True,
        bypass=(Direction.INGRESS, Bypass.FROM_OWN_NODE),
    ),
    row(
        "from-own-node-address-allowed",
        standard_cluster(DENY_INGRESS_X),
        "192.168.0.1",
        "x/a",
        allowed=True,
        bypass=(Direction.INGRESS, Bypass.FROM_OWN_NODE),
    ),
    row(
        "from-hostnetwork-pod-on-own-node-allowed",
        with_policies(DUAL, policy("x/deny", {}, types=["Ingress"])),
        "x/host",
        "x/b",
        allowed=True,
        bypass=(Direction.INGRESS, Bypass.FROM_OWN_NODE),
    ),
    row("from-other-node-is-ordinary", standard_cluster(DENY_INGRESS_X), "node:node-2", "x/a", allowed=False),
    row("egress-to-own-node-not-exempt", standard_cluster(DENY_EGRESS_X), "x/a", "node:node-1", allowed=False),
]


@pytest.mark.parametrize(("base", "connection", "allowed", "reason", "bypass"), ROWS)
def test_evaluate(base, connection, allowed, reason, bypass):
    verdict = evaluate(base, connection)
    assert verdict.allowed is allowed
    if reason is not None:
        assert reason in reasons_of(verdict) or any(reason in r for r in reasons_of(verdict))
    if bypass is not None:
        direction, expected = bypass
        half = verdict.ingress if direction is Direction.INGRESS else verdict.egress
        assert half.bypass is expected
        assert half.allowed


@pytest.mark.parametrize(
    ("source", "destination", "family", "source_ip", "destination_ip"),
    [
        pytest.param("x/a", "x/b", "IPv4", "10.0.1.10", "10.0.2.11", id="ipv4-pod-addresses"),
        pytest.param("x/a", "x/b", "IPv6", "fd00:10:1::10", "fd00:10:2::11", id="ipv6-pod-addresses"),
        pytest.param("x/host", "x/a", "IPv6", "fd00:192::2", "fd00:10:1::10", id="hostnetwork-pod-uses-node-address"),
        pytest.param("x/template", "x/a", "IPv4", None, "10.0.1.10", id="addressless-pod-has-none"),
        pytest.param("x/v4", "x/a", "IPv6", None, "fd00:10:1::10", id="single-stack-pod-in-other-family"),
    ],
)
def test_verdict_records_addresses_used(source, destination, family, source_ip, destination_ip):
    verdict = evaluate(DUAL, connect(DUAL, source, destination, family=family))
    assert (str(verdict.source_ip) if verdict.source_ip else None) == source_ip
    assert (str(verdict.destination_ip) if verdict.destination_ip else None) == destination_ip


def test_half_lists_every_selecting_policy_with_defaults():
    deny = policy("x/deny", {}, types=["Egress"])
    allow = policy("x/allow", {"pod": "a"}, ingress=[rule(pod_peer({"pod": "b"})), rule(ports=[port(81)])])
    base = standard_cluster(deny, allow)
    half = evaluate_direction(base, connect(base, "x/c", "x/a"), Direction.INGRESS)
    assert [str(p.policy) for p in half.policies] == ["x/allow"]
    assert [str(r) for r in half.selecting] == ["x/deny"]
    assert [(r.index, r.matched, r.peer_matched, r.port_matched) for r in half.policies[0].rules] == [
        (0, False, False, True),
        (1, False, True, False),
    ]
    assert half.isolated and not half.allowed


@pytest.mark.parametrize(
    ("pod_key", "direction", "expected"),
    [
        pytest.param("x/a", Direction.INGRESS, True, id="selected-by-ingress-policy"),
        pytest.param("x/a", Direction.EGRESS, False, id="ingress-policy-does-not-isolate-egress"),
        pytest.param("x/b", Direction.INGRESS, False, id="not-selected"),
        pytest.param("y/a", Direction.INGRESS, False, id="other-namespace"),
    ],
)
def test_is_isolated(pod_key, direction, expected):
    base = standard_cluster(policy("x/p", {"pod": "a"}, types=["Ingress"]))
    assert is_isolated(base, base.pod_by_key[pod_key], direction) is expected


def test_selecting_policies_sorted_and_namespaced():
    base = standard_cluster(
        policy("x/z", {}), policy("x/b", {"pod": "a"}), policy("x/c", {"pod": "b"}), policy("y/a", {})
    )
    assert [str(p.ref) for p in selecting_policies(base, base.pod_by_key["x/a"])] == ["x/b", "x/z"]


def test_hostnetwork_pod_selected_by_nothing():
    base = with_policies(DUAL, policy("x/all", {}))
    assert selecting_policies(base, base.pod_by_key["x/host"]) == ()


def test_defaults_applied_copied_from_policy():
    from dataclasses import replace

    p = replace(policy("x/p", {}, types=["Ingress"]), defaults_applied=("spec.policyTypes: defaulted to [Ingress]",))
    base = standard_cluster(p)
    half = evaluate(base, connect(base, "y/a", "x/a")).ingress
    assert half.policies[0].defaults_applied == ("spec.policyTypes: defaulted to [Ingress]",)


HINT_ROWS = [
    pytest.param(
        allow_to_a(pod_peer({"pod": "a"})), "x/b", "x/a", 80, "add label pod=a to x/b", id="pod-label",
    ),
    pytest.param(
        allow_to_a(pod_peer(None, {"ns": "x"})), "y/b", "x/a", 80, "label namespace y with ns=x", id="namespace-label",
    ),
    pytest.param(
        allow_to_a(pod_peer({"pod": "b"}), ports=[port(81)]), "x/b", "x/a", 80,
        "add port 80/TCP to rule 0 of x/allow-a (x-allow-a.yaml:10)", id="port",
    ),
    pytest.param(
        standard_cluster(DENY_INGRESS_X), "y/a", "x/a", 80,
        "the pod is selected by x/deny-ingress (x-deny-ingress.yaml:1) which allows nothing for Ingress:"
        " add an ingress rule",
        id="deny-all-policy",
    ),
    pytest.param(
        allow_to_a(ip_block("198.51.0.0/16", "198.51.1.0/24")),
        "198.51.1.7",
        "x/a",
        80,
        "remove except 198.51.1.0/24 from ipBlock 198.51.0.0/16 in rule 0 of x/allow-a (x-allow-a.yaml:10)",
        id="except",
    ),
    pytest.param(
        allow_to_a(pod_peer(None, {})), "203.0.113.9", "x/a", 80,
        "add ipBlock 203.0.113.9/32 to rule 0 of x/allow-a (x-allow-a.yaml:10)", id="external-needs-ipblock",
    ),
    pytest.param(
        labels_with(pod_peer(None, selector(None, requirement("env", "NotIn", "prod")))), "prod/b", "x/a", 80,
        "remove label env from namespace prod", id="notin-removes-label",
    ),
]


@pytest.mark.parametrize(("base", "source", "destination", "port_number", "expected"), HINT_ROWS)
def test_hint_proposed_first(base, source, destination, port_number, expected):
    half = evaluate(base, connect(base, source, destination, port_number)).ingress
    assert not half.allowed
    assert half.hints and half.hints[0].text == expected


def test_no_label_hint_for_exists_requirement():
    base = labels_with(pod_peer(selector(None, requirement("tier", "Exists"))))
    half = evaluate(base, connect(base, "x/a", "x/a", via_service=True)).ingress
    assert all("label" not in h.text for h in half.hints)


def test_allowed_half_has_no_hints():
    base = allow_to_a(pod_peer({"pod": "b"}))
    assert evaluate(base, connect(base, "x/b", "x/a")).ingress.hints == ()


def test_family_of_connection_defaults_to_ipv4():
    assert connect(STANDARD, "x/a", "x/b").family is Family.IPV4
