"""The address atoms of PolicyIndex at ipBlock boundaries: every ``cidr`` and ``except`` edge
cuts the space, and each atom carries exactly the ipBlocks containing all of its addresses
(an ipBlock is its ``cidr`` minus its ``except`` CIDRs)."""

from __future__ import annotations

import ipaddress

import pytest

from policyctl.policy.model import Family
from policyctl.verifier.index import PolicyIndex
from tests.builders import cluster, ip_block, policy, rule

V4_TOP = "255.255.255.255"
V6_TOP = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"

# name: (blocks as (cidr, *excepts), family, expected atoms as (low, high, positions of the blocks in it))
CASES: dict[str, tuple[list[tuple[str, ...]], Family, list[tuple[str, str, set[int]]]]] = {
    "adjacent blocks meet without a gap": (
        [("10.0.0.0/25",), ("10.0.0.128/25",)],
        Family.IPV4,
        [
            ("0.0.0.0", "9.255.255.255", set()),
            ("10.0.0.0", "10.0.0.127", {0}),
            ("10.0.0.128", "10.0.0.255", {1}),
            ("10.0.1.0", V4_TOP, set()),
        ],
    ),
    "a nested block adds itself inside the outer one": (
        [("10.0.0.0/8",), ("10.1.0.0/16",)],
        Family.IPV4,
        [
            ("0.0.0.0", "9.255.255.255", set()),
            ("10.0.0.0", "10.0.255.255", {0}),
            ("10.1.0.0", "10.1.255.255", {0, 1}),
            ("10.2.0.0", "10.255.255.255", {0}),
            ("11.0.0.0", V4_TOP, set()),
        ],
    ),
    "an except in the middle splits its block in two": (
        [("10.0.0.0/24", "10.0.0.64/26")],
        Family.IPV4,
        [
            ("0.0.0.0", "9.255.255.255", set()),
            ("10.0.0.0", "10.0.0.63", {0}),
            ("10.0.0.64", "10.0.0.127", set()),
            ("10.0.0.128", "10.0.0.255", {0}),
            ("10.0.1.0", V4_TOP, set()),
        ],
    ),
    "blocks overlapping through excepts share only the common part": (
        [("10.0.0.0/24", "10.0.0.0/25"), ("10.0.0.0/23", "10.0.1.0/24")],
        Family.IPV4,
        [
            ("0.0.0.0", "9.255.255.255", set()),
            ("10.0.0.0", "10.0.0.127", {1}),
            ("10.0.0.128", "10.0.0.255", {0, 1}),
            ("10.0.1.0", V4_TOP, set()),
        ],
    ),
    "a /32 inside /0 is a single-address atom": (
        [("0.0.0.0/0",), ("10.0.0.1/32",)],
        Family.IPV4,
        [
            ("0.0.0.0", "10.0.0.0", {0}),
            ("10.0.0.1", "10.0.0.1", {0, 1}),
            ("10.0.0.2", V4_TOP, {0}),
        ],
    ),
    "a /32 at the top of the space ends the last atom": (
        [(f"{V4_TOP}/32",)],
        Family.IPV4,
        [("0.0.0.0", "255.255.255.254", set()), (V4_TOP, V4_TOP, {0})],
    ),
    "IPv6 blocks cut only the IPv6 space": (
        [("10.0.0.0/8",), ("::/0",), ("::/128",), ("2001:db8::/32", "2001:db8::/33")],
        Family.IPV6,
        [
            ("::", "::", {1, 2}),
            ("::1", "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff", {1}),
            ("2001:db8:8000::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", {1, 3}),
            ("2001:db9::", V6_TOP, {1}),
        ],
    ),
    "IPv4 blocks cut only the IPv4 space": (
        [("10.0.0.0/8",), ("::/0",)],
        Family.IPV4,
        [("0.0.0.0", "9.255.255.255", set()), ("10.0.0.0", "10.255.255.255", {0}), ("11.0.0.0", V4_TOP, set())],
    ),
    "no block of the family leaves one atom": (
        [("10.0.0.0/8",)],
        Family.IPV6,
        [("::", V6_TOP, set())],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_atoms_are_cut_at_every_block_boundary_with_exactly_the_containing_blocks(name: str) -> None:
    written, family, expected = CASES[name]
    blocks = [ip_block(*b) for b in written]
    index = PolicyIndex(cluster(policy("x/p", ingress=[rule(*blocks)])))
    position = {b: i for i, b in enumerate(blocks)}
    found = [
        (str(_address(a.low, family)), str(_address(a.high, family)), {position[index.blocks[i]] for i in a.blocks})
        for a in index.atoms(family)
    ]
    assert found == expected


@pytest.mark.parametrize("name", list(CASES))
def test_blocks_of_an_address_are_those_of_its_atom(name: str) -> None:
    written, family, _ = CASES[name]
    index = PolicyIndex(cluster(policy("x/p", ingress=[rule(*(ip_block(*b) for b in written))])))
    for atom in index.atoms(family):
        for value in {atom.low, atom.high}:
            assert index.blocks_of(_address(value, family)) == atom.blocks


def _address(value: int, family: Family) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(value) if family is Family.IPV4 else ipaddress.IPv6Address(value)
