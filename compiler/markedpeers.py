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
travels in packet-mark bits (``IdentityMark``; kube-proxy, CNIs and service meshes own bits
too, and every bit leaves as it came). The layout rewrites a compiled ruleset and each delta
of it:

* each peer address of a direction carries a number from 1 to ``2**bits - 1``, few of whose
  bits are set: a whole compile gives each identity chain one, a function of that direction's
  chain names and sizes (:func:`numbering`); the incremental translation keeps numbers as
  state (:class:`MarkedPeers`), so both send every peer to the same chain, not always under
  the same number (:func:`canonical`);
* for each mark bit ``p``, a set ``in-peers-b<p>-v4`` holds the peer addresses whose number,
  spread over the mask's bits, sets ``p``;
* a verdict map ``in-identities-v4`` maps that mark value to a chain that clears the bits and
  goes to the identity chain (several values may lead to one chain);
* the allow chain's ``ip saddr vmap @in-peers-v4`` becomes two rules, taken by what the bits
  hold on arrival. All clear (the marked path, ``in-marked-v4``): one rule per bit (``ip saddr
  @in-peers-b<p>-v4 meta mark set meta mark | bit``), ``meta mark & mask vmap
  @in-identities-v4``, the bits cleared, so the mark leaves exactly as it came. Some set by
  another component (the path without marks, ``in-foreign-v4``): a tree of rules that reads
  the number from the bit sets alone (:meth:`MarkedPeers.foreign_chains`) and leaves the mark
  alone, as the identity chains do. So the layout is correct whatever else uses the bits;
  sharing them costs only the packets that carry them the slower path.

Per packet that is ``bits`` set lookups more, on a connection's first packet only, whatever the
cluster's size. A pod event now changes plain set elements (its address in the sets of its
number's bits), and only a new or vanished identity adds or removes a jump (an identity-map
entry, and a rule of the tree's bucket that holds its number).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

from policyctl.policy.diagnostics import PolicyctlError
from policyctl.policy.model import Direction, Family, IPAddress

from .delta import MarkEntry, RulesetDelta, diff, empty_ruleset, patch
from .intervals import address_interval
from .layout import (
    FAMILIES,
    foreign_chain_name,
    identity_chain_of_entry,
    identity_map_name,
    marked_chain_name,
    marked_entry_chain_name,
    peer_bit_set_name,
    peer_chain_prefix,
    peer_map_name,
)
from .ruleset import (
    Chain,
    Element,
    FieldType,
    Goto,
    Jump,
    Key,
    Lookup,
    MarkSet,
    MarkTest,
    Rule,
    Ruleset,
    Set,
    Statement,
    Verdict,
    VerdictMap,
    VmapLookup,
)

DIRECTIONS = (Direction.EGRESS, Direction.INGRESS)
ALL_BITS = 0xFFFFFFFF
Half = tuple[Direction, Family]


DEFAULT_MASK = 0xFFFF0000
"""The bits the layout takes unless told otherwise (``--identity-mark``). Sixteen, so that a
direction numbers 65,535 identities (the 100k-pod preset's busiest node has about 1,000). No
bits are free on every node (kube-proxy 0x4000 and 0x8000, Calico 0xffff0000 by default,
Cilium 0x0f00, kube-router and others); the layout never changes a packet's mark, so bits
another component also sets cost its packets only the slower path without marks."""

NO_MARK = "none"
"""What ``--identity-mark`` takes for the peer maps that jump instead (no mark bits used)."""


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


DEFAULT_IDENTITY_MARK = IdentityMark(DEFAULT_MASK)
"""The layout the agent, ``compile`` and ``enforce`` use unless told otherwise, and so the lab's."""


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


Address = IPAddress | int
Carrier = tuple[Family, Address]
FOREIGN_PREFIXES = tuple(foreign_chain_name(d, Family.IPV4)[: -len("-v4")] for d in DIRECTIONS)
"""What the name of every chain of a tree without marks starts with."""
Bucket = tuple[int, int | None]
"""Where a number sits in the tree of the path without marks: the indexes of its highest and
second highest set bits (None for a number of one bit)."""


def _bucket(number: int) -> Bucket:
    high = number.bit_length() - 1
    rest = number ^ 1 << high
    return high, (rest.bit_length() - 1 if rest else None)


def _in_order(numbers: Iterable[int]) -> list[int]:
    """A bucket's numbers, more bits set first: a number's rule matches every address whose
    bits include its own, so before it must come every number whose bits include it."""
    return sorted(numbers, key=lambda n: (-n.bit_count(), -n))


def _chain_order(chains: Iterable[Chain]) -> tuple[Chain, ...]:
    """Base chains first, then the others by name, as :func:`~policyctl.compiler.delta.patch`
    orders them."""
    listed = list(chains)
    regular = sorted((c for c in listed if not c.is_base), key=lambda c: c.name)
    return (*(c for c in listed if c.is_base), *regular)


def _peer_key(half: Half) -> Key:
    direction, family = half
    return Key.address(family, source=direction is Direction.INGRESS)

