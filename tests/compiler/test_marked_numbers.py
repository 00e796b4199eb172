"""The marked layout's numbers are state (``markedpeers.MarkedPeers``): a peer keeps its number
while its group moves together, so merges, leaves and splits change identity-map entries or
one element per moved peer, and the deltas still build a ruleset where every peer address
reaches the chain a whole compile sends it to."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.compiler import markedpeers
from policyctl.compiler.compile import compile_node
from policyctl.compiler.delta import RulesetDelta, diff, empty_ruleset, patch
from policyctl.compiler.evaluator import Evaluator, Packet
from policyctl.compiler.incremental import NodeCompiler
from policyctl.compiler.layout import (
    identity_chain_of_entry,
    identity_map_name,
    marked_entry_chain_name,
    peer_chain_prefix,
    peer_map_name,
)
from policyctl.compiler.markedpeers import FOREIGN_PREFIXES, TIDY_ELEMENTS, IdentityMark, MarkedPeers, canonical, marked
from policyctl.compiler.render_json import to_document
from policyctl.compiler.ruleset import (
    Chain,
    FieldType,
    Goto,
    Hook,
    Jump,
    Key,
    Log,
    Mode,
    Rule,
    Ruleset,
    Verdict,
    VerdictMap,
    VmapLookup,
)
from policyctl.policy.model import Direction, Family, IPAddress
from tests.packets import HOOKS, arriving_marks, drawn_packets
from tests.strategies import cluster_histories, node_with_pods

IN = Direction.INGRESS
V4 = (IN, Family.IPV4)
Peers = dict[tuple[Direction, Family], dict[IPAddress, str]]


def _address(family: Family, i: int) -> IPAddress:
    return ipaddress.ip_address(f"10.0.0.{i + 1}" if family is Family.IPV4 else f"fd00::{i + 1:x}")


def _chain(direction: Direction, name: str) -> str:
    return f"{peer_chain_prefix(direction)}{name}"


def _plain(peers: Peers, empty_chains: tuple[tuple[Direction, str], ...] = ()) -> Ruleset:
    """A ruleset of the jumping layout holding just peer maps and their identity chains."""
    maps = tuple(
        VerdictMap(peer_map_name(d, f), FieldType.address(f), tuple(sorted((ip, Jump(c)) for ip, c in entries.items())))
        for (d, f), entries in peers.items()
    )
    names = {c for entries in peers.values() for c in entries.values()} | {_chain(d, n) for d, n in empty_chains}
    return Ruleset("t", "node-1", Mode.ENFORCE, sets=(), maps=tuple(sorted(maps, key=lambda m: m.name)),
                   chains=tuple(Chain(n, ()) for n in sorted(names)))


class _Steps:
    """A marker fed plain rulesets one after another, with the whole marked ruleset its
    deltas build."""

    def __init__(self, mark: IdentityMark) -> None:
        self.mark = mark
        self.marker = MarkedPeers(mark)
        self.plain = empty_ruleset("t", "node-1", Mode.ENFORCE)
        self.built = self.plain

    def to(self, plain: Ruleset) -> RulesetDelta:
        delta = self.marker.translate(diff(self.plain, plain))
        self.plain, self.built = plain, patch(self.built, delta)
        return delta


def _elements(delta: RulesetDelta) -> int:
    return sum(len(e) for _, e in delta.added_elements + delta.removed_elements)


def _entries(delta: RulesetDelta) -> tuple[set[tuple[int, str]], set[tuple[int, str]]]:
    name = identity_map_name(*V4)
    removed = {(v, identity_chain_of_entry(j.target)) for n, es in delta.removed_entries if n == name for v, j in es}
    added = {(v, identity_chain_of_entry(j.target)) for n, es in delta.added_entries if n == name for v, j in es}
    return removed, added


MARK = IdentityMark(0x00FF0000)
A, B, C = _chain(IN, "a"), _chain(IN, "b"), _chain(IN, "c")


def _group(chain: str, first: int, count: int) -> dict[IPAddress, str]:
    return {_address(Family.IPV4, i): chain for i in range(first, first + count)}


def test_a_merge_changes_one_identity_map_entry_and_no_element() -> None:
    steps = _Steps(MARK)
    steps.to(_plain({V4: {**_group(A, 0, 8), **_group(B, 8, 8)}}))
    number_of_a = steps.marker.carried[V4][_address(Family.IPV4, 0)]
    delta = steps.to(_plain({V4: {**_group(B, 0, 8), **_group(B, 8, 8)}}))
    value = MARK.value(number_of_a)
    assert _elements(delta) == 0
    assert _entries(delta) == ({(value, A)}, {(value, B)})
    assert delta.removed_chains == (A, marked_entry_chain_name(A))
    (tree,) = delta.chains
    assert tree.name.startswith(FOREIGN_PREFIXES)
    assert sum(Goto(B) in r.statements for r in tree.rules) == 1
    assert not any(Goto(A) in r.statements for r in tree.rules)


def test_peers_that_all_leave_keep_their_bits_under_a_retired_number_until_later_steps_remove_them() -> None:
    steps = _Steps(MARK)
    steps.to(_plain({V4: {**_group(A, 0, 20), **_group(B, 20, 1)}}))
    retired = steps.marker.carried[V4][_address(Family.IPV4, 0)]
    delta = steps.to(_plain({V4: _group(B, 20, 1)}))
    assert _elements(delta) == 0
    assert _entries(delta) == ({(MARK.value(retired), A)}, set())
    assert steps.marker.retired[IN] == {retired: None}

    cleanup = []
    newcomers: dict[IPAddress, str] = {}
    for i in range(30, 60):
        if not steps.marker.retired[IN]:
            break
        newcomers |= _group(B, i, 1)
        cleanup.append(_elements(steps.to(_plain({V4: {**_group(B, 20, 1), **newcomers}}))))
        assert canonical(steps.built, MARK) == marked(steps.plain, MARK)
    assert not steps.marker.retired[IN]
    assert all(n <= TIDY_ELEMENTS + retired.bit_count() for n in cleanup)
    assert sum(cleanup) == 20 * retired.bit_count() + sum(
        steps.marker.carried[V4][ip].bit_count() for ip in newcomers
    )


def test_few_peers_that_all_leave_take_their_bits_with_them_and_free_their_number() -> None:
    steps = _Steps(MARK)
    steps.to(_plain({V4: {**_group(A, 0, 2), **_group(B, 20, 1)}}))
    number = steps.marker.carried[V4][_address(Family.IPV4, 0)]
    assert 2 * number.bit_count() <= TIDY_ELEMENTS
    delta = steps.to(_plain({V4: _group(B, 20, 1)}))
    assert _elements(delta) == 2 * number.bit_count()
    assert _entries(delta) == ({(MARK.value(number), A)}, set())
    assert not steps.marker.retired[IN] and number not in steps.marker.targets[IN]
    assert canonical(steps.built, MARK) == marked(steps.plain, MARK)


@pytest.mark.parametrize(("moving", "who_moves"), [(2, "the two going"), (7, "the one staying")])
def test_a_split_moves_the_fewer_peers_one_bit_away(moving: int, who_moves: str) -> None:
    steps = _Steps(MARK)
    steps.to(_plain({V4: _group(A, 0, 8)}))
    number_of_a = steps.marker.carried[V4][_address(Family.IPV4, 0)]
    delta = steps.to(_plain({V4: {**_group(C, 0, moving), **_group(A, moving, 8 - moving)}}))
    assert _elements(delta) == min(moving, 8 - moving), who_moves
    moved = [ip for ip, n in steps.marker.carried[V4].items() if n != number_of_a]
    assert {(steps.marker.carried[V4][ip] ^ number_of_a).bit_count() for ip in moved} == {1}
    assert canonical(steps.built, MARK) == marked(steps.plain, MARK)


def test_with_no_number_free_the_step_numbers_afresh_as_a_whole_compile() -> None:
    mark = IdentityMark(0x00030000)
    steps = _Steps(mark)
    steps.to(_plain({V4: {**_group(A, 0, 9), **_group(B, 9, 1)}}))
    steps.to(_plain({V4: _group(B, 9, 1)}))
    assert steps.marker.retired[IN]
    steps.to(_plain({V4: {**_group(B, 9, 1), **_group(C, 10, 1), **_group(A, 11, 1)}}))
    assert steps.built == marked(steps.plain, mark)
    assert not steps.marker.retired[IN]


HALVES = [(d, f) for d in (Direction.EGRESS, Direction.INGRESS) for f in (Family.IPV4, Family.IPV6)]


@st.composite
def _peer_histories(draw: st.DrawFn, chains: int) -> list[tuple[Peers, tuple[tuple[Direction, str], ...]]]:
    """Steps of peer maps: addresses reassigned one by one, chains merged, left or split
    whole, maps gone and back; a few identity chains without peers."""
    names = [f"c{i}" for i in range(chains)]
    peers: Peers = {h: {} for h in HALVES}
    history = []
    for _ in range(draw(st.integers(1, 12))):
        peers = {h: dict(e) for h, e in peers.items()}
        direction = draw(st.sampled_from((Direction.EGRESS, Direction.INGRESS)))
        own = [h for h in HALVES if h[0] is direction and h in peers]
        of_chain = lambda name: [(h, ip) for h in own for ip, c in peers[h].items() if c == _chain(direction, name)]  # noqa: E731
        op = draw(st.sampled_from(("assign", "assign", "merge", "leave", "split", "split", "toggle")))
        if op == "assign":
            for _ in range(draw(st.integers(1, 6))):
                half = draw(st.sampled_from(HALVES))
                if half not in peers:
                    continue
                ip = _address(half[1], draw(st.integers(0, 11)))
                chain = draw(st.none() | st.sampled_from(names))
                if chain is None:
                    peers[half].pop(ip, None)
                else:
                    peers[half][ip] = _chain(half[0], chain)
        elif op in ("merge", "leave", "split"):
            unused = [n for n in names if not of_chain(n)]
            source = draw(st.sampled_from([n for n in names if n not in unused] or names))
            target = draw(st.sampled_from(unused if unused and draw(st.booleans()) else names))
            members = of_chain(source)
            if op == "split":
                members = draw(st.lists(st.sampled_from(members), unique=True)) if members else []
            for h, ip in members:
                if op == "leave":
                    del peers[h][ip]
                else:
                    peers[h][ip] = _chain(direction, target)
        else:
            half = draw(st.sampled_from(HALVES))
            if half in peers:
                del peers[half]
            else:
                peers[half] = {_address(half[1], i): _chain(half[0], draw(st.sampled_from(names))) for i in range(3)}
        empty = tuple((d, n) for d in (Direction.EGRESS, Direction.INGRESS)
                      for n in draw(st.lists(st.sampled_from(names), max_size=2, unique=True)))
        history.append((peers, empty))
    return history


@pytest.mark.parametrize("spare", [markedpeers.SPARE_NUMBERS, 0], ids=["spare-numbers", "no-spare-numbers"])
@pytest.mark.parametrize(("mask", "chains"), [(0x00030000, 3), (0x000F0000, 6), (0x00FF0000, 6)],
                         ids=["3-numbers", "15-numbers", "255-numbers"])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_step_builds_the_ruleset_it_holds_and_sends_each_peer_where_a_whole_compile_does(
    spare: int, mask: int, chains: int, data: st.DataObject
) -> None:
    mark = IdentityMark(mask)
    history = data.draw(_peer_histories(chains), label="history")
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(markedpeers, "SPARE_NUMBERS", spare)
        steps = _Steps(mark)
        for peers, empty in history:
            steps.to(_plain(peers, empty))
            assert steps.built == steps.marker.ruleset(steps.plain)
            assert canonical(steps.built, mark) == marked(steps.plain, mark)
            for direction in (Direction.EGRESS, Direction.INGRESS):
                assert not steps.marker.targets[direction].keys() & steps.marker.retired[direction].keys()



def _reached(
    built: Ruleset, marker: MarkedPeers, half: tuple[Direction, Family], ip: IPAddress, mark: int
) -> tuple[tuple[str, ...], int]:
    """The identity chain a packet from (ingress) or to (egress) ``ip``, arriving with
    ``mark``, reaches through what the marked layout made of ``half``'s peer-map lookup (an
    identity chain that logs its name and accepts), and the mark it leaves with."""
    direction, family = half
    lookup = Rule((VmapLookup(Key.address(family, source=direction is IN), peer_map_name(*half)),))
    identity = {n for n in marker.chains[direction]}
    chains = [
        Chain(c.name, (Rule((Log(c.name), Verdict.ACCEPT)),)) if c.name in identity else c for c in built.chains
    ]
    base = Chain("base", marker.rules(lookup), hook=Hook.INPUT, priority=0, policy=Verdict.ACCEPT)
    evaluator = Evaluator(to_document(dataclasses.replace(built, chains=(base, *chains))))
    other = _address(family, 200)
    packet = Packet(ip, other, 6, 80, mark=mark) if direction is IN else Packet(other, ip, 6, 80, mark=mark)
    outcome = evaluator.evaluate("input", packet)
    return outcome.logs, outcome.mark


@pytest.mark.parametrize(("mask", "chains"), [(0x00030000, 3), (0x000F0000, 6), (0x00FF0000, 6)],
                         ids=["3-numbers", "15-numbers", "255-numbers"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_both_paths_send_every_peer_where_its_peer_map_does_and_leave_the_mark_as_it_came(
    mask: int, chains: int, data: st.DataObject
) -> None:
    """The marked path (the bits clear on arrival) and the path without marks (some set by
    another component) after every step of merges, leaves and splits, retired numbers
    included: an address of the peer map reaches its chain, any other address none."""
    mark = IdentityMark(mask)
    history = data.draw(_peer_histories(chains), label="history")
    steps = _Steps(mark)
    for peers, empty in history:
        steps.to(_plain(peers, empty))
        for half, entries in peers.items():
            for i in range(12):
                ip = _address(half[1], i)
                expected = (entries[ip],) if ip in entries else ()
                for arriving in (0, data.draw(arriving_marks(mask))):
                    assert _reached(steps.built, steps.marker, half, ip, arriving) == (expected, arriving), (half, ip)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_ruleset_the_steps_built_decides_every_packet_as_a_whole_compile(data: st.DataObject) -> None:
    """Through the evaluator, not through ``canonical``: retired numbers' addresses, still in
    the bit sets, must match nothing, exactly as addresses in no set."""
    mark = IdentityMark(0x000F0000)
    history = data.draw(cluster_histories(steps=6), label="history")
    node = node_with_pods(history)
    compiler = NodeCompiler(node, identity_mark=mark)
    for snapshot in history:
        compiler.update(snapshot)
        built = Evaluator(to_document(compiler.ruleset))
        whole = Evaluator(to_document(compile_node(snapshot, node, identity_mark=mark)))
        for connection, packet in drawn_packets(data, snapshot, 8, mark=data.draw(arriving_marks(mark.mask))):
            for hook in HOOKS:
                a, b = built.evaluate(hook, packet), whole.evaluate(hook, packet)
                assert (a.accepted, a.logs, a.mark) == (b.accepted, b.logs, packet.mark), (hook, connection)
