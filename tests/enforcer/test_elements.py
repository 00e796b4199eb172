"""Element keys: the spellings nft lists an element in and the ones it was written in agree."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.enforcer.elements import (
    PROTOCOL_NUMBERS,
    _address_range,
    _general_key,
    _parsed_range,
    element_key,
    value_key,
)


@pytest.mark.parametrize(
    ("written", "listed"),
    [
        pytest.param({"prefix": {"addr": "10.3.0.1", "len": 32}}, "10.3.0.1", id="host-prefix-lists-as-address"),
        pytest.param(
            {"range": ["10.1.0.0", "10.1.255.255"]},
            {"prefix": {"addr": "10.1.0.0", "len": 16}},
            id="aligned-range-lists-as-prefix",
        ),
        pytest.param(6, "tcp", id="protocol-number-lists-by-name"),
        pytest.param({"range": [80, 80]}, 80, id="one-port-range-lists-as-port"),
        pytest.param(
            {"elem": {"val": "10.0.0.1", "counter": {"packets": 3, "bytes": 9}}}, "10.0.0.1", id="counter-wrapper"
        ),
        pytest.param(
            {"concat": [{"prefix": {"addr": "10.0.0.5", "len": 32}}, 17, {"range": [53, 53]}]},
            {"concat": ["10.0.0.5", "udp", 53]},
            id="concatenation-field-by-field",
        ),
        pytest.param("fd00::1", {"prefix": {"addr": "fd00::1", "len": 128}}, id="ipv6-host"),
    ],
)
def test_equivalent_spellings_have_one_key(written: object, listed: object) -> None:
    assert element_key(written) == element_key(listed)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        pytest.param("10.0.0.1", "10.0.0.2", id="different-addresses"),
        pytest.param(
            {"prefix": {"addr": "10.0.0.0", "len": 8}},
            {"prefix": {"addr": "10.0.0.0", "len": 9}},
            id="different-prefix-lengths",
        ),
        pytest.param("10.0.0.1", "::ffff:10.0.0.1", id="ipv4-is-not-mapped-ipv6"),
        pytest.param("tcp", "udp", id="different-protocols"),
        pytest.param({"concat": ["10.0.0.1", 80]}, {"concat": [80, "10.0.0.1"]}, id="field-order-matters"),
    ],
)
def test_different_elements_have_different_keys(one: object, other: object) -> None:
    assert element_key(one) != element_key(other)


def test_a_verdict_written_as_a_word_matches_its_listing() -> None:
    assert value_key("accept") == value_key({"accept": None})
    assert value_key({"jump": {"target": "a"}}) != value_key({"goto": {"target": "a"}})


@settings(max_examples=150)
@given(st.integers(0, 2**32 - 1), st.integers(0, 32))
def test_a_prefix_and_the_range_it_covers_are_one_element(address: int, length: int) -> None:
    network = ipaddress.ip_network((address, length), strict=False)
    prefix = {"prefix": {"addr": str(network.network_address), "len": length}}
    span = {"range": [str(network.network_address), str(network.broadcast_address)]}
    assert element_key(prefix) == element_key(span)


_addresses = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.sampled_from(["10.0.0.1", "::ffff:10.0.0.1", "10.0.0.256", "fd00::/8", "10.0.0.0/33", ""]),
)
_scalars = st.one_of(
    _addresses,
    st.sampled_from(sorted(PROTOCOL_NUMBERS)),
    st.text(max_size=6),
    st.integers(-1, 70000),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda parts: {"concat": parts}),
        st.lists(inner, min_size=2, max_size=2).map(lambda ends: {"range": ends}),
        st.builds(lambda a, n: {"prefix": {"addr": a, "len": n}}, _addresses, st.integers(0, 129)),
        inner.map(lambda v: {"elem": {"val": v}}),
        st.dictionaries(st.sampled_from(["concat", "range", "elem", "prefix", "x"]), inner, max_size=2),
        st.lists(inner, max_size=2),
    ),
    max_leaves=6,
)


@pytest.mark.parametrize(
    "value",
    [True, False, 0, 6, 65535, -1, 1.5, None, "tcp", "udp", "10.0.0.1", "fd00::1", "10.0.0.0/8", "x", "",
     {"concat": ["10.0.0.1", "tcp", 80]}, {"concat": "10.0.0.1"}, {"concat": [True, None]},
     {"elem": {"val": "10.0.0.1"}}, {"elem": "10.0.0.1"}, {"range": [1, 2]}, {"prefix": {"addr": "::", "len": 0}},
     [], ["10.0.0.1", {"jump": {"target": "a"}}]],
    ids=repr,
)
def test_each_spelling_has_the_general_key(value: object) -> None:
    assert element_key(value) == _general_key(value)


@settings(max_examples=400)
@given(st.one_of(_scalars, _values))
def test_the_shortcut_for_common_spellings_gives_every_value_the_general_key(value: object) -> None:
    """``element_key`` tries addresses, protocols, ports and concatenations by their exact
    type first; whatever it is given, the key is the one the general path gives."""
    assert element_key(value) == _general_key(value)


_TRICKY_ADDRESSES = ["01.2.3.4", "1.2.3", "1.2.3.4 ", "0x1.2.3.4", "1.2.3.04", "::ffff:1.2.3.4", "fe80::1%eth0",
                     "1::2::3", "\u0661.\u0662.\u0663.\u0664", "a\x00b", "::", "255.255.255.255", "10.0.0.0/8"]


@settings(max_examples=400)
@given(st.one_of(st.ip_addresses().map(str), st.text(alphabet="0123456789abcdef.:%/x ", max_size=20), st.text(),
                 st.sampled_from(_TRICKY_ADDRESSES)))
def test_an_address_read_the_fast_way_has_the_key_ipaddress_gives_it(text: str) -> None:
    """Plain addresses are read by ``inet_pton`` first; any text keys as ``ipaddress`` reads
    it, address or not."""
    assert _address_range(text) == _parsed_range(text)
