"""The base chains' logged drops (mid-stream pickups, the new-pod window) are read back and
explained by what their rule stands for, checked against the cluster, never as a policy's."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from policyctl.compiler.droplog import MIDSTREAM, NEW_POD, rule_prefix
from policyctl.compiler.ruleset import Mode
from policyctl.enforcer.drops import AddressBook, LogPrefix, attribute, drop_document, parse_prefix
from policyctl.policy.cluster import Cluster
from policyctl.policy.model import Direction, Node
from policyctl.cli.render_drops import drop_lines
from tests.enforcer.test_drops import addressed, logged

MID = ("TCP without SYN that conntrack does not track (a connection revoked or whose entry was lost): "
       "mid-stream pickups of policed pods are dropped")
WINDOW = "the new-pod window denies it until its pod is programmed"
STALE = "the ruleset was compiled from another cluster view (stale, or not yet updated)"


def with_nodes() -> Cluster:
    nodes = (
        Node("node-1", (ipaddress.ip_address("192.168.0.1"),), pod_cidrs=(ipaddress.ip_network("10.0.1.0/24"),)),
        Node("node-2", (ipaddress.ip_address("192.168.0.2"),), pod_cidrs=(ipaddress.ip_network("10.0.2.0/24"),)),
    )
    return replace(addressed(), nodes=nodes)


@pytest.mark.parametrize(
    ("mode", "rule", "direction", "text"),
    [
        (Mode.ENFORCE, MIDSTREAM, Direction.INGRESS, "policyctl drop mid-stream ingress "),
        (Mode.ENFORCE, MIDSTREAM, Direction.EGRESS, "policyctl drop mid-stream egress "),
        (Mode.AUDIT, NEW_POD, Direction.EGRESS, "policyctl audit new-pod egress "),
        (Mode.ENFORCE, NEW_POD, Direction.INGRESS, "policyctl drop new-pod ingress "),
    ],
)
def test_a_rule_prefix_is_read_back_as_written(mode: Mode, rule: str, direction: Direction, text: str) -> None:
    written = rule_prefix(mode, rule, direction)
    action = "drop" if mode is Mode.ENFORCE else "audit"
    assert written == text
    assert parse_prefix(written) == LogPrefix(action, direction, "", rule)
    assert parse_prefix(written).text == text.strip()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text",
    [
        "policyctl drop mid-stream sideways ",
        "policyctl allow new-pod egress ",
        "policyctl drop mid-stream ingress x/a ",
    ],
)
def test_a_malformed_rule_prefix_is_not_ours(text: str) -> None:
    assert parse_prefix(text) is None


@pytest.mark.parametrize(
    ("prefix", "source", "destination", "pod", "reason", "problem", "label"),
    [
        pytest.param("policyctl drop mid-stream ingress ", "shop/b", "lab/a", "shop/b",
                     f"{MID} (shop/b is policed for ingress (isolated by shop/b-from-a))", None, "(mid-stream)",
                     id="mid-stream-from-a-pod-isolated-for-ingress"),
        pytest.param("policyctl drop mid-stream egress ", "shop/a", "lab/e", "lab/e",
                     f"{MID} (lab/e is policed for egress (isolated by lab/e-out))", None, "(mid-stream)",
                     id="mid-stream-to-a-pod-isolated-for-egress"),
        pytest.param("policyctl drop mid-stream egress ", "shop/a", "lab/a", "lab/a",
                     f"{MID} (lab/a is policed for egress (isolated by ClusterNetworkPolicy/lab-a-not-to-shop-a))",
                     None, "(mid-stream)", id="mid-stream-to-a-pod-a-cluster-policy-applies-to"),
        pytest.param("policyctl drop mid-stream ingress ", "shop/a", "lab/e", "shop/a",
                     f"{MID} (shop/a is policed for ingress)", f"shop/a is not isolated for ingress in this cluster: "
                     f"{STALE}", "(mid-stream)", id="mid-stream-of-a-pod-the-model-does-not-police"),
        pytest.param("policyctl drop new-pod egress ", "10.0.1.77", "shop/b", None,
                     f"address 10.0.1.77 is in node node-1's pod range and no known pod holds it yet: {WINDOW}", None,
                     "(new pod)", id="new-pod-sending"),
        pytest.param("policyctl audit new-pod ingress ", "lab/a", "10.0.2.9", None,
                     f"address 10.0.2.9 is in node node-2's pod range and no known pod holds it yet: {WINDOW}", None,
                     "(new pod)", id="new-pod-receiving-audit"),
        pytest.param("policyctl drop new-pod ingress ", "lab/a", "shop/b", None,
                     f"address 10.0.2.3 is in node node-2's pod range and no known pod holds it yet: {WINDOW}",
                     f"shop/b holds the address in this cluster: {STALE}", "(new pod)",
                     id="new-pod-address-a-known-pod-holds"),
        pytest.param("policyctl drop new-pod egress ", "172.16.0.1", "shop/b", None,
                     "address 172.16.0.1 is in no node's pod range in this cluster, and no known pod holds it",
                     f"the new-pod window denied it: {STALE}", "(new pod)", id="new-pod-outside-every-pod-range"),
    ],
)
def test_a_base_rule_drop_is_explained_by_its_rule_and_checked_against_the_cluster(
    prefix: str, source: str, destination: str, pod: str | None, reason: str, problem: str | None, label: str
) -> None:
    drop = attribute(logged(prefix, source, destination), AddressBook(with_nodes()), now=0.0)
    assert drop is not None
    document = drop_document(drop)
    shown = {k: document[k] for k in ("pod", "drop_rule", "reason", "problem", "explanation", "policies")}
    assert shown == {"pod": pod, "drop_rule": prefix.split()[2], "reason": reason, "problem": problem,
                     "explanation": None, "policies": []}
    assert drop.policy_label == label


def test_a_pod_chain_drop_document_says_its_rule_and_has_no_reason() -> None:
    drop = attribute(logged("policyctl drop ingress shop/b ", "lab/a", "shop/b"), AddressBook(with_nodes()), now=0.0)
    assert drop is not None
    document = drop_document(drop)
    assert (document["pod"], document["drop_rule"], document["reason"]) == ("shop/b", "pod-chain", None)
    assert drop.policy_label == "shop/b-from-a"


@pytest.mark.parametrize(
    ("prefix", "source", "destination", "lines"),
    [
        pytest.param("policyctl drop mid-stream ingress ", "shop/b", "lab/a", [
            "2023-11-14T22:13:20.500Z DROP ingress mid-stream shop/b: shop/b (10.0.2.3) → lab/a (10.0.1.2) TCP/80",
            f"  {MID} (shop/b is policed for ingress (isolated by shop/b-from-a))",
        ], id="mid-stream"),
        pytest.param("policyctl drop new-pod egress ", "10.0.1.77", "shop/b", [
            "2023-11-14T22:13:20.500Z DROP egress new-pod: 10.0.1.77 → shop/b (10.0.2.3) TCP/80",
            f"  address 10.0.1.77 is in node node-1's pod range and no known pod holds it yet: {WINDOW}",
        ], id="new-pod"),
    ],
)
def test_the_text_output_names_the_rule_and_says_its_reason(
    prefix: str, source: str, destination: str, lines: list[str]
) -> None:
    drop = attribute(logged(prefix, source, destination), AddressBook(with_nodes()), now=0.0)
    assert drop is not None
    assert drop_lines(drop_document(drop)) == lines