TIDY_ELEMENTS = 8
"""How many bit-set elements of retired numbers a step removes at most, counting its own
element changes against it: leftovers go in the transactions of later events, each kept
near the cost of a light one."""

LEAF_CACHE = 4096
"""How many rules of numbers the tree without marks keeps made before it starts afresh."""

SPARE_NUMBERS = 64
"""How many numbers a direction may hold beyond two per identity chain before a step numbers
it afresh (see :class:`MarkedPeers`)."""


class _Exhausted(Exception):
    """No number is free for a new group: the step numbers the direction afresh."""


class MarkedPeers:
    """Rewrites the deltas of one node's rulesets into the marked layout, step by step (each
    delta must follow the previous one, the first from an empty ruleset).

    Why numbers are state: a peer's bits are its number's, so whenever peers change number
    their addresses change elements, one per bit that differs. Numbers that are a function
    of the identity chains (as a whole compile gives them, :func:`numbering`) move every
    peer of a chain that merges into another (a pod deleted whose policies alone told two
    selectors' peers apart: 230-270 elements at 10k pods where a median event changes a
    few) or that another chain's coming or going pushes to the next free number. Here a
    number stays with the addresses that carry it, and the identity map says which chain it
    jumps to, so several numbers may jump to one chain:

    * peers of one number that all move to one chain keep it, and its identity-map entry
      jumps to the new chain (a merge is one entry);
    * peers of one number that all leave the peer maps keep their bits under a *retired*
      number, which has no identity-map entry, so they match nothing, as absent peers; their
      elements are removed by later steps (:data:`TIDY_ELEMENTS`), and only then is the
      number free again. When they hold no more than :data:`TIDY_ELEMENTS` elements (a
      local pod deleted is most often its number's only peer) the step removes them and
      frees the number at once: a few plain elements cost the kernel less than rewriting
      the number's rule to return, and a freed number's rule decides nothing, so it goes
      after the kernel (:meth:`split_later`);
    * when some of a number's peers move (a split), the fewer of movers and stayers take
      another number: one already jumping to their chain, else a free one a bit away from
      theirs (one element per peer), else a light one;
    * a step that finds no free number, or holds more than two numbers per chain plus
      :data:`SPARE_NUMBERS`, numbers the direction afresh as a whole compile does, as does a
      step that brings a peer map whole.

    So a whole compile and this translation agree on where every peer address jumps, not on
    its number: :func:`canonical` numbers a marked ruleset as a whole compile does, and
    :meth:`ruleset` is the whole ruleset the translated deltas built (what the kernel
    holds)."""

    def __init__(self, mark: IdentityMark) -> None:
        self.mark = mark
        self.entries: dict[Half, dict[Address, str]] = {h: {} for h in PEER_MAPS.values()}
        """The plain peer maps: each peer address's identity chain."""
        self.carried: dict[Half, dict[Address, int]] = {h: {} for h in PEER_MAPS.values()}
        """The number each address's bit-set elements spell (retired numbers included)."""
        self.carriers: dict[Direction, dict[int, set[Carrier]]] = {d: {} for d in DIRECTIONS}
        self.targets: dict[Direction, dict[int, str]] = {d: {} for d in DIRECTIONS}
        """The identity map: each live number's chain."""
        self.numbers_of: dict[Direction, dict[str, set[int]]] = {d: {} for d in DIRECTIONS}
        self.retired: dict[Direction, dict[int, None]] = {d: {} for d in DIRECTIONS}
        """Numbers whose peers all left, oldest first: no identity-map entry, elements still
        in the bit sets."""
        self.chains: dict[Direction, frozenset[str]] = {d: frozenset() for d in DIRECTIONS}
        self.present: set[Half] = set()
        self.buckets: dict[Direction, dict[Bucket, set[int]]] = {d: {} for d in DIRECTIONS}
        """The numbers held (live or retired) by where they sit in the tree without marks."""
        self.foreign: dict[Half, dict[str, Chain]] = {h: {} for h in PEER_MAPS.values()}
        """The chains of the tree without marks each present half holds."""
        self._was_carried: dict[Half, dict[Address, int]] = {}
        self._was_target: dict[Direction, dict[int, str | None]] = {}
        self._between: dict[str, tuple[Chain | None, Chain | None, Chain | None]] = {}
        """The tree chains the last translated step changes in two: each one before the step,
        between its two parts and after it (None: absent)."""
        self._emptied: dict[str, Chain] = {}
        """The identity chains the last translated step removes that the tree between its two
        parts still goes to for retired numbers: emptied by the first part."""
        self._comments: dict[str, str] = {}
        """Each identity chain's comment (an emptied chain keeps it, as the table does)."""
        self._translated: RulesetDelta | None = None
        """The delta the last step made, which :meth:`split_later` splits."""
        self._descents: dict[tuple[Half, int, int | None], Rule] = {}
        self._leaves: dict[tuple[Half, int, str | None], Rule] = {}
        self._bits: dict[tuple[Half, int], Lookup] = {}
        self._tree_names: dict[tuple[Half, tuple[int | None, ...]], str] = {}
        self._set_names: dict[Half, list[str]] = {}
        """Rules and names of the tree without marks, made once (a step that touches the tree
        rebuilds its buckets' chains and root from them)."""

    # rules -----------------------------------------------------------------------------

    def rules(self, rule: Rule) -> tuple[Rule, ...]:
        """A rule of the marked ruleset: a peer-map lookup becomes the two entries of the
        marked path and of the path without marks, each taken by what the bits hold on
        arrival."""
        statements = rule.statements
        if len(statements) == 1 and isinstance(statements[0], VmapLookup) and statements[0].map in PEER_MAPS:
            direction, family = PEER_MAPS[statements[0].map]
            return (
                Rule((MarkTest(self.mark.mask, zero=True), Jump(marked_chain_name(direction, family)))),
                Rule(
                    (MarkTest(self.mark.mask, zero=False), Jump(foreign_chain_name(direction, family))),
                    comment="identity mark bits set on arrival: peers found without marks",
                ),
            )
        return (rule,)

    def chain(self, chain: Chain) -> Chain:
        return replace(chain, rules=tuple(r for rule in chain.rules for r in self.rules(rule)))

    def marked_chain(self, half: Half) -> Chain:
        """The marked path: the peer's number set in the mark, one rule per bit, looked up in
        the identity map, cleared again (for a number with no entry, or when the identity
        chain returns)."""
        direction, family = half
        peer = _peer_key(half)
        return Chain(
            marked_chain_name(direction, family),
            (
                *(
                    Rule((Lookup((peer,), peer_bit_set_name(direction, family, p)), MarkSet(bits=1 << p)))
                    for p in self.mark.positions
                ),
                Rule((VmapLookup(Key.META_MARK, identity_map_name(direction, family), mask=self.mark.mask),)),
                Rule((self.mark.clear,)),
            ),
            comment="peers numbered in identity mark bits",
        )

    def entry_chain(self, identity_chain: str) -> Chain:
        """What the identity map jumps to: the bits cleared, then on to the identity chain, so
        that the identity chain leaves the mark alone and serves the path without marks too."""
        return Chain(
            marked_entry_chain_name(identity_chain),
            (Rule((self.mark.clear, Goto(identity_chain))),),
        )

    # the path without marks ---------------------------------------------------------------

    def foreign_chains(self, half: Half, numbers: Mapping[int, str | None]) -> dict[str, Chain]:
        """Every chain of the tree that finds a peer's identity chain without marks, for the
        carried ``numbers`` (None: retired). Why a tree: a packet that arrives with some of
        the bits set (another component uses them) must keep them, so its peer's number is
        read from the bit sets instead: one rule per number, and the rules of a number with
        more bits first, so the first whose bits all hold the address is its own. The tree's
        root picks the highest bit, its chains the second highest, so an event that brings
        or retires a number rewrites the few rules of its bucket, not one per number."""
        buckets: dict[Bucket, set[int]] = {}
        for number in numbers:
            buckets.setdefault(_bucket(number), set()).add(number)
        chains = {c.name: c for c in self._buckets_chains(half, buckets, numbers, buckets)}
        root = self._root(half, buckets)
        chains[root.name] = root
        return chains

    def _root(self, half: Half, buckets: Mapping[Bucket, AbstractSet[int]]) -> Chain:
        direction, family = half
        highs = sorted({high for high, _ in buckets}, reverse=True)
        return Chain(
            foreign_chain_name(direction, family),
            tuple(self._descend(half, high, None) for high in highs),
            comment="peers of packets that carry identity mark bits on arrival, found without marks",
        )

    def _buckets_chains(
        self,
        half: Half,
        buckets: Mapping[Bucket, AbstractSet[int]],
        targets: Mapping[int, str | None],
        touched: Iterable[Bucket],
    ) -> list[Chain]:
        """The bucket chains of ``touched`` buckets and the chains of their highest bits that
        hold anything, from the buckets' numbers and their ``targets`` (a number without one
        is retired)."""
        chains = []
        highs = set()
        for bucket in touched:
            highs.add(bucket[0])
            held = buckets.get(bucket)
            if held and bucket[1] is not None:
                leaves = tuple(self._leaf(half, n, targets.get(n)) for n in _in_order(held))
                chains.append(Chain(self._tree_name(half, *bucket), leaves))
        for high in highs:
            seconds = [second for second in range(high - 1, -1, -1) if buckets.get((high, second))]
            rules = [self._descend(half, high, second) for second in seconds]
            rules += [self._leaf(half, n, targets.get(n)) for n in buckets.get((high, None), ())]
            if rules:
                chains.append(Chain(self._tree_name(half, high), tuple(rules)))
        return chains

    def _descend(self, half: Half, high: int, second: int | None) -> Rule:
        """The rule that takes an address whose number's highest bit is ``high`` (and second
        highest ``second``; None: the root's rule) down the tree."""
        key = (half, high, second)
        rule = self._descents.get(key)
        if rule is None:
            bit = self._bit(half, high if second is None else second)
            rule = self._descents[key] = Rule((bit, Goto(self._tree_name(half, high, second))))
        return rule

    def _leaf(self, half: Half, number: int, chain: str | None) -> Rule:
        key = (half, number, chain)
        rule = self._leaves.get(key)
        if rule is None:
            if len(self._leaves) >= LEAF_CACHE:
                self._leaves.clear()
            high, second = _bucket(number)
            rest = [i for i in range(len(self.mark.positions)) if number >> i & 1 and i not in (high, second)]
            verdict: Statement = Goto(chain) if chain is not None else Verdict.RETURN
            rule = self._leaves[key] = Rule((*(self._bit(half, i) for i in sorted(rest, reverse=True)), verdict))
        return rule

    def _bit(self, half: Half, index: int) -> Lookup:
        key = (half, index)
        lookup = self._bits.get(key)
        if lookup is None:
            name = peer_bit_set_name(*half, self.mark.positions[index])
            lookup = self._bits[key] = Lookup((_peer_key(half),), name)
        return lookup

    def _tree_name(self, half: Half, *indexes: int | None) -> str:
        key = (half, indexes)
        name = self._tree_names.get(key)
        if name is None:
            positions = tuple(self.mark.positions[i] for i in indexes if i is not None)
            name = self._tree_names[key] = foreign_chain_name(*half, positions)
        return name

    def _bit_set_names(self, half: Half) -> list[str]:
        names = self._set_names.get(half)
        if names is None:
            names = self._set_names[half] = [peer_bit_set_name(*half, p) for p in self.mark.positions]
        return names

    # sets and maps ---------------------------------------------------------------------

    def bit_sets(self, half: Half, carried: Mapping[Address, int]) -> list[Set]:
        """The bit sets of ``half`` for addresses carrying the given numbers."""
        direction, family = half
        held: dict[int, list[Element]] = {p: [] for p in self.mark.positions}
        bits: dict[int, list[int]] = {}
        for ip, number in carried.items():
            element = (address_interval(ip),)  # type: ignore[arg-type]
            spread = bits.get(number)
            if spread is None:
                value = self.mark.value(number)
                spread = bits[number] = [p for p in self.mark.positions if value >> p & 1]
            for p in spread:
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

    def identity_map(self, half: Half, targets: Mapping[int, str]) -> VerdictMap:
        direction, family = half
        return VerdictMap(
            identity_map_name(direction, family),
            FieldType.MARK,
            tuple(sorted((self.mark.value(n), Jump(marked_entry_chain_name(c))) for n, c in targets.items())),
            comment=f"identity mark -> {direction.value.lower()} identity chain",
        )

    def ruleset(self, plain: Ruleset) -> Ruleset:
        """``plain``, the ruleset of the last translated step in the jumping layout, as the
        translated deltas built it: this object's numbers, retired ones included."""
        sets = [*plain.sets]
        maps = [m for m in plain.maps if m.name not in PEER_MAPS]
        chains = [self.chain(c) for c in plain.chains]
        chains += [self.entry_chain(c.name) for c in plain.chains if _direction_of_chain(c.name) is not None]
        for half in PEER_MAPS.values():
            if half not in self.present:
                continue
            sets += self.bit_sets(half, self.carried[half])
            maps.append(self.identity_map(half, self.targets[half[0]]))
            chains += [self.marked_chain(half), *self.foreign[half].values()]
        return replace(
            plain,
            sets=tuple(sorted(sets, key=lambda s: s.name)),
            maps=tuple(sorted(maps, key=lambda m: m.name)),
            chains=_chain_order(chains),
        )

    # state -----------------------------------------------------------------------------

    def _carry(self, half: Half, ip: Address, number: int | None) -> None:
        direction, family = half
        carried = self.carried[half]
        old = carried.get(ip)
        self._was_carried.setdefault(half, {}).setdefault(ip, old or 0)
        if old == number:
            return
        carriers = self.carriers[direction]
        if old is not None:
            held = carriers[old]
            held.discard((family, ip))
            if not held:
                del carriers[old]
                if old in self.targets[direction]:
                    self._target(direction, old, None)
                else:
                    del self.retired[direction][old]
                    self._was_target.setdefault(direction, {}).setdefault(old, None)
        if number is None:
            del carried[ip]
        else:
            carried[ip] = number
            carriers.setdefault(number, set()).add((family, ip))

    def _target(self, direction: Direction, number: int, chain: str | None) -> None:
        targets, numbers_of = self.targets[direction], self.numbers_of[direction]
        old = targets.get(number)
        self._was_target.setdefault(direction, {}).setdefault(number, old)
        if old is not None:
            numbers = numbers_of[old]
            numbers.discard(number)
            if not numbers:
                del numbers_of[old]
            del targets[number]
        if chain is not None:
            targets[number] = chain
            numbers_of.setdefault(chain, set()).add(number)

    def _retire(self, direction: Direction, number: int) -> None:
        self._target(direction, number, None)
        self.retired[direction][number] = None

    def _taken(self, direction: Direction, number: int) -> bool:
        return number in self.targets[direction] or number in self.retired[direction]

    def _fresh(self, direction: Direction, chain: str, near: int) -> int:
        """A free number for ``chain``'s new group: one bit from ``near`` (the number its
        peers carry now; clearing a bit first), else the light number at the chain name's
        hash or the next free one."""
        capacity, bits = self.mark.capacity, len(self.mark.positions)
        if len(self.targets[direction]) + len(self.retired[direction]) >= capacity:
            raise _Exhausted
        if near:
            for i in sorted(range(bits), key=lambda i: (not near >> i & 1, i)):
                number = near ^ 1 << i
                if number and not self._taken(direction, number):
                    return number
        index = _hash(chain) % _light_count(bits)
        while self._taken(direction, number := number_at(bits, index)):
            index = (index + 1) % capacity
        return number

    def _join(self, direction: Direction, chain: str, near: int) -> int:
        """The number an address carrying ``near`` takes to reach ``chain``: one of the
        chain's, fewest bits from ``near`` first, else a new one."""
        numbers = self.numbers_of[direction].get(chain)
        if numbers:
            return min(numbers, key=lambda n: ((n ^ near).bit_count(), n))
        number = self._fresh(direction, chain, near)
        self._target(direction, number, chain)
        return number

    def _move(self, direction: Direction, carrier: Carrier, chain: str | None) -> None:
        family, ip = carrier
        half = (direction, family)
        if chain is None:
            self._carry(half, ip, None)
        else:
            self._carry(half, ip, self._join(direction, chain, self.carried[half].get(ip, 0)))

    # one step --------------------------------------------------------------------------

    def _follow(self, direction: Direction, moved: Mapping[Carrier, str | None]) -> None:
        """Numbers for the addresses whose chain changed (None: left the peer maps)."""
        groups: dict[int, list[tuple[Carrier, str | None]]] = {}
        newcomers: list[tuple[Carrier, str]] = []
        targets = self.targets[direction]
        for carrier, chain in moved.items():
            number = self.carried[(direction, carrier[0])].get(carrier[1])
            if number is not None and number in targets:
                groups.setdefault(number, []).append((carrier, chain))
            elif chain is not None:
                newcomers.append((carrier, chain))
        for number, moves in groups.items():
            carriers = self.carriers[direction][number]
            staying = len(carriers) - len(moves)
            going: dict[str | None, int] = {}
            for _, chain in moves:
                going[chain] = going.get(chain, 0) + 1
            cost, chain_kept, regroup = len(moves), None, False
            for chain, count in going.items():
                if staying + len(moves) - count < cost:
                    cost, chain_kept, regroup = staying + len(moves) - count, chain, True
            if not regroup:
                for carrier, chain in moves:
                    self._move(direction, carrier, chain)
                continue
            few = len(moves) * number.bit_count() <= TIDY_ELEMENTS
            if chain_kept is None and not staying and len(going) == 1 and few:
                for carrier, _ in moves:
                    self._move(direction, carrier, None)
                continue
            old_chain = targets[number]
            stayers = [c for c in carriers if c not in moved] if staying else []
            if chain_kept is None:
                self._retire(direction, number)
            else:
                self._target(direction, number, chain_kept)
            for carrier in stayers:
                self._move(direction, carrier, old_chain)
            for carrier, chain in moves:
                if chain != chain_kept:
                    self._move(direction, carrier, chain)
        for carrier, chain in newcomers:
            self._move(direction, carrier, chain)

    def _followed(self, direction: Direction, moved: Mapping[Carrier, str | None]) -> bool:
        """:meth:`_follow`, False when the direction must be numbered afresh instead: no
        number was free, or more are held than two per chain and :data:`SPARE_NUMBERS`."""
        try:
            self._follow(direction, moved)
        except _Exhausted:
            return False
        held = len(self.targets[direction]) + len(self.retired[direction])
        return held <= 2 * len(self.chains[direction]) + SPARE_NUMBERS

    def _number_afresh(self, direction: Direction, halves: AbstractSet[Half]) -> None:
        """Numbers every chain of ``direction`` as a whole compile does; ``halves`` are sent
        whole, so their old elements need no diff."""
        sizes = dict.fromkeys(self.chains[direction], 0)
        own = [h for h in PEER_MAPS.values() if h[0] is direction]
        for half in own:
            for chain in self.entries[half].values():
                sizes[chain] += 1
        numbers = numbering(sizes, self.mark)
        was_target = self._was_target.setdefault(direction, {})
        for number, chain in self.targets[direction].items():
            was_target.setdefault(number, chain)
        for number in self.retired[direction]:
            was_target.setdefault(number, None)
        for number in numbers.values():
            was_target.setdefault(number, None)
        self.targets[direction] = {n: c for c, n in numbers.items()}
        self.numbers_of[direction] = {c: {n} for c, n in numbers.items()}
        self.retired[direction] = {}
        carriers: dict[int, set[Carrier]] = {}
        for half in own:
            carried, entries = self.carried[half], self.entries[half]
            if half not in halves:
                was = self._was_carried.setdefault(half, {})
                for ip, number in carried.items():
                    was.setdefault(ip, number)
                for ip in entries:
                    was.setdefault(ip, 0)
            self.carried[half] = {ip: numbers[chain] for ip, chain in entries.items()}
            for ip, chain in entries.items():
                carriers.setdefault(numbers[chain], set()).add((half[1], ip))
        self.carriers[direction] = carriers

    def _tidy(self, direction: Direction) -> None:
        """Removes the elements of numbers retired by earlier steps, oldest first, while this
        step's element changes stay within :data:`TIDY_ELEMENTS`."""
        retired = self.retired[direction]
        if not retired:
            return
        just_retired = self._was_target.get(direction, {})
        budget = TIDY_ELEMENTS
        for half, was in self._was_carried.items():
            if half[0] is direction:
                carried = self.carried[half]
                budget -= sum((number ^ carried.get(ip, 0)).bit_count() for ip, number in was.items())
        for number in [n for n in retired if just_retired.get(n) is None]:
            for family, ip in list(self.carriers[direction][number]):
                if budget <= 0:
                    return
                budget -= number.bit_count()
                self._carry((direction, family), ip, None)

    def _touched_chains(
        self, half: Half, buckets: Mapping[Bucket, AbstractSet[int]], targets: Mapping[int, str | None],
        touched: AbstractSet[Bucket],
    ) -> dict[str, Chain]:
        """The root and the chains of the ``touched`` buckets, for ``buckets`` and ``targets``."""
        fresh = {c.name: c for c in self._buckets_chains(half, buckets, targets, touched)}
        root = self._root(half, buckets)
        fresh[root.name] = root
        return fresh

    def _tree_changes(
        self, half: Half, touched: AbstractSet[Bucket], kept: Mapping[int, str | None]
    ) -> tuple[list[Chain], list[str]]:
        """The chains of the tree without marks that the ``touched`` buckets change, and those
        they empty; the rest of the tree is as it was. ``kept``: the numbers whose rules the
        tree between the step's two parts keeps as they were, each with the chain its rule
        went to (None: it returned) (:meth:`split_later`)."""
        direction = half[0]
        buckets = self.buckets[direction]
        fresh = self._touched_chains(half, buckets, self.targets[direction], touched)
        between = fresh
        if kept:
            holding: dict[Bucket, set[int]] = {b: set(n) for b, n in buckets.items()}
            for number in kept:
                holding.setdefault(_bucket(number), set()).add(number)
            between = self._touched_chains(half, holding, {**self.targets[direction], **kept}, touched)
        names = {self._tree_name(half)}
        for high, second in touched:
            names.add(self._tree_name(half, high))
            if second is not None:
                names.add(self._tree_name(half, high, second))
        cached = self.foreign[half]
        changed, gone = [], []
        for name in sorted(names):
            chain, before = fresh.get(name), cached.get(name)
            if between.get(name) != chain:
                self._between[name] = (before, between.get(name), chain)
            if chain is None:
                if cached.pop(name, None) is not None:
                    gone.append(name)
            elif before != chain:
                cached[name] = chain
                changed.append(chain)
        return changed, gone

    def split_later(self, delta: RulesetDelta) -> tuple[RulesetDelta, RulesetDelta]:
        """The last translated ``delta`` (any other is not split) as the part that decides
        packets and the tree changes that decide none once that part is in force. Two kinds
        of rules stay in the tree between the two parts as they were, and the second part
        takes them out:

        * those of the numbers the step freed: no address carries them, and such a rule
          decides nothing, since the leaves of a bucket test more bits first, so an address
          meets its own number's rule before any whose bits its own include, and a rule
          whose bits its own does not include does not match it;
        * those of the numbers the step retired whose identity chain it removes: the first
          part empties that chain instead (its removal follows in the second), and a ``goto``
          to an empty chain returns, as a retired number's rule does.

        Why: without the split, a local pod deleted rewrites on the way to the kernel the
        buckets of the numbers it frees or retires (the slowest pod deletes of the 10k bench
        rewrite 4-6 tree chains), and every rule that goes to a chain makes the kernel walk
        the table's chain graph again; an emptied chain or a plain element does not."""
        if delta is not self._translated or not (self._between or self._emptied):
            return delta, RulesetDelta()
        now: list[Chain] = [*(c for c in delta.chains if c.name not in self._between), *self._emptied.values()]
        now_removed = [n for n in delta.removed_chains if n not in self._between and n not in self._emptied]
        later: list[Chain] = []
        later_removed: list[str] = list(self._emptied)
        for name, (before, between, after) in self._between.items():
            for chain, was, sent, gone in ((between, before, now, now_removed), (after, between, later, later_removed)):
                if chain is None and was is not None:
                    gone.append(name)
                elif chain is not None and chain != was:
                    sent.append(chain)
        return (
            replace(delta, chains=_chain_order(now), removed_chains=tuple(sorted(now_removed))),
            RulesetDelta(chains=_chain_order(later), removed_chains=tuple(sorted(later_removed))),
        )

    def translate(self, delta: RulesetDelta) -> RulesetDelta:
        """The marked layout's delta for ``delta`` of the plain layout."""
        chains: dict[Direction, AbstractSet[str]] = dict(self.chains)
        left_chains: list[str] = []
        new_chains: list[Chain] = []
        removed_chains = list(delta.removed_chains)
        for d in DIRECTIONS:
            added = {c.name for c in delta.chains if c.name.startswith(peer_chain_prefix(d))}
            left = {n for n in delta.removed_chains if n.startswith(peer_chain_prefix(d))}
            self._comments.update((c.name, c.comment) for c in delta.chains if c.name in added)
            left_chains += left
            if added - chains[d] or left & chains[d]:
                new_chains += [self.entry_chain(n) for n in sorted(added - chains[d])]
                removed_chains += [marked_entry_chain_name(n) for n in sorted(left & chains[d])]
                chains[d] = (chains[d] | added) - left
        self.chains = {d: frozenset(chains[d]) for d in DIRECTIONS}
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

        self._was_carried, self._was_target = {}, {}
        moved: dict[Direction, dict[Carrier, str | None]] = {d: {} for d in DIRECTIONS}
        for half in PEER_MAPS.values():
            direction, family = half
            entries = self.entries[half]
            if half in whole or half in gone:
                entries.clear()
                for ip, target in whole[half].elements if half in whole else ():
                    entries[ip] = target.target
                for ip in list(self.carried[half]):
                    self._carry(half, ip, None)
                continue
            old_of: dict[Address, str | None] = {}
            for ip, target in removed_entries.get(half, ()):
                if entries.get(ip) == target.target:
                    old_of.setdefault(ip, target.target)
                    del entries[ip]
            for ip, target in added_entries.get(half, ()):
                old_of.setdefault(ip, entries.get(ip))
                entries[ip] = target.target
            for ip, old in old_of.items():
                if entries.get(ip) != old:
                    moved[direction][(family, ip)] = entries.get(ip)
        for d in DIRECTIONS:
            afresh = {h for h in whole if h[0] is d}
            if not afresh and self._followed(d, moved[d]):
                self._tidy(d)
            else:
                self._number_afresh(d, afresh)
        touched: dict[Direction, set[Bucket]] = {}
        kept: dict[Direction, dict[int, str | None]] = {d: {} for d in DIRECTIONS}
        self._between, self._emptied = {}, {}
        for d in DIRECTIONS:
            buckets = self.buckets[d]
            for number, before_chain in self._was_target.get(d, {}).items():
                bucket = _bucket(number)
                touched.setdefault(d, set()).add(bucket)
                if not self._taken(d, number) and number in buckets.get(bucket, ()):
                    kept[d][number] = before_chain
                elif number in self.retired[d] and before_chain is not None and before_chain not in self.chains[d]:
                    kept[d][number] = before_chain
                    self._emptied[before_chain] = Chain(before_chain, (), comment=self._comments.get(before_chain, ""))
                if self._taken(d, number):
                    buckets.setdefault(bucket, set()).add(number)
                elif bucket in buckets:
                    buckets[bucket].discard(number)
                    if not buckets[bucket]:
                        del buckets[bucket]
        for name in left_chains:
            self._comments.pop(name, None)

        for half in PEER_MAPS.values():
            direction, family = half
            was, now = half in self.present, half in whole or (half in self.present and half not in gone)
            names = self._bit_set_names(half)
            if now and (not was or half in whole):
                sets += self.bit_sets(half, self.carried[half])
                maps.append(self.identity_map(half, self.targets[direction]))
                held = {**dict.fromkeys(self.retired[direction]), **self.targets[direction]}
                foreign = self.foreign_chains(half, held)
                new_chains += [self.marked_chain(half), *foreign.values()]
                removed_chains += [n for n in self.foreign[half] if n not in foreign]
                self.foreign[half] = foreign
            elif was and not now:
                removed += [*names, identity_map_name(direction, family)]
                removed_chains += [marked_chain_name(direction, family), *self.foreign[half]]
                self.foreign[half] = {}
            elif now:
                if direction in touched:
                    changed, gone_chains = self._tree_changes(half, touched[direction], kept[direction])
                    new_chains += changed
                    removed_chains += gone_chains
                carried = self.carried[half]
                for ip, before in self._was_carried.get(half, {}).items():
                    had, has = self.mark.value(before), self.mark.value(carried.get(ip, 0))
                    if had == has:
                        continue
                    element = (address_interval(ip),)  # type: ignore[arg-type]
                    for p, name in zip(self.mark.positions, names):
                        if (had ^ has) >> p & 1:
                            changes = added_elements if has >> p & 1 else removed_elements
                            changes.setdefault(name, []).append(element)
                name = identity_map_name(direction, family)
                targets = self.targets[direction]
                for number, before_chain in self._was_target.get(direction, {}).items():
                    after = targets.get(number)
                    if after == before_chain:
                        continue
                    value = self.mark.value(number)
                    if before_chain is not None:
                        removed_map.setdefault(name, []).append((value, Jump(marked_entry_chain_name(before_chain))))
                    if after is not None:
                        added_map.setdefault(name, []).append((value, Jump(marked_entry_chain_name(after))))
            if now:
                self.present.add(half)
            else:
                self.present.discard(half)
        self._was_carried, self._was_target = {}, {}
        self._translated = RulesetDelta(
            sets=tuple(sorted(sets, key=lambda s: s.name)),
            maps=tuple(sorted(maps, key=lambda m: m.name)),
            removed=tuple(sorted(removed)),
            added_elements=tuple((n, tuple(sorted(e))) for n, e in sorted(added_elements.items()) if e),
            removed_elements=tuple((n, tuple(sorted(e))) for n, e in sorted(removed_elements.items()) if e),
            added_entries=tuple((n, tuple(sorted(e, key=lambda x: x[0]))) for n, e in sorted(added_map.items()) if e),
            removed_entries=tuple(
                (n, tuple(sorted(e, key=lambda x: x[0]))) for n, e in sorted(removed_map.items()) if e
            ),
            chains=_chain_order([*(self.chain(c) for c in delta.chains), *new_chains]),
            removed_chains=tuple(sorted(removed_chains)),
            set_comments=tuple((n, c) for n, c in delta.set_comments if n not in PEER_MAPS),
        )
        return self._translated


