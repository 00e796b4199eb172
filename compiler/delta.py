"""The change from one compiled ruleset of a node to the next, as data.

An event (a pod added, relabelled or deleted, a policy added) changes a few elements of a
node's ruleset, never most of it. Shipping the whole ruleset per event makes every stage after
the compiler (rendering, parsing, diffing) cost as much as the table is large; a
:class:`RulesetDelta` lets each stage cost as much as the change is large. The enforcer turns
it into one transaction (``Enforcer.apply_delta``).

Law (held by property tests): for consecutive rulesets ``old`` and ``new`` of one node,
``patch(old, delta) == new``, where ``delta`` is what the incremental compiler reports for
that step. Whole objects that are new or re-created are carried whole; kept sets and maps
carry only their elements that came or went.

Invariants:

* A name is in at most one of ``sets``/``maps`` (new or re-created whole) and ``removed``;
  a re-created set or map (its type or ``interval`` flag changed) appears in ``sets``/``maps``
  only, and every chain that looks it up is in ``chains``, since re-creating it means
  re-adding the rules that refer to it.
* ``added_elements``/``removed_elements`` and ``added_entries``/``removed_entries`` name only
  sets and maps kept from ``old`` (not re-created); a map entry whose target changed is in
  both (the old entry removed, the new one added). Element tuples are sorted.
* ``chains`` holds chains that are new or whose rules or comment changed, whole; a base
  chain's hook never changes.
* ``set_comments`` carries new comments of kept sets and maps (comments exist only in the text
  rendering; the kernel never sees them, so the enforcer may ignore them).
* The table, node and mode of a ruleset never change between two steps of one compiler.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

from .ruleset import Chain, Element, Jump, Lookup, Mode, Ruleset, Set, VerdictMap, VmapLookup, entry_order
from policyctl.policy.model import IPAddress

MapEntry = tuple[IPAddress, Jump]
MarkEntry = tuple[IPAddress | int, Jump]
"""An entry of any verdict map: an address, or a mark value (``markedpeers``)."""
SetElements = tuple[tuple[str, tuple[Element, ...]], ...]
MapEntries = tuple[tuple[str, tuple[MarkEntry, ...]], ...]


@dataclass(frozen=True, slots=True)
class RulesetDelta:
    """What turns one ruleset of a node into the next (see the module docstring)."""

    sets: tuple[Set, ...] = ()
    maps: tuple[VerdictMap, ...] = ()
    removed: tuple[str, ...] = ()
    added_elements: SetElements = ()
    removed_elements: SetElements = ()
    added_entries: MapEntries = ()
    removed_entries: MapEntries = ()
    chains: tuple[Chain, ...] = ()
    removed_chains: tuple[str, ...] = ()
    set_comments: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not (
            self.sets or self.maps or self.removed or self.added_elements or self.removed_elements
            or self.added_entries or self.removed_entries or self.chains or self.removed_chains
            or self.set_comments
        )


def _sorted_union(kept: Iterable[Element], added: Iterable[Element]) -> tuple[Element, ...]:
    return tuple(sorted(set(kept) | set(added)))


def patch(old: Ruleset, delta: RulesetDelta) -> Ruleset:
    """``old`` with ``delta`` applied: the reference meaning of a delta, for tests and for
    anyone who holds a whole ruleset. Costs as much as ``old`` is large."""
    added = dict(delta.added_elements)
    removed = {name: set(elements) for name, elements in delta.removed_elements}
    comments = dict(delta.set_comments)
    gone = set(delta.removed) | {s.name for s in delta.sets} | {m.name for m in delta.maps}
    sets: list[Set] = list(delta.sets)
    for s in old.sets:
        if s.name in gone:
            continue
        elements = _sorted_union((e for e in s.elements if e not in removed.get(s.name, ())), added.get(s.name, ()))
        sets.append(replace(s, elements=elements, comment=comments.get(s.name, s.comment)))
    entries_added = dict(delta.added_entries)
    entries_removed = {name: set(entries) for name, entries in delta.removed_entries}
    maps: list[VerdictMap] = list(delta.maps)
    for m in old.maps:
        if m.name in gone:
            continue
        kept = [e for e in m.elements if e not in entries_removed.get(m.name, ())]
        entries = tuple(sorted(set(kept) | set(entries_added.get(m.name, ())), key=entry_order))
        maps.append(replace(m, elements=entries, comment=comments.get(m.name, m.comment)))
    new_chains = {c.name: c for c in delta.chains}
    dropped = set(delta.removed_chains)
    base = [new_chains.pop(c.name, c) for c in old.chains if c.is_base and c.name not in dropped]
    regular = [new_chains.pop(c.name, c) for c in old.chains if not c.is_base and c.name not in dropped]
    base += [c for c in new_chains.values() if c.is_base]
    regular += [c for c in new_chains.values() if not c.is_base]
    return replace(
        old,
        sets=tuple(sorted(sets, key=lambda s: s.name)),
        maps=tuple(sorted(maps, key=lambda m: m.name)),
        chains=tuple(base) + tuple(sorted(regular, key=lambda c: c.name)),
    )


def empty_ruleset(table: str, node: str, mode: Mode) -> Ruleset:
    """The ruleset before a compiler's first step: a delta from it carries everything whole."""
    return Ruleset(table=table, node=node, mode=mode, sets=(), maps=(), chains=())


