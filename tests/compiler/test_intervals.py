"""ipBlock except subtraction and canonical interval forms."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.compiler.intervals import Interval, as_prefix, block_intervals, normalise, subtract
from policyctl.policy.model import Family


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def ip(text: str) -> int:
    return int(ipaddress.ip_address(text))


@pytest.mark.parametrize(
    ("cidr", "excepts", "expected"),
    [
        pytest.param("10.0.0.0/24", [], [("10.0.0.0", "10.0.0.255")], id="no-except"),
        pytest.param("10.0.0.0/24", ["10.0.0.0/25"], [("10.0.0.128", "10.0.0.255")], id="lower-half-removed"),
        pytest.param(
            "10.0.0.0/24", ["10.0.0.7/32"], [("10.0.0.0", "10.0.0.6"), ("10.0.0.8", "10.0.0.255")], id="hole-in-middle"
        ),
        pytest.param("10.0.0.0/24", ["10.0.0.0/24"], [], id="except-covers-all"),
        pytest.param(
            "10.0.0.0/24",
            ["10.0.0.0/26", "10.0.0.32/27"],
            [("10.0.0.64", "10.0.0.255")],
            id="nested-excepts",
        ),
        pytest.param("fd00::/120", ["fd00::ff/128"], [("fd00::", "fd00::fe")], id="ipv6-last-address"),
        pytest.param("10.0.0.0/24", ["fd00::/8"], [("10.0.0.0", "10.0.0.255")], id="other-family-except-ignored"),
    ],
)
def test_block_intervals_subtract_excepts(cidr: str, excepts: list[str], expected: list[tuple[str, str]]) -> None:
    got = block_intervals(net(cidr), [net(e) for e in excepts])
    assert got == tuple(Interval(ip(a), ip(b)) for a, b in expected)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        pytest.param([(5, 9), (1, 3)], [(1, 3), (5, 9)], id="sorted"),
        pytest.param([(1, 3), (4, 6)], [(1, 6)], id="adjacent-merged"),
        pytest.param([(1, 5), (2, 3)], [(1, 5)], id="contained"),
        pytest.param([(1, 5), (3, 8)], [(1, 8)], id="overlapping"),
    ],
)
def test_normalise_gives_disjoint_non_adjacent_intervals(
    items: list[tuple[int, int]], expected: list[tuple[int, int]]
) -> None:
    assert normalise(Interval(a, b) for a, b in items) == tuple(Interval(a, b) for a, b in expected)


@pytest.mark.parametrize(
    ("low", "high", "family", "expected"),
    [
        pytest.param("10.0.0.0", "10.0.0.255", Family.IPV4, "10.0.0.0/24", id="aligned"),
        pytest.param("10.0.0.1", "10.0.0.1", Family.IPV4, "10.0.0.1/32", id="single"),
        pytest.param("10.0.0.0", "10.0.0.6", Family.IPV4, None, id="not-power-of-two"),
        pytest.param("10.0.0.4", "10.0.0.11", Family.IPV4, None, id="misaligned"),
        pytest.param("0.0.0.0", "255.255.255.255", Family.IPV4, "0.0.0.0/0", id="everything"),
        pytest.param("fd00::", "fd00::ffff", Family.IPV6, "fd00::/112", id="ipv6"),
    ],
)
def test_as_prefix_only_for_exact_cidrs(low: str, high: str, family: Family, expected: str | None) -> None:
    got = as_prefix(Interval(ip(low), ip(high)), family)
    assert got == (net(expected) if expected else None)


intervals = st.builds(lambda a, w: Interval(a, a + w), st.integers(0, 200), st.integers(0, 30))


@settings(max_examples=150)
@given(st.lists(intervals, max_size=6), st.lists(intervals, max_size=6), st.integers(0, 240))
def test_subtract_keeps_exactly_the_points_outside_removed(
    base: list[Interval], removed: list[Interval], point: int
) -> None:
    inside = any(i.contains(point) for i in base) and not any(i.contains(point) for i in removed)
    result = subtract(base, removed)
    assert any(i.contains(point) for i in result) == inside
    assert all(a.high + 1 < b.low for a, b in zip(result, result[1:]))
