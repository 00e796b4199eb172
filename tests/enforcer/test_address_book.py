"""An address book names the end an address is, as ``explain`` resolves it, and one followed
from snapshot to snapshot by their changes names every address as a book made afresh does."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.enforcer.drops import AddressBook
from policyctl.policy.model import IPAddress, Node, Pod
from policyctl.policy.cluster import Cluster
from policyctl.policy.verdicts import Endpoint
from tests.builders import cluster, node, pod

ADDRESSES = [ipaddress.ip_address(a) for a in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::1")]
#: Pods and nodes that share addresses: a hostNetwork pod holds its node's, pods may collide.
POOL: list[Pod | Node] = [
    pod("a/x", ips=["10.0.0.1"]),
    pod("a/y", ips=["10.0.0.1", "fd00::1"]),
    pod("b/host", ips=["10.0.0.2"], host_network=True),
    pod("a/host", ips=["10.0.0.2"], host_network=True),
    pod("b/z", ips=["10.0.0.2"]),
    node("n1", "10.0.0.2", "10.0.0.3"),
    node("n0", "10.0.0.3"),
    node("n2", "fd00::1", "fd00::1"),
]


def searched(snapshot: Cluster, address: IPAddress) -> Endpoint:
    """The rule read off the objects: a pod network pod, then a hostNetwork pod, each the
    first by key; then the node first by name; else the address itself."""
    pods = sorted((p for p in snapshot.pods if address in p.ips), key=lambda p: (p.host_network, p.key))
    nodes = sorted((n for n in snapshot.nodes if address in n.addresses), key=lambda n: n.name)
    ends: list[Endpoint] = [*pods, *nodes]
    return next(iter(ends), address)


def of(members: set[int]) -> Cluster:
    return cluster(*(POOL[i] for i in sorted(members)))


@pytest.mark.parametrize(
    ("members", "address", "expected"),
    [
        ({0, 1}, "10.0.0.1", "a/x"),
        ({2, 3, 5}, "10.0.0.2", "a/host"),
        ({2, 4, 5}, "10.0.0.2", "b/z"),
        ({5}, "10.0.0.2", "n1"),
        ({5, 6}, "10.0.0.3", "n0"),
        ({1, 7}, "fd00::1", "a/y"),
        ({0}, "10.0.0.9", "10.0.0.9"),
    ],
    ids=["first pod by key", "hostNetwork pods by key", "pod network before hostNetwork",
         "a node's address", "first node by name", "a pod before a node", "outside the cluster"],
)
def test_an_address_names_the_end_explain_would(members: set[int], address: str, expected: str) -> None:
    end = AddressBook(of(members)).end(ipaddress.ip_address(address))
    assert str(end.key if isinstance(end, Pod) else end.name if isinstance(end, Node) else end) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sets(st.integers(0, len(POOL) - 1)), min_size=1, max_size=8))
def test_a_book_followed_through_snapshots_names_every_address_as_a_search(stream: list[set[int]]) -> None:
    book = None
    for members in stream:
        snapshot = of(members)
        book = AddressBook.following(book, snapshot)
        assert book.cluster is snapshot
        assert [book.end(a) for a in ADDRESSES] == [searched(snapshot, a) for a in ADDRESSES]


def test_the_same_snapshot_keeps_its_book_and_a_spent_book_refuses_to_answer() -> None:
    first = of({0, 5})
    book = AddressBook.following(None, first)
    assert AddressBook.following(book, first) is book
    later = AddressBook.following(book, of({1, 5}))
    assert later.end(ADDRESSES[0]) is POOL[1]
    with pytest.raises(RuntimeError, match="spent"):
        book.end(ADDRESSES[0])