def _references(chain: Chain) -> set[str]:
    found: set[str] = set()
    for rule in chain.rules:
        for statement in rule.statements:
            if isinstance(statement, Lookup):
                found.add(statement.set)
            elif isinstance(statement, VmapLookup):
                found.add(statement.map)
    return found


def diff(old: Ruleset, new: Ruleset) -> RulesetDelta:
    """The delta from ``old`` to ``new`` by comparing them whole (costs as much as both are
    large): the reference an incremental compiler is tested against, and what it falls back
    to for changes too broad to follow one by one."""
    old_sets = {s.name: s for s in old.sets}
    new_sets = {s.name: s for s in new.sets}
    old_maps = {m.name: m for m in old.maps}
    new_maps = {m.name: m for m in new.maps}
    whole_sets = [
        s for name, s in new_sets.items()
        if name not in old_sets or (old_sets[name].types, old_sets[name].interval) != (s.types, s.interval)
    ]
    whole_maps = [m for name, m in new_maps.items() if name not in old_maps or old_maps[name].key != m.key]
    recreated = {s.name for s in whole_sets if s.name in old_sets} | {m.name for m in whole_maps if m.name in old_maps}
    removed = sorted((set(old_sets) - set(new_sets)) | (set(old_maps) - set(new_maps)))
    added_elements, removed_elements, comments = [], [], []
    for name in sorted(set(old_sets) & set(new_sets) - recreated):
        before, after = set(old_sets[name].elements), set(new_sets[name].elements)
        if after - before:
            added_elements.append((name, tuple(sorted(after - before))))
        if before - after:
            removed_elements.append((name, tuple(sorted(before - after))))
        if old_sets[name].comment != new_sets[name].comment:
            comments.append((name, new_sets[name].comment))
    added_entries, removed_entries = [], []
    for name in sorted(set(old_maps) & set(new_maps) - recreated):
        entries_before, entries_after = set(old_maps[name].elements), set(new_maps[name].elements)
        if entries_after - entries_before:
            added_entries.append((name, tuple(sorted(entries_after - entries_before, key=entry_order))))
        if entries_before - entries_after:
            removed_entries.append((name, tuple(sorted(entries_before - entries_after, key=entry_order))))
        if old_maps[name].comment != new_maps[name].comment:
            comments.append((name, new_maps[name].comment))
    old_chains = {c.name: c for c in old.chains}
    chains = [c for c in new.chains if old_chains.get(c.name) != c or _references(c) & recreated]
    new_names = {c.name for c in new.chains}
    return RulesetDelta(
        sets=tuple(sorted(whole_sets, key=lambda s: s.name)),
        maps=tuple(sorted(whole_maps, key=lambda m: m.name)),
        removed=tuple(removed),
        added_elements=tuple(added_elements),
        removed_elements=tuple(removed_elements),
        added_entries=tuple(added_entries),
        removed_entries=tuple(removed_entries),
        chains=tuple(chains),
        removed_chains=tuple(sorted(n for n in old_chains if n not in new_names)),
        set_comments=tuple(sorted(comments)),
    )


def merge(first: RulesetDelta, second: RulesetDelta) -> RulesetDelta:
    """One delta doing both of two that touch disjoint sets, maps and chains (each keeps its
    own names), fields sorted by name as :func:`diff` sorts them."""
    return RulesetDelta(
        *(tuple(sorted(getattr(first, f.name) + getattr(second, f.name), key=_name)) for f in fields(RulesetDelta))
    )


def _name(item: Any) -> str:
    """The name an item of a delta's field is sorted by: a name, a ``(name, ...)`` pair, an object's."""
    if isinstance(item, str):
        return item
    return str(item[0]) if isinstance(item, tuple) else str(item.name)
