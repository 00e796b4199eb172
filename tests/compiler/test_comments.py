"""Set and rule comments: the longest run of sources, in order, that fits nft's 128 bytes with
its ``+more`` marker; a set kept across steps gives the comment of its sources as they are now."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from policyctl.compiler.layout import COMMENT_MAX_BYTES, LAYOUTS, MORE, SetKind, terse_comment
from policyctl.compiler.tracking import SetState
from policyctl.policy.model import Direction, Family

_letters = st.sampled_from("ab/é[] 0")
_source = st.text(alphabet=_letters, max_size=2) | st.text(alphabet=_letters, max_size=12)
"""At most 24 bytes, so every source fits alone; many short ones fill a comment with dozens."""


def _longest_prefix_that_fits(sources: list[str]) -> str:
    items = sorted(set(sources))
    for keep in range(len(items), 0, -1):
        comment = "; ".join(items[:keep]) + (MORE if keep < len(items) else "")
        if len(comment.encode()) <= COMMENT_MAX_BYTES:
            return comment
    return ""


_MANY_SHORT = ["", *"abcdefghijklmnopqrstuvwxyz", *(f"z{c}" for c in "abcdefghijklmnopqrst")]
"""47 sources, of which the first 38 fit: the most of any comment in these tests."""


@example(_MANY_SHORT)
@given(st.lists(_source, max_size=300))
def test_a_comment_is_the_longest_run_of_sources_in_order_that_fits(sources: list[str]) -> None:
    """Sources here are short enough to fit alone (a source that does not is cut: the table
    test in test_compile.py)."""
    assert terse_comment(sources) == _longest_prefix_that_fits(sources)


@given(st.lists(st.tuples(st.booleans(), st.sampled_from([f"ns-{i:02d}/p ingress[0]" for i in range(40)]))))
def test_a_set_state_comments_on_the_sources_it_holds_after_any_comings_and_goings(
    changes: list[tuple[bool, str]],
) -> None:
    state = SetState("in-any-v4", LAYOUTS[(Direction.INGRESS, Family.IPV4, SetKind.ANY)], None)
    held: dict[str, int] = {}
    for adds, source in changes:
        if adds:
            state.add_source(source)
            held[source] = held.get(source, 0) + 1
        elif held.get(source):
            state.drop_source(source)
            held[source] -= 1
        assert state.comment == terse_comment(s for s, n in held.items() if n)
    assert state.sources == {s: n for s, n in held.items() if n}
    assert state.ordered == sorted(state.sources)
