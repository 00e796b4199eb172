"""A transaction's id depends on its commands only: equal commands give one id, whatever
order their keys were written in; a different command gives another."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.enforcer.diff import Transaction

values = st.recursive(
    st.one_of(st.integers(-1000, 1000), st.text(max_size=6), st.booleans(), st.none()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)
commands = st.lists(
    st.dictionaries(st.sampled_from(["add", "delete", "flush"]), values, min_size=1, max_size=1), max_size=5
)


def reversed_keys(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: reversed_keys(tree[k]) for k in reversed(list(tree))}
    if isinstance(tree, list):
        return [reversed_keys(v) for v in tree]
    return tree


@settings(max_examples=100, deadline=None)
@given(commands)
def test_equal_commands_have_one_id_whatever_their_key_order(found: list[dict[str, Any]]) -> None:
    written = Transaction(commands=tuple(found))
    reordered = Transaction(commands=tuple(reversed_keys(c) for c in found))
    assert written.transaction_id == reordered.transaction_id


@settings(max_examples=100, deadline=None)
@given(commands, commands)
def test_different_commands_have_different_ids(one: list[dict[str, Any]], other: list[dict[str, Any]]) -> None:
    if Transaction(commands=tuple(one)) != Transaction(commands=tuple(other)):
        assert Transaction(commands=tuple(one)).transaction_id != Transaction(commands=tuple(other)).transaction_id
