"""A logged drop is explained by the reference semantics, and disagreements are reported."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from policyctl.enforcer.drops import AddressBook, LogPrefix, attribute, drop_document, parse_prefix
from policyctl.enforcer.nflog import LoggedPacket
from policyctl.enforcer.packetheaders import HeaderError
from policyctl.manifests.loader import load
from policyctl.policy.model import Direction, Family, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from tests.builders import cluster, node, pod

FIXTURE = Path(__file__).parents[1] / "fixtures" / "drops" / "cluster.yaml"
IPS = {"lab/a": "10.0.1.2", "shop/a": "10.0.1.3", "lab/e": "10.0.2.2", "shop/b": "10.0.2.3"}


def addressed() -> Cluster:
    loaded = load([str(FIXTURE)]).cluster
    return replace(loaded, pods=tuple(replace(p, ips=(ipaddress.ip_address(IPS[p.key]),)) for p in loaded.pods))


def tcp(source: str, destination: str, port: int = 80, protocol: int = 6) -> bytes:
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, protocol, 0, ipaddress.IPv4Address(source).packed,
                       ipaddress.IPv4Address(destination).packed) + struct.pack(">HH", 40000, port) + b"\0" * 16


def logged(prefix: str, source: str, destination: str, **kwargs: int) -> LoggedPacket:
    return LoggedPacket(prefix, 2, tcp(IPS.get(source, source), IPS.get(destination, destination), **kwargs),
                        timestamp=1_700_000_000.5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("policyctl drop isolated ingress ", LogPrefix("drop", Direction.INGRESS, "", "isolated")),
        ("policyctl audit isolated egress ", LogPrefix("audit", Direction.EGRESS, "", "isolated")),
        ("policyctl drop ingress x/a ", LogPrefix("drop", Direction.INGRESS, "x/a")),
        ("policyctl audit egress ns/pod-1 ", LogPrefix("audit", Direction.EGRESS, "ns/pod-1")),
        ("policyctl drop isolated sideways ", None),
        ("policyctl drop sideways x/a ", None),
        ("policyctl allow ingress x/a ", None),
        ("kube-proxy drop ingress x/a ", None),
        ("", None),
    ],
)
def test_only_policyctl_drop_and_audit_prefixes_are_read(text: str, expected: LogPrefix | None) -> None:
    assert parse_prefix(text) == expected


@pytest.mark.parametrize(
    ("prefix", "source", "destination", "half"),
    [
        ("policyctl drop isolated ingress ", "lab/a", "shop/b", Direction.INGRESS),
        ("policyctl drop isolated egress ", "lab/e", "shop/a", Direction.EGRESS),
        ("policyctl audit isolated egress ", "lab/e", "shop/a", Direction.EGRESS),
        ("policyctl drop egress lab/a ", "lab/a", "shop/a", Direction.EGRESS),
        ("policyctl audit egress lab/a ", "lab/a", "shop/a", Direction.EGRESS),
    ],
    ids=["networkpolicy-ingress", "networkpolicy-egress", "networkpolicy-audit", "admin-deny", "admin-audit"],
)
def test_a_drop_is_explained_as_the_oracle_explains_its_half(
    prefix: str, source: str, destination: str, half: Direction
) -> None:
    running = addressed()
    drop = attribute(logged(prefix, source, destination), AddressBook(running), now=0.0)
    assert drop is not None and drop.problem == ""
    assert drop.pod == (source if half is Direction.EGRESS else destination)
    ends = running.pod_by_key[source], running.pod_by_key[destination]
    verdict = evaluate(running, Connection(*ends, Protocol.TCP, 80, Family.IPV4))
    assert drop.half == (verdict.egress if half is Direction.EGRESS else verdict.ingress)
    assert (drop.source, drop.destination, drop.time) == (*ends, 1_700_000_000.5)


def test_the_document_names_the_isolating_policies_with_their_lines() -> None:
    drop = attribute(logged("policyctl drop isolated ingress ", "lab/a", "shop/b"), AddressBook(addressed()), now=0.0)
    assert drop is not None
    document = drop_document(drop)
    assert {k: document[k] for k in ("action", "direction", "pod", "protocol", "port", "policies", "problem")} == {
        "action": "drop", "direction": "ingress", "pod": "shop/b", "protocol": "TCP", "port": 80,
        "policies": ["shop/b-from-a"], "problem": None}
    assert document["source"] == {"address": "10.0.1.2", "kind": "pod", "name": "lab/a"}
    explanation = document["explanation"]
    assert explanation["decided_by"] == "network-policy" and explanation["rule"] is None
    assert explanation["note"] == "shop/b is isolated for Ingress by shop/b-from-a and no rule matches"
    assert [(r["rule"], r["peer_matched"], r["port_matched"]) for r in explanation["policies"][0]["rules"]] == [
        ("ingress[0]", False, True)]
    assert explanation["policies"][0]["source"].startswith(f"{FIXTURE}:")


@pytest.mark.parametrize(
    ("prefix", "source", "destination", "problem"),
    [
        ("policyctl drop isolated ingress ", "shop/a", "shop/b", "the model allows this ingress half"),
        ("policyctl drop isolated ingress ", "lab/a", "shop/a", "the model allows this ingress half"),
        ("policyctl drop isolated ingress ", "lab/a", "10.9.9.9", "an isolated pod's but the address is 10.9.9.9"),
        ("policyctl drop ingress shop/b ", "shop/a", "shop/b", "the model allows this ingress half"),
        ("policyctl drop ingress shop/a ", "lab/a", "shop/b", "rule is shop/a's but the address is shop/b"),
        ("policyctl drop ingress shop/b ", "lab/a", "10.9.9.9", "the address is 10.9.9.9"),
    ],
    ids=["model-allows", "pod-not-isolated", "unknown-address", "own-chain-model-allows", "own-chain-other-pod",
         "own-chain-unknown-address"],
)
def test_a_drop_the_model_does_not_explain_says_so(prefix: str, source: str, destination: str, problem: str) -> None:
    drop = attribute(logged(prefix, source, destination), AddressBook(addressed()), now=0.0)
    assert drop is not None and problem in drop.problem
    assert "compiled from another cluster view" in drop.problem


def test_a_drop_without_ports_names_the_isolation_only() -> None:
    drop = attribute(logged("policyctl drop isolated ingress ", "lab/a", "shop/b", protocol=1),
                     AddressBook(addressed()), now=5.0)
    assert drop is not None and drop.half is None and drop.time == 1_700_000_000.5
    assert drop.problem == ("ICMP has no port a policy could name; shop/b admits only listed protocols and ports for "
                            "ingress (isolated by shop/b-from-a)")


def test_prefixes_of_others_are_skipped_and_unreadable_packets_are_errors() -> None:
    book = AddressBook(addressed())
    assert attribute(LoggedPacket("iptables DROP ", 2, b"\x45"), book, now=0.0) is None
    with pytest.raises(HeaderError, match="an isolated pod's ingress rule"):
        attribute(LoggedPacket("policyctl drop isolated ingress ", 2, b"\x45\0"), book, now=0.0)
    with pytest.raises(HeaderError, match="shop/b's ingress rule"):
        attribute(LoggedPacket("policyctl drop ingress shop/b ", 2, b"\x45\0"), book, now=0.0)


def test_an_address_names_a_pod_before_a_host_network_pod_before_its_node() -> None:
    running = cluster(node("n1", "10.0.0.1"), pod("x/h", node="n1", ips=["10.0.0.1"], host_network=True),
                      pod("x/p", node="n1", ips=["10.0.1.1"]))
    book = AddressBook(running)
    assert book.end(ipaddress.ip_address("10.0.1.1")) == running.pod_by_key["x/p"]
    assert book.end(ipaddress.ip_address("10.0.0.1")) == running.pod_by_key["x/h"]
    assert book.end(ipaddress.ip_address("10.0.0.2")) == ipaddress.ip_address("10.0.0.2")
    assert AddressBook(cluster(node("n1", "10.0.0.1"))).end(ipaddress.ip_address("10.0.0.1")).name == "n1"  # type: ignore[union-attr]


def test_retries_of_one_connection_are_explained_once() -> None:
    book = AddressBook(addressed())
    first = attribute(logged("policyctl drop ingress shop/b ", "lab/a", "shop/b"), book, now=0.0)
    again = attribute(logged("policyctl drop ingress shop/b ", "lab/a", "shop/b"), book, now=1.0)
    assert first is not None and again is not None and first.half is again.half