def canonical(ruleset: Ruleset, mark: IdentityMark) -> Ruleset:
    """``ruleset``, in the marked layout, with its peers numbered as a whole compile numbers
    them (:func:`numbering`): where each peer address jumps is read back (its bits, then the
    identity map; addresses of retired numbers jump nowhere, as absent ones), so an
    incremental compiler's ruleset and a whole compile are equal after this exactly when
    every peer reaches the same chain."""
    sets = {s.name: s for s in ruleset.sets}
    maps = {m.name: m for m in ruleset.maps}
    carried: dict[Half, dict[Address, int]] = {}
    targets: dict[Direction, dict[int, str]] = {}
    for direction in DIRECTIONS:
        halves = [h for h in PEER_MAPS.values() if h[0] is direction and identity_map_name(*h) in maps]
        entries: dict[Half, dict[Address, str]] = {}
        sizes = dict.fromkeys((c.name for c in ruleset.chains if c.name.startswith(peer_chain_prefix(direction))), 0)
        for half in halves:
            identities = maps[identity_map_name(*half)].elements
            jumps = {value: identity_chain_of_entry(target.target) for value, target in identities}
            values: dict[Address, int] = {}
            for p in mark.positions:
                for (interval,) in sets[peer_bit_set_name(*half, p)].elements:
                    values[interval.low] = values.get(interval.low, 0) | 1 << p
            entries[half] = {ip: jumps[v] for ip, v in values.items() if v in jumps}
            for chain in entries[half].values():
                sizes[chain] += 1
        numbers = numbering(sizes, mark)
        for half in halves:
            carried[half] = {ip: numbers[c] for ip, c in entries[half].items()}
        targets[direction] = {n: c for c, n in numbers.items()}
    return numbered_as(ruleset, mark, carried, targets)


