"""Peer maps as data: a peer's identity as a number carried in packet-mark bits.

Why: nf_tables re-validates the chain graph on every commit that adds a rule or a set element
with a ``jump`` verdict, walking every element of every verdict map reachable from the base
chains. The peer maps (peer address -> jump to its identity's chain, ``docs/ruleset.md``) hold
one jump per admitted peer address, so at 100k pods every pod event pays for a walk through
tens of thousands of elements (``bench/validation.py``: 15-20 ms per event against 2.5-3.3 ms
for a plain element on the same table). Here the address -> identity step is data, which
validation skips, and only the identity -> chain step jumps, in a map as small as the number of
identities.

nft 1.0.6 uses a map's result only in a statement, never inside a lookup key, so the number
travels in packet-mark bits the operator gives policyctl (``IdentityMark``; kube-proxy, CNIs
and service meshes own the others, and every other bit is kept as they left it). The layout,
opt-in, rewrites a compiled ruleset and each delta of it:

* each identity chain of a direction gets a number from 1 to ``2**bits - 1``, few of whose bits
  are set, a pure function of that direction's identity chain names and sizes
  (:func:`numbering`), so a whole compile and an incremental one give the same numbers;
* for each mark bit ``p``, a set ``in-peers-b<p>-v4`` holds the peer addresses whose number,
  spread over the mask's bits, sets ``p``;
* a verdict map ``in-identities-v4`` maps that mark value to the identity chain;
* the allow chain's ``ip saddr vmap @in-peers-v4`` becomes: clear the bits, one rule per bit
  (``ip saddr @in-peers-b<p>-v4 meta mark set meta mark | bit``), ``meta mark & mask vmap
  @in-identities-v4``, clear the bits; an identity chain clears them before it accepts.

Per packet that is ``bits`` set lookups more, on a connection's first packet only, whatever the
cluster's size. A pod event now changes plain set elements (its address in the sets of its
number's bits), and only a new or vanished identity adds or removes a jump.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

from policyctl.policy.diagnostics import PolicyctlError
from policyctl.policy.model import Direction, Family, IPAddress

from .delta import MarkEntry, RulesetDelta, diff, empty_ruleset, patch
from .intervals import address_interval
from .layout import FAMILIES, identity_map_name, peer_bit_set_name, peer_chain_prefix, peer_map_name
from .ruleset import (
    Chain,
    Counter,
    Element,
    FieldType,
    Jump,
    Key,
    Lookup,
    MarkSet,
    Rule,
    Ruleset,
    Set,
    Verdict,
    VerdictMap,
    VmapLookup,
)

DIRECTIONS = (Direction.EGRESS, Direction.INGRESS)
ALL_BITS = 0xFFFFFFFF
Half = tuple[Direction, Family]


class IdentityMarkFull(PolicyctlError):
    """More peer identities in one direction than the mark bits can number: the commands
    report it as an input error (exit 2), the agent as a failed sync that keeps the ruleset."""


@dataclass(frozen=True, slots=True)
class IdentityMark:
    """The packet-mark bits policyctl may use while it decides a new connection."""

    mask: int
    positions: tuple[int, ...] = field(init=False, compare=False, repr=False)
    """The mask's bits, lowest first."""
    shift: int | None = field(init=False, compare=False, repr=False)
    """For a contiguous mask, its lowest bit: a number's value is then one shift (values are
    computed per peer address and bit on every event that renumbers or moves peers)."""
    capacity: int = field(init=False, compare=False, repr=False)
    """The largest number the bits hold (numbers start at 1; 0 is no identity)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", tuple(p for p in range(32) if self.mask >> p & 1))
        object.__setattr__(self, "capacity", (1 << len(self.positions)) - 1)
        low = self.positions[0] if self.positions else 0
        contiguous = self.mask == self.capacity << low
        object.__setattr__(self, "shift", low if contiguous else None)
        if not 0 < self.mask <= ALL_BITS:
            raise ValueError(f"the identity mark must be a non-zero 32-bit mask, not {self.mask:#x}")
        if len(self.positions) < 2:
            raise ValueError(f"the identity mark {self.mask:#010x} has one bit; numbering identities takes two or more")

    @classmethod
    def parse(cls, text: str) -> IdentityMark:
        """``0x00ff0000`` (or any integer literal ``int(text, 0)`` reads)."""
        try:
            return cls(int(text, 0))
        except ValueError as error:
            if "identity mark" in str(error):
                raise
            raise ValueError(f"the identity mark must be a 32-bit mask such as 0x00ff0000, not {text!r}") from None

    def value(self, number: int) -> int:
        """``number``'s bits spread over the mask's bits, lowest first."""
        if self.shift is not None:
            return (number & self.capacity) << self.shift
        return sum(1 << p for i, p in enumerate(self.positions) if number >> i & 1)

    @property
    def clear(self) -> MarkSet:
        return MarkSet(keep=ALL_BITS & ~self.mask)


@functools.lru_cache(maxsize=1 << 14)
def _hash(name: str) -> int:
    """Memoised: every change to a direction's identities numbers all of them again."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


