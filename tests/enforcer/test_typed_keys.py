"""Keys built from the compiler's intervals agree with keys parsed from the rendered element,
and any keys have one order to be sent in."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.compiler.intervals import Interval
from policyctl.compiler.render_json import element_value, map_entry
from policyctl.compiler.ruleset import Element, FieldType, Jump
from policyctl.enforcer.elements import element_key, element_keys, entry_keys, key_order, typed_element_key

BITS = {FieldType.IPV4: 32, FieldType.IPV6: 128}
PROTOCOLS = (1, 6, 17, 58, 132, 136, 253)


@st.composite
def intervals(draw: st.DrawFn, kind: FieldType) -> Interval:
    """Single values, CIDR-aligned blocks and unaligned ranges of one field type (protocols
    are single numbers: the compiler never writes a protocol range)."""
    if kind is FieldType.PROTO:
        number = draw(st.sampled_from(PROTOCOLS) | st.integers(0, 255))
        return Interval(number, number)
    top = (1 << BITS[kind]) - 1 if kind in BITS else 65535
    shape = draw(st.sampled_from(["single", "block", "range"]))
    if shape == "block" and kind in BITS:
        length = draw(st.integers(0, BITS[kind]))
        size = 1 << (BITS[kind] - length)
        low = draw(st.integers(0, top // size)) * size
        return Interval(low, low + size - 1)
    low = draw(st.integers(0, top))
    high = low if shape == "single" else draw(st.integers(low, top))
    return Interval(low, high)


@st.composite
def typed_elements(draw: st.DrawFn) -> tuple[tuple[FieldType, ...], Element]:
    types = draw(st.lists(st.sampled_from(list(FieldType)), min_size=1, max_size=3).map(tuple))
    return types, tuple(draw(intervals(kind)) for kind in types)


@settings(max_examples=200, deadline=None)
@given(typed_elements())
def test_a_typed_element_has_the_key_of_its_rendering(typed: tuple[tuple[FieldType, ...], Element]) -> None:
    types, element = typed
    assert typed_element_key(types, element) == element_key(element_value(types, element))


@pytest.mark.parametrize(
    ("types", "element", "listed"),
    [
        pytest.param((FieldType.IPV4,), (Interval(167772161, 167772161),), "10.0.0.1", id="ipv4-address"),
        pytest.param(
            (FieldType.IPV4,),
            (Interval(167772160, 167837695),),
            {"prefix": {"addr": "10.0.0.0", "len": 16}},
            id="ipv4-block",
        ),
        pytest.param((FieldType.IPV6,), (Interval(1, 1),), "::1", id="ipv6-address"),
        pytest.param(
            (FieldType.IPV4, FieldType.PROTO, FieldType.SERVICE),
            (Interval(167772165, 167772165), Interval(6, 6), Interval(80, 81)),
            {"concat": ["10.0.0.5", "tcp", {"range": [80, 81]}]},
            id="address-protocol-port-range",
        ),
    ],
)
def test_a_typed_element_has_the_key_of_its_kernel_listing(
    types: tuple[FieldType, ...], element: Element, listed: object
) -> None:
    assert typed_element_key(types, element) == element_key(listed)


def test_an_ipv4_and_an_ipv6_address_of_one_integer_have_different_keys() -> None:
    one = (Interval(1, 1),)
    assert typed_element_key((FieldType.IPV4,), one) != typed_element_key((FieldType.IPV6,), one)


addresses = st.one_of(
    st.integers(0, (1 << 32) - 1).map(ipaddress.IPv4Address),
    st.integers(0, (1 << 128) - 1).map(ipaddress.IPv6Address),
)
chain_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(addresses, chain_names)
def test_a_map_entry_has_the_keys_of_its_rendering(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, chain: str
) -> None:
    assert entry_keys(address, Jump(chain)) == element_keys("map", map_entry(address, Jump(chain)))


json_values = st.recursive(
    st.one_of(st.integers(-(1 << 130), 1 << 130), st.text(max_size=8), st.booleans(), st.none()),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
listed_elements = st.one_of(
    json_values,
    addresses.map(str),
    st.builds(lambda a, n: {"prefix": {"addr": str(a), "len": n}}, addresses, st.integers(0, 32)),
    st.lists(json_values | addresses.map(str), min_size=1, max_size=3).map(lambda parts: {"concat": parts}),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(listed_elements, max_size=12))
def test_the_keys_of_any_listed_elements_have_one_order(found: list[object]) -> None:
    """The kernel may list anything in a set edited by hand; sending still needs an order."""
    listed = [element_key(value) for value in found]
    assert key_order(listed) == key_order(reversed(listed))


@settings(max_examples=100, deadline=None)
@given(st.lists(typed_elements(), max_size=12))
def test_typed_elements_are_sent_in_the_order_of_their_listings(
    found: list[tuple[tuple[FieldType, ...], Element]],
) -> None:
    typed = [typed_element_key(types, element) for types, element in found]
    listed = [element_key(element_value(types, element)) for types, element in found]
    assert key_order(typed) == key_order(listed)