def numbered_as(
    ruleset: Ruleset,
    mark: IdentityMark,
    carried: Mapping[Half, Mapping[Address, int]],
    targets: Mapping[Direction, Mapping[int, str]],
) -> Ruleset:
    """``ruleset``, in the marked layout, with the peers of each half in ``carried`` numbered
    as given and those numbers going to ``targets`` (a carried number without one is
    retired): its bit sets, identity maps and trees without marks rebuilt from them, the
    rest as it is. What a table whose numbers were read from it (the kernel's, an agent's)
    must equal; which chain each address reaches is for the caller to compare."""
    marker = MarkedPeers(mark)
    sets = {s.name: s for s in ruleset.sets}
    maps = {m.name: m for m in ruleset.maps}
    replaced_sets: dict[str, Set] = {}
    replaced_maps: dict[str, VerdictMap] = {}
    foreign: dict[str, Chain] = {}
    for half in PEER_MAPS.values():
        if identity_map_name(*half) not in maps:
            continue
        direction = half[0]
        for bit_set in marker.bit_sets(half, carried.get(half, {})):
            if bit_set.name in sets:
                replaced_sets[bit_set.name] = bit_set
        identity = marker.identity_map(half, targets.get(direction, {}))
        replaced_maps[identity.name] = identity
        held: dict[int, str | None] = {
            n: None for h, numbers in carried.items() if h[0] is direction for n in numbers.values()}
        held.update(targets.get(direction, {}))
        foreign.update(marker.foreign_chains(half, held))
    kept = [c for c in ruleset.chains if not c.name.startswith(FOREIGN_PREFIXES)]
    return replace(
        ruleset,
        sets=tuple(replaced_sets.get(s.name, s) for s in ruleset.sets),
        maps=tuple(replaced_maps.get(m.name, m) for m in ruleset.maps),
        chains=_chain_order([*kept, *foreign.values()]),
    )


def marked(ruleset: Ruleset, mark: IdentityMark) -> Ruleset:
    """``ruleset`` in the marked layout (the same rewriting as a first step's delta)."""
    empty = empty_ruleset(ruleset.table, ruleset.node, ruleset.mode)
    return patch(empty, MarkedPeers(mark).translate(diff(empty, ruleset)))
