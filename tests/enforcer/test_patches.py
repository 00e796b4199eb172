"""Patched mappings: after any sequence of patches and settlings a mapping holds, lists and
orders exactly what a dict patched in place holds, and every mapping it was patched or settled
from is left as it was."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.enforcer.patches import FOLD_MINIMUM, UNSETTLED_FACTOR, PatchedMapping, patched, settled

Step = tuple[list[int], list[tuple[int, str]], bool]


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[int, str], list[Step]]:
    """A base dict and patches that each remove some held keys, then add keys (new ones, or
    ones just removed: a map entry retargeted), each perhaps followed by settling."""
    base = {k: f"v{k}" for k in draw(st.lists(st.integers(0, 400), max_size=300, unique=True))}
    held = dict(base)
    steps: list[Step] = []
    for index in range(draw(st.integers(0, 12))):
        keys = sorted(held)
        gone = draw(st.lists(st.sampled_from(keys), unique=True, max_size=40)) if keys else []
        for key in gone:
            del held[key]
        fresh = draw(st.lists(st.integers(0, 500).filter(lambda k: k not in held), unique=True, max_size=40))
        again = draw(st.lists(st.sampled_from(gone), unique=True)) if gone else []
        came = [(key, f"s{index}-{key}") for key in fresh + [k for k in again if k not in fresh]]
        held.update(came)
        steps.append((gone, came, draw(st.booleans())))
    return base, steps


def _replayed(history: tuple[dict[int, str], list[Step]]) -> Iterator[tuple[Mapping[int, str], dict[int, str]]]:
    """After each step: the patched mapping, and a plain dict patched in place alike."""
    base, steps = history
    reference = dict(base)
    mapping: Mapping[int, str] = base
    for gone, came, settle in steps:
        for key in gone:
            del reference[key]
        reference.update(came)
        mapping = patched(mapping, removed=gone, added=came)
        if settle:
            mapping = settled(mapping)
        yield mapping, reference


@settings(max_examples=150, deadline=None)
@given(histories())
def test_patching_is_patching_a_dict_in_place(history: tuple[dict[int, str], list[Step]]) -> None:
    for mapping, reference in _replayed(history):
        assert list(mapping.items()) == list(reference.items())
        assert len(mapping) == len(reference)
        assert mapping == reference and reference == mapping


@settings(max_examples=100, deadline=None)
@given(histories(), st.integers(-5, 505))
def test_lookups_agree_with_a_dict(history: tuple[dict[int, str], list[Step]], probe: int) -> None:
    for mapping, reference in _replayed(history):
        assert (probe in mapping) == (probe in reference)
        assert mapping.get(probe, "none") == reference.get(probe, "none")
        if probe not in reference:
            with pytest.raises(KeyError):
                mapping[probe]


@settings(max_examples=100, deadline=None)
@given(histories())
def test_a_patch_leaves_what_it_patched_unchanged(history: tuple[dict[int, str], list[Step]]) -> None:
    base, steps = history
    mapping = base
    earlier: list[tuple[object, list[tuple[int, str]]]] = []
    for gone, came, settle in steps:
        earlier.append((mapping, list(mapping.items())))
        mapping = patched(mapping, removed=gone, added=came)
        if settle:
            earlier.append((mapping, list(mapping.items())))
            mapping = settled(mapping)
    for before, items in earlier:
        assert list(before.items()) == items


def test_a_small_patch_of_a_large_mapping_shares_it() -> None:
    base = {k: k for k in range(10_000)}
    once = patched(base, removed=[1], added=[(10_001, 0)])
    assert isinstance(once, PatchedMapping) and once.pending == 2
    assert patched(once, removed=[2]).pending == 3


def test_settling_folds_pending_changes_into_a_dict_once_they_outgrow_the_base() -> None:
    base = {k: k for k in range(100)}
    mapping = patched(base, added=[(k, k) for k in range(100, 100 + FOLD_MINIMUM)])
    assert isinstance(mapping, PatchedMapping) and settled(mapping) is mapping
    grown = patched(mapping, added=[(-1, -1)])
    assert isinstance(grown, PatchedMapping), "a patch leaves the fold to settling"
    folded = settled(grown)
    assert type(folded) is dict
    assert folded == {**base, **{k: k for k in range(100, 100 + FOLD_MINIMUM)}, -1: -1}
    assert settled(folded) is folded and settled(base) is base


def test_a_patch_folds_by_itself_only_at_the_unsettled_bound() -> None:
    base = {k: k for k in range(100)}
    limit = UNSETTLED_FACTOR * FOLD_MINIMUM
    mapping = patched(base, added=[(k, k) for k in range(100, 100 + limit)])
    assert isinstance(mapping, PatchedMapping) and mapping.pending == limit
    folded = patched(mapping, removed=[0])
    assert type(folded) is dict and len(folded) == 100 + limit - 1


@pytest.mark.parametrize(
    ("base", "gone"),
    [
        pytest.param({1: "a"}, [2], id="key-never-held"),
        pytest.param({1: "a"}, [1, 1], id="key-removed-twice"),
    ],
)
def test_removing_a_key_not_held_raises_key_error(base: dict[int, str], gone: list[int]) -> None:
    with pytest.raises(KeyError):
        patched(base, removed=gone)
