"""The element encoders read each set's spec once and keep what they read beside it
(``elementbatch._encoder``): what they send must be what a fresh read of the spec sends."""

from __future__ import annotations

from typing import Any

import pytest

from policyctl.enforcer import elementbatch
from policyctl.enforcer.elementbatch import element_messages
from policyctl.enforcer.nfmessages import Unencodable
from policyctl.enforcer.tables import SetState


def _state(spec: dict[str, Any], kind: str = "set") -> SetState:
    return SetState(kind=kind, name="peers", spec=spec, elements={}, values={})


def _fresh(verb: str, elements: list[Any], found: SetState) -> list[Any]:
    elementbatch._ENCODERS.clear()
    return element_messages(0, verb, elements, found, table="t")


@pytest.mark.parametrize(
    ("spec", "kind", "elements"),
    [
        pytest.param({"type": "ipv4_addr"}, "set", ["10.0.0.1"], id="address"),
        pytest.param({"type": "ipv6_addr"}, "set", ["fd00::1"], id="ipv6-address"),
        pytest.param({"type": ["ipv4_addr", "inet_proto", "inet_service"]}, "set",
                     [{"concat": ["10.0.0.1", "tcp", 80]}], id="concatenation"),
        pytest.param({"type": ["ipv4_addr", "inet_proto", "inet_service"], "flags": ["interval"]}, "set",
                     [{"concat": ["10.0.0.1", "tcp", {"range": [80, 90]}]}], id="interval-concatenation"),
        pytest.param({"type": "ipv4_addr", "map": "verdict"}, "map",
                     [["10.0.0.1", {"jump": {"target": "c"}}]], id="verdict-map"),
        pytest.param({"type": "mark", "map": "verdict"}, "map", [[65536, {"jump": {"target": "c"}}]], id="mark-map"),
    ],
)
def test_a_set_read_before_encodes_as_a_fresh_read_does(spec: dict[str, Any], kind: str, elements: list[Any]) -> None:
    state = _state(spec, kind)
    for verb in ("add", "delete", "add"):
        expected = _fresh(verb, elements, state)
        assert element_messages(0, verb, elements, state, table="t") == expected
        assert element_messages(0, verb, elements, state, table="t") == expected


def test_a_set_created_again_with_another_key_type_is_encoded_by_its_new_type() -> None:
    before = _state({"type": "ipv4_addr"})
    element_messages(0, "add", ["10.0.0.1"], before, table="t")
    after = _state({"type": "ipv6_addr"})
    assert element_messages(0, "add", ["fd00::1"], after, table="t") == _fresh("add", ["fd00::1"], after)
    with pytest.raises(Unencodable):
        element_messages(0, "add", ["10.0.0.1"], after, table="t")


def test_the_encoders_kept_are_bounded() -> None:
    elementbatch._ENCODERS.clear()
    states = [_state({"type": "ipv4_addr"}) for _ in range(elementbatch._MOST_ENCODERS + 10)]
    for state in states:
        element_messages(0, "add", ["10.0.0.1"], state, table="t")
    assert 0 < len(elementbatch._ENCODERS) <= elementbatch._MOST_ENCODERS
