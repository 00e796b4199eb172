"""Snapshot sequences made of shared blocks read exactly as the tuple of their objects."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.policy.cluster import Cluster
from policyctl.policy.model import Labels, Pod
from policyctl.policy.snapshots import Successor, changed_objects, identity_diff

blocks = st.lists(st.lists(st.integers(0, 5), max_size=4).map(tuple), max_size=5)


@settings(max_examples=300, deadline=None)
@given(blocks=blocks, start=st.integers(-12, 12) | st.none(), stop=st.integers(-12, 12) | st.none(),
       step=st.sampled_from([None, 1, 2, -1, -3]), probe=st.integers(-1, 6))
def test_a_sequence_of_blocks_reads_as_the_tuple_of_their_objects(
    blocks: list[tuple[int, ...]], start: int | None, stop: int | None, step: int | None, probe: int
) -> None:
    flat = tuple(x for block in blocks for x in block)
    joined = Successor.of_blocks(blocks)
    assert len(joined) == len(flat)
    assert list(joined) == list(flat)
    assert list(reversed(joined)) == list(reversed(flat))
    assert joined[start:stop:step] == flat[start:stop:step]
    assert [joined[i] for i in range(-len(flat), len(flat))] == [flat[i] for i in range(-len(flat), len(flat))]
    assert (probe in joined) == (probe in flat)
    assert joined.count(probe) == flat.count(probe)
    assert joined == flat and flat == joined and hash(joined) == hash(flat)
    assert joined == Successor(flat) and not joined != Successor(flat)
    assert (joined == flat + (0,)) is False and (joined == list(flat)) is False


@pytest.mark.parametrize("index", [3, -4, 100])
def test_an_index_outside_the_sequence_is_an_index_error(index: int) -> None:
    with pytest.raises(IndexError):
        Successor.of_blocks([(1, 2), (3,)])[index]


def test_a_cluster_holding_block_sequences_equals_and_hashes_as_one_holding_tuples() -> None:
    pods = (Pod("a", "x", Labels({})), Pod("a", "y", Labels({})), Pod("b", "x", Labels({})))
    blocked = Cluster(pods=Successor.of_blocks([pods[:1], pods[1:]]))
    plain = Cluster(pods=pods)
    assert blocked == plain and plain == blocked and hash(blocked) == hash(plain)


@settings(max_examples=200, deadline=None)
@given(old=blocks, new=blocks)
def test_the_difference_of_two_block_sequences_is_the_difference_of_their_tuples(
    old: list[tuple[int, ...]], new: list[tuple[int, ...]]
) -> None:
    objects = [object() for _ in range(6)]
    old_seq = Successor.of_blocks([tuple(objects[i] for i in b) for b in old])
    new_seq = Successor.of_blocks([tuple(objects[i] for i in b) for b in new])
    gone, came = changed_objects(old_seq, new_seq)
    assert (gone, came) == identity_diff(tuple(old_seq), tuple(new_seq))