def light_weight(bits: int) -> int:
    """How many bits a light number sets at most: a fifth of the mask's, at least one."""
    return max(1, bits // 5)


def _light_count(bits: int) -> int:
    return sum(math.comb(bits, k) for k in range(1, light_weight(bits) + 1))


@functools.lru_cache(maxsize=1 << 14)
def number_at(bits: int, index: int) -> int:
    """The ``index``-th number of ``bits`` bits, fewest bits set first, then by value (never
    listed whole: a 32-bit mask has four billion). Numbers of one weight in value order are
    its combinations of bit positions in colex order, unranked here; neighbours differ in few
    bits, so a number moved one step along (a collision that comes or goes) changes few
    bit-set elements."""
    weight = 1
    while index >= (count := math.comb(bits, weight)):
        index -= count
        weight += 1
    number = 0
    for left in range(weight, 0, -1):
        position = left - 1
        while math.comb(position + 1, left) <= index:
            position += 1
        index -= math.comb(position, left)
        number |= 1 << position
    return number


def numbering(sizes: Mapping[str, int], mark: IdentityMark) -> dict[str, int]:
    """A number for each identity chain name, given how many peer addresses it holds.

    Why light numbers: a peer address sits in the bit set of each bit its identity's number
    sets, so a peer that comes, goes or changes identity costs one element per bit that
    differs. A number is taken at the name's hash among the light numbers (at most
    ``light_weight`` bits set: 696 of 65,535 for 16 bits, 2.8 bits on average instead of 8),
    or the next free one along :func:`number_at`.

    Why larger identities first: light numbers collide more often, and the name that loses a
    collision is renumbered when the winner leaves, moving every address of the loser.
    Identities are taken in order of their size's power of two, larger first, then by name,
    so a namespace-wide identity of thousands of addresses is never moved by a small one
    coming or going. A function of the names and sizes alone (which a whole compile and the
    incremental translation both read from the peer maps), so both give the same numbers."""
    if len(sizes) > mark.capacity:
        raise IdentityMarkFull(
            f"{len(sizes)} peer identities in one direction; the {len(mark.positions)} bits of identity mark "
            f"{mark.mask:#010x} number at most {mark.capacity}: give more bits"
        )
    bits, light, capacity = len(mark.positions), _light_count(len(mark.positions)), mark.capacity
    taken: set[int] = set()
    onward: dict[int, int] = {}
    numbers: dict[str, int] = {}
    for name in sorted(sizes, key=lambda n: (-sizes[n].bit_length(), n)):
        at = _hash(name) % light
        if at in taken:
            at = _free(taken, onward, at, capacity)
        taken.add(at)
        numbers[name] = number_at(bits, at)
    return numbers


def _free(taken: AbstractSet[int], onward: dict[int, int], at: int, capacity: int) -> int:
    """The first index from ``at`` on (wrapping) not ``taken``. A taken index leads to the
    next one, or to where ``onward`` says the run of taken indexes after it was last found to
    end; the indexes crossed are pointed at the free one found, so a run is crossed once, not
    by every name that lands in it: with more identities than light numbers, stepping one
    index at a time took 5.4 ms for 1,000 names and 125 ms for 3,000 (16 bits)."""
    crossed = []
    while at in taken:
        crossed.append(at)
        at = onward.get(at, (at + 1) % capacity)
    for index in crossed:
        onward[index] = at
    return at


def _direction_of_chain(name: str) -> Direction | None:
    return next((d for d in DIRECTIONS if name.startswith(peer_chain_prefix(d))), None)


PEER_MAPS: Mapping[str, Half] = {peer_map_name(d, f): (d, f) for d in DIRECTIONS for f in FAMILIES}


class MarkedPeers:
    """Rewrites the deltas of one node's rulesets into the marked layout, step by step (each
    delta must follow the previous one, the first from an empty ruleset)."""

    def __init__(self, mark: IdentityMark) -> None:
        self.mark = mark
        self.entries: dict[Half, dict[IPAddress | int, str]] = {h: {} for h in PEER_MAPS.values()}
        self.members: dict[Half, dict[str, set[IPAddress | int]]] = {h: {} for h in PEER_MAPS.values()}
        self.chains: dict[Direction, frozenset[str]] = {d: frozenset() for d in DIRECTIONS}
        self.numbers: dict[Direction, dict[str, int]] = {d: {} for d in DIRECTIONS}
        self.sizes: dict[Direction, dict[str, int]] = {d: {} for d in DIRECTIONS}
        """How many peer addresses each identity chain holds (both families), kept as members
        come and go: a step that renumbers reads every chain's size."""
        self.ranks: dict[Direction, dict[str, int]] = {d: {} for d in DIRECTIONS}
        """Each identity chain's size as a power of two, the order :func:`numbering` takes."""
        self.present: set[Half] = set()

    # rules -----------------------------------------------------------------------------

    def rules(self, rule: Rule) -> tuple[Rule, ...]:
        """A rule of the marked ruleset: a peer-map lookup becomes the bit rules, an accept in
        an identity chain clears the bits first."""
        statements = rule.statements
        if len(statements) == 1 and isinstance(statements[0], VmapLookup) and statements[0].map in PEER_MAPS:
            direction, family = PEER_MAPS[statements[0].map]
            peer = statements[0].key
            return (
                Rule((self.mark.clear,), comment="identity mark bits: cleared"),
                *(
                    Rule((Lookup((peer,), peer_bit_set_name(direction, family, p)), MarkSet(bits=1 << p)))
                    for p in self.mark.positions
                ),
                Rule((VmapLookup(Key.META_MARK, identity_map_name(direction, family), mask=self.mark.mask),)),
                Rule((self.mark.clear,)),
            )
        return (rule,)

    def chain(self, chain: Chain) -> Chain:
        identity = _direction_of_chain(chain.name) is not None
        rules: list[Rule] = []
        for rule in chain.rules:
            if identity and rule.statements and rule.statements[-1] is Verdict.ACCEPT:
                at = next((i for i, s in enumerate(rule.statements) if isinstance(s, Counter)), -1)
                rule = replace(rule, statements=(*rule.statements[:at], self.mark.clear, *rule.statements[at:]))
            rules.extend(self.rules(rule))
        return replace(chain, rules=tuple(rules))

    # elements --------------------------------------------------------------------------

    def _bits(self, numbers: Mapping[str, int], chain: str | None) -> int:
        return self.mark.value(numbers[chain]) if chain is not None else 0

    def _bit_sets(self, half: Half, entries: Mapping[IPAddress | int, str], numbers: Mapping[str, int]) -> list[Set]:
        direction, family = half
        held: dict[int, list[Element]] = {p: [] for p in self.mark.positions}
        bits = {chain: [p for p in self.mark.positions if self.mark.value(n) >> p & 1] for chain, n in numbers.items()}
        for ip, chain in entries.items():
            element = (address_interval(ip),)  # type: ignore[arg-type]
            for p in bits[chain]:
                held[p].append(element)
        return [
            Set(
                peer_bit_set_name(direction, family, p),
                (FieldType.address(family),),
                tuple(sorted(held[p])),
                interval=False,
                comment=f"peers whose identity mark sets bit {p}",
            )
            for p in self.mark.positions
        ]

    def _identity_map(self, half: Half, numbers: Mapping[str, int]) -> VerdictMap:
        direction, family = half
        return VerdictMap(
            identity_map_name(direction, family),
            FieldType.MARK,
            tuple(sorted((self.mark.value(n), Jump(c)) for c, n in numbers.items())),
            comment=f"identity mark -> {direction.value.lower()} identity chain",
        )

    # one step --------------------------------------------------------------------------

    def _grow(self, direction: Direction, chain: str, by: int) -> None:
        sizes = self.sizes[direction]
        size = sizes.get(chain, 0) + by
        if size:
            sizes[chain] = size
        else:
            sizes.pop(chain, None)

    def _ranked(
        self, direction: Direction, chains: AbstractSet[str], touched: AbstractSet[str] | None
    ) -> dict[str, int]:
        """The ranks of ``chains`` after this step: the previous ranks (the same object) when
        no chain ``touched`` (None: any) crossed a power of two and no chain came or went."""
        ranks, sizes = self.ranks[direction], self.sizes[direction]
        if touched is None or chains is not self.chains[direction]:
            return {c: sizes.get(c, 0).bit_length() for c in chains}
        crossed = {c: r for c in touched if c in chains and (r := sizes.get(c, 0).bit_length()) != ranks[c]}
        return {**ranks, **crossed} if crossed else ranks

    def translate(self, delta: RulesetDelta) -> RulesetDelta:
        """The marked layout's delta for ``delta`` of the plain layout."""
        chains: dict[Direction, AbstractSet[str]] = dict(self.chains)
        for d in DIRECTIONS:
            added = {c.name for c in delta.chains if c.name.startswith(peer_chain_prefix(d))}
            left = {n for n in delta.removed_chains if n.startswith(peer_chain_prefix(d))}
            if added - chains[d] or left & chains[d]:
                chains[d] = (chains[d] | added) - left
        whole = {PEER_MAPS[m.name]: m for m in delta.maps if m.name in PEER_MAPS}
        gone = {PEER_MAPS[n] for n in delta.removed if n in PEER_MAPS}
        added_entries = {PEER_MAPS[n]: e for n, e in delta.added_entries if n in PEER_MAPS}
        removed_entries = {PEER_MAPS[n]: e for n, e in delta.removed_entries if n in PEER_MAPS}

        sets = list(delta.sets)
        maps = [m for m in delta.maps if m.name not in PEER_MAPS]
        removed = [n for n in delta.removed if n not in PEER_MAPS]
        added_elements: dict[str, list[Element]] = {n: list(e) for n, e in delta.added_elements}
        removed_elements: dict[str, list[Element]] = {n: list(e) for n, e in delta.removed_elements}
        added_map: dict[str, list[MarkEntry]] = {n: list(e) for n, e in delta.added_entries if n not in PEER_MAPS}
        removed_map: dict[str, list[MarkEntry]] = {n: list(e) for n, e in delta.removed_entries if n not in PEER_MAPS}

        previous: dict[Half, dict[IPAddress | int, str | None]] = {}
        touched: dict[Direction, set[str] | None] = {d: set() for d in DIRECTIONS}
        for half in PEER_MAPS.values():
            direction = half[0]
            entries, members = self.entries[half], self.members[half]
            old_of = previous[half] = {}
            if half in whole or half in gone:
                for chain, held in members.items():
                    self._grow(direction, chain, -len(held))
                entries.clear()
                members.clear()
                touched[direction] = None
                for ip, target in whole[half].elements if half in whole else ():
                    entries[ip] = target.target
                    members.setdefault(target.target, set()).add(ip)
                for chain, held in members.items():
                    self._grow(direction, chain, len(held))
                continue
            for ip, target in removed_entries.get(half, ()):
                if entries.get(ip) == target.target:
                    old_of.setdefault(ip, target.target)
                    del entries[ip]
                    members[target.target].remove(ip)
                    self._grow(direction, target.target, -1)
            for ip, target in added_entries.get(half, ()):
                old_of.setdefault(ip, entries.get(ip))
                entries[ip] = target.target
                held = members.setdefault(target.target, set())
                if ip not in held:
                    held.add(ip)
                    self._grow(direction, target.target, 1)
            changed = touched[direction]
            if changed is not None:
                changed.update(c for c in old_of.values() if c is not None)
                changed.update(entries[ip] for ip in old_of if ip in entries)
        ranks = {d: self._ranked(d, chains[d], touched[d]) for d in DIRECTIONS}
        numbers = {
            d: self.numbers[d]
            if chains[d] is self.chains[d] and ranks[d] is self.ranks[d]
            else numbering({c: self.sizes[d].get(c, 0) for c in chains[d]}, self.mark)
            for d in DIRECTIONS
        }
        renumbered = {
            d: set() if numbers[d] is self.numbers[d] else {
                c for c in self.numbers[d].keys() | numbers[d].keys() if self.numbers[d].get(c) != numbers[d].get(c)
            }
            for d in DIRECTIONS
        }

        for half in PEER_MAPS.values():
            direction, family = half
            entries, members = self.entries[half], self.members[half]
            old_of = previous[half]
            was, now = half in self.present, half in whole or (half in self.present and half not in gone)
            names = [peer_bit_set_name(direction, family, p) for p in self.mark.positions]
            if now and (not was or half in whole):
                sets += self._bit_sets(half, entries, numbers[direction])
                maps.append(self._identity_map(half, numbers[direction]))
            elif was and not now:
                removed += [*names, identity_map_name(direction, family)]
            elif now:
                moving = dict(old_of)
                for chain in renumbered[direction]:
                    for ip in members.get(chain, ()):
                        moving.setdefault(ip, chain)
                for ip, old_chain in moving.items():
                    old = self._bits(self.numbers[direction], old_chain)
                    new = self._bits(numbers[direction], entries.get(ip))
                    if old == new:
                        continue
                    element = (address_interval(ip),)  # type: ignore[arg-type]
                    for p, name in zip(self.mark.positions, names):
                        if (old ^ new) >> p & 1:
                            changes = added_elements if new >> p & 1 else removed_elements
                            changes.setdefault(name, []).append(element)
                if renumbered[direction]:
                    name = identity_map_name(direction, family)
                    for numbered, moved in ((self.numbers[direction], removed_map), (numbers[direction], added_map)):
                        moved.setdefault(name, []).extend(
                            (self.mark.value(numbered[c]), Jump(c)) for c in renumbered[direction] if c in numbered
                        )
            if now:
                self.present.add(half)
            else:
                self.present.discard(half)
        self.chains = {d: frozenset(chains[d]) for d in DIRECTIONS}
        self.numbers = numbers
        self.ranks = ranks
        return RulesetDelta(
            sets=tuple(sorted(sets, key=lambda s: s.name)),
            maps=tuple(sorted(maps, key=lambda m: m.name)),
            removed=tuple(sorted(removed)),
            added_elements=tuple((n, tuple(sorted(e))) for n, e in sorted(added_elements.items()) if e),
            removed_elements=tuple((n, tuple(sorted(e))) for n, e in sorted(removed_elements.items()) if e),
            added_entries=tuple((n, tuple(sorted(e, key=lambda x: x[0]))) for n, e in sorted(added_map.items()) if e),
            removed_entries=tuple(
                (n, tuple(sorted(e, key=lambda x: x[0]))) for n, e in sorted(removed_map.items()) if e
            ),
            chains=tuple(self.chain(c) for c in delta.chains),
            removed_chains=delta.removed_chains,
            set_comments=tuple((n, c) for n, c in delta.set_comments if n not in PEER_MAPS),
        )


def marked(ruleset: Ruleset, mark: IdentityMark) -> Ruleset:
    """``ruleset`` in the marked layout (the same rewriting as a first step's delta)."""
    empty = empty_ruleset(ruleset.table, ruleset.node, ruleset.mode)
    return patch(empty, MarkedPeers(mark).translate(diff(empty, ruleset)))
