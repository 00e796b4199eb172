"""From what the kernel holds to what the compiler wants: one transaction of libnftables JSON
commands, and nothing when they already agree.

Pure: two :class:`TableState` values in, a :class:`Transaction` out. The kernel commits a
transaction whole or not at all, so the order of commands only has to make every command
valid at its point in the batch:

1. ``flush chain`` for every chain whose rules change, that goes away, or whose rules refer to
   a set or chain that goes away or is re-created (its references are then gone);
2. ``delete element`` for elements that left a kept set or map (a map element whose value
   changed is deleted and added again), spelled as ``current`` holds them: as the kernel
   listed them, or as the enforcer wrote them when it diffs against its last commit (the
   kernel accepts both spellings of the same interval);
3. ``delete set``/``map`` that are gone or whose type/flags changed;
4. ``delete chain`` that are gone or whose hook changed (now empty and unreferenced);
5. ``add chain`` (new, re-created, or a base chain whose policy changed: an update);
6. ``add set``/``map`` with their elements (verdict maps may jump to chains added in 5);
7. ``add element`` for elements new to a kept set or map;
8. ``add rule`` for every flushed or new chain, in the desired order.

The first apply creates the table with ``create table``, which fails instead of merging if a
table of that name appeared meanwhile. Re-applying what is there yields no commands. Flushed
chains lose their rule counters; set elements and untouched chains keep theirs.

:func:`plan_delta` builds the same transaction from a compiler's
:class:`~policyctl.compiler.delta.RulesetDelta` instead of a whole desired table, in time
proportional to the delta: it reads only the objects the delta carries whole, computes keys
only for the elements that come or go, and returns the patched state beside the transaction.
It trusts the delta's own invariants for what it does not carry: every kept chain that refers
to a set or chain going away or re-created is in the delta (its rules change, or a re-created
set's referrers are carried whole). A delta that breaks them makes the kernel refuse the
``delete`` of a set or chain still in use, which changes nothing.
:func:`plan_delta_renames_later` leaves the chains whose rules change only in their comments
to a transaction of their own (:func:`plan_renames`), sent after the one that decides packets;
:func:`plan_later` sends them together with the rest of a step that decides no packet.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from policyctl.compiler.delta import MapEntries, RulesetDelta, SetElements
from policyctl.compiler.render_json import render_delta
from policyctl.compiler.ruleset import FieldType
from policyctl.enforcer.elements import ElementKey, entry_keys, key_order, typed_element_key
from policyctl.enforcer.givingway import give_way_if
from policyctl.enforcer.patches import patched
from policyctl.enforcer.tables import ChainState, SetState, TableState, differs_only_in_comments, read_table


class DeltaMismatch(Exception):
    """A delta that does not fit the state it is planned against: it names a set, chain or
    element that state lacks, removes a map element whose target differs, adds an element it
    already holds, or contradicts itself. The state is then not the one the delta was
    computed from, and only a full apply can be trusted."""


@dataclass(frozen=True, slots=True)
class Transaction:
    """The commands of one atomic change and what they amount to. Element counts include the
    elements of sets created, re-created or deleted as a whole."""

    commands: tuple[Mapping[str, Any], ...] = ()
    created_table: bool = False
    elements_added: int = 0
    elements_removed: int = 0
    chains_added: tuple[str, ...] = ()
    chains_replaced: tuple[str, ...] = ()
    chains_deleted: tuple[str, ...] = ()
    sets_added: tuple[str, ...] = ()
    sets_recreated: tuple[str, ...] = ()
    sets_deleted: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.commands

    def payload(self) -> dict[str, Any]:
        return {"nftables": [dict(c) for c in self.commands]}

    @property
    def transaction_id(self) -> str:
        """A digest of the commands: the same change always has the same id, so logs and
        errors can be matched to the transaction that was sent. Keys are sorted, so equal
        commands give one id whatever order their keys were written in."""
        text = _ID_ENCODER.encode(self.commands)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


#: The commands are a tree of fresh dicts and lists, never cyclic: no cycle check, no spaces.
_ID_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), check_circular=False)


def _sorted_elements(elements: Mapping[ElementKey, Any], keys: Iterable[ElementKey]) -> list[Any]:
    """Elements in the order of their keys: one order whoever computed the keys."""
    return [elements[k] for k in key_order(keys)]


class _Builder:
    def __init__(self, family: str, table: str) -> None:
        self.base = {"family": family, "table": table}
        self.commands: list[dict[str, Any]] = []

    def chain(self, verb: str, chain: ChainState | str, *, spec: bool = False) -> None:
        name = chain if isinstance(chain, str) else chain.name
        obj: dict[str, Any] = {**self.base, "name": name}
        if spec and isinstance(chain, ChainState):
            obj.update(chain.spec)
        self.commands.append({verb: {"chain": obj}})

    def set(self, verb: str, state: SetState, *, with_elements: bool = False) -> None:
        obj: dict[str, Any] = {**self.base, "name": state.name}
        if verb == "add":
            obj.update(state.spec)
            if with_elements and state.elements:
                obj["elem"] = _sorted_elements(state.elements, state.elements)
        self.commands.append({verb: {state.kind: obj}})

    def elements(self, verb: str, state: SetState, keys: Iterable[ElementKey]) -> int:
        chosen = _sorted_elements(state.elements, keys)
        if chosen:
            self.commands.append({verb: {"element": {**self.base, "name": state.name, "elem": chosen}}})
        return len(chosen)

    def rules(self, chain: ChainState) -> None:
        for rule in chain.rules:
            self.commands.append({"add": {"rule": {**self.base, "chain": chain.name, **rule.body}}})


def create(desired: TableState) -> Transaction:
    """The transaction that creates the whole table from nothing."""
    build = _Builder(desired.family, desired.name)
    build.commands.append({"create": {"table": {"family": desired.family, "name": desired.name}}})
    for name in sorted(desired.chains):
        build.chain("add", desired.chains[name], spec=True)
    for name in sorted(desired.sets):
        build.set("add", desired.sets[name], with_elements=True)
    for name in sorted(desired.chains):
        build.rules(desired.chains[name])
    return Transaction(
        commands=tuple(build.commands),
        created_table=True,
        elements_added=sum(len(s.elements) for s in desired.sets.values()),
        chains_added=tuple(sorted(desired.chains)),
        sets_added=tuple(sorted(desired.sets)),
    )


def plan(
    current: TableState | None, desired: TableState, *, interrupted: Callable[[], bool] | None = None
) -> Transaction:
    """The one transaction that turns ``current`` (None: no table yet) into ``desired``.
    ``interrupted`` (the read-back's) is asked before each kept set is compared, and stops
    the planning with :class:`~policyctl.enforcer.givingway.GaveWay` when it says so: at 100k
    pods comparing every set takes a tenth of a second and more."""
    if current is None:
        return create(desired)
    cur_sets, des_sets = current.sets, desired.sets
    cur_chains, des_chains = current.chains, desired.chains

    sets_deleted = set(cur_sets) - set(des_sets)
    sets_added = set(des_sets) - set(cur_sets)
    sets_recreated = {
        n
        for n in cur_sets.keys() & des_sets.keys()
        if cur_sets[n].spec != des_sets[n].spec and cur_sets[n].signature != des_sets[n].signature
    }
    sets_kept = (set(cur_sets) & set(des_sets)) - sets_recreated

    sets_going = sets_deleted | sets_recreated
    chains = _chain_changes(cur_chains, des_chains, deleted=set(cur_chains) - set(des_chains), sets_going=sets_going)
    moves: dict[str, tuple[set[ElementKey], set[ElementKey]]] = {}
    for n in sorted(sets_kept):
        give_way_if(interrupted)
        moves[n] = _moves(cur_sets[n], des_sets[n])
    return _transaction(
        current,
        chains=chains,
        desired_chains=des_chains,
        sets=_SetChanges(added=sets_added, recreated=sets_recreated, deleted=sets_deleted, desired=des_sets),
        removals=[(cur_sets[n], leaving) for n, (leaving, _) in moves.items()],
        additions=[(des_sets[n], coming) for n, (_, coming) in moves.items()],
    )


@dataclass(frozen=True, slots=True)
class _ChainChanges:
    """How the chains a step looks at relate to the table's: new, deleted, re-created (hook
    changed), with a new base-chain policy, and kept but with their rules re-sent (the rules
    differ, or they refer to a set or chain that goes away or is re-created)."""

    added: set[str]
    deleted: set[str]
    recreated: set[str]
    policy_updates: set[str]
    replaced: set[str]

    @property
    def going(self) -> set[str]:
        return self.deleted | self.recreated


def _chain_changes(
    current: Mapping[str, ChainState], looked_at: Mapping[str, ChainState], *, deleted: set[str], sets_going: set[str]
) -> _ChainChanges:
    """The chain changes of ``looked_at`` (every desired chain, or the chains a delta carries)
    against the table's ``current`` chains, ``deleted`` being those that go away."""
    added = {n for n in looked_at if n not in current}
    recreated = {
        n
        for n in looked_at
        if n in current
        and current[n].spec != looked_at[n].spec
        and current[n].hook_signature != looked_at[n].hook_signature
    }
    kept = {n for n in looked_at if n in current} - recreated
    going = deleted | recreated
    return _ChainChanges(
        added=added,
        deleted=deleted,
        recreated=recreated,
        policy_updates={n for n in kept if current[n].policy != looked_at[n].policy},
        replaced={
            n
            for n in kept
            if [r.key for r in current[n].rules] != [r.key for r in looked_at[n].rules]
            or (sets_going and current[n].set_references & sets_going)
            or (going and current[n].chain_references & going)
        },
    )


@dataclass(frozen=True, slots=True)
class _SetChanges:
    """Sets and maps that are new, re-created (type or flags changed) or deleted, and the
    desired state of the new and re-created ones."""

    added: set[str]
    recreated: set[str]
    deleted: set[str]
    desired: Mapping[str, SetState]


def _changed_values(current: SetState, desired: SetState) -> set[ElementKey]:
    """Map keys held by both whose value (jump target) differs: deleted and added again.
    One pass over ``desired`` with lookups in ``current``: either may be a patched mapping
    (:mod:`policyctl.enforcer.patches`), whose set operations run in Python."""
    held, wanted = current.values, desired.values
    if not held or not wanted:
        return set()
    return {k for k, v in wanted.items() if held.get(k, v) != v}


def _moves(current: SetState, desired: SetState) -> tuple[set[ElementKey], set[ElementKey]]:
    """The elements a kept set loses and gains (a map entry whose value changed is both)."""
    changed = _changed_values(current, desired)
    return (
        set(current.elements).difference(desired.elements) | changed,
        set(desired.elements).difference(current.elements) | changed,
    )


def _transaction(
    current: TableState,
    *,
    chains: _ChainChanges,
    desired_chains: Mapping[str, ChainState],
    sets: _SetChanges,
    removals: Iterable[tuple[SetState, Iterable[ElementKey]]],
    additions: Iterable[tuple[SetState, Iterable[ElementKey]]],
) -> Transaction:
    """The commands, in the order the module docstring gives, and what they amount to.
    ``removals``/``additions`` are element changes of kept sets, sorted by set name, each
    with the state its elements are spelled from."""
    cur_sets, cur_chains = current.sets, current.chains
    sets_going = sets.deleted | sets.recreated
    build = _Builder(current.family, current.name)
    for name in sorted(chains.replaced | chains.going):
        if cur_chains[name].rules:
            build.chain("flush", name)
    removed = sum(build.elements("delete", state, keys) for state, keys in removals)
    for name in sorted(sets_going):
        build.set("delete", cur_sets[name])
        removed += len(cur_sets[name].elements)
    for name in sorted(chains.going):
        build.chain("delete", name)
    for name in sorted(chains.added | chains.recreated | chains.policy_updates):
        build.chain("add", desired_chains[name], spec=True)
    added = 0
    for name in sorted(sets.added | sets.recreated):
        build.set("add", sets.desired[name], with_elements=True)
        added += len(sets.desired[name].elements)
    added += sum(build.elements("add", state, keys) for state, keys in additions)
    for name in sorted(chains.replaced | chains.added | chains.recreated):
        build.rules(desired_chains[name])
    return Transaction(
        commands=tuple(build.commands),
        elements_added=added,
        elements_removed=removed,
        chains_added=tuple(sorted(chains.added)),
        chains_replaced=tuple(sorted(chains.replaced | chains.recreated)),
        chains_deleted=tuple(sorted(chains.deleted)),
        sets_added=tuple(sorted(sets.added)),
        sets_recreated=tuple(sorted(sets.recreated)),
        sets_deleted=tuple(sorted(sets.deleted)),
    )


def _field_types(state: SetState) -> tuple[FieldType, ...]:
    kind = state.spec.get("type")
    names = [kind] if isinstance(kind, str) else kind
    if not isinstance(names, list) or not names:
        raise DeltaMismatch(f"set {state.name} has no key type the compiler writes")
    try:
        return tuple(FieldType(n) for n in names)
    except ValueError as exc:
        raise DeltaMismatch(f"set {state.name} has a key type the compiler never writes: {kind!r}") from exc


def _kept(current: TableState, name: str, kind: str, whole: set[str]) -> SetState:
    state = current.sets.get(name)
    if state is None:
        raise DeltaMismatch(f"the delta changes elements of {kind} {name}, which the table lacks")
    if state.kind != kind:
        raise DeltaMismatch(f"the delta changes {name} as a {kind}, but the table holds a {state.kind}")
    if name in whole:
        raise DeltaMismatch(f"the delta carries or removes {name} whole and also changes its elements")
    return state


RenderedElements = tuple[tuple[str, tuple[Any, ...]], ...]
TypedKeys = dict[str, list[tuple[ElementKey, ElementKey | None]]]


def _typed_keys(
    elements: SetElements, entries: MapEntries, types: Mapping[str, tuple[FieldType, ...]]
) -> TypedKeys:
    """The keys of a delta's elements and map entries, from their intervals and addresses,
    grouped by name in the order :func:`render_delta` renders them (a set's elements, then a
    map's entries, each group in the delta's order)."""
    keys: TypedKeys = {}
    for name, found in elements:
        kinds = types[name]
        keys.setdefault(name, []).extend((typed_element_key(kinds, e), None) for e in found)
    for name, pairs in entries:
        keys.setdefault(name, []).extend(entry_keys(address, target) for address, target in pairs)
    return keys


def _keyed(rendered: RenderedElements, keys: TypedKeys) -> list[tuple[str, Any, ElementKey, ElementKey | None]]:
    """Each rendered element beside its key and (for a map) its target's key."""
    pending = {name: iter(found) for name, found in keys.items()}
    out = []
    for name, values in rendered:
        found = pending[name]
        for value in values:
            key, target = next(found)
            out.append((name, value, key, target))
    return out


def _element_changes(
    current: TableState,
    added: RenderedElements,
    removed: RenderedElements,
    *,
    added_keys: TypedKeys,
    removed_keys: TypedKeys,
) -> tuple[dict[str, SetState], dict[str, set[ElementKey]], dict[str, set[ElementKey]]]:
    """Kept sets and maps patched copy-on-write, with the keys that left and came to each.
    A removed element must be held (a map element with the same target); an added one must
    not be, unless it is removed in the same step (a map element whose target changed).
    A patched set shares the unchanged elements with the set it was patched from
    (:mod:`~policyctl.enforcer.patches`), so patching costs what changes, not what is kept."""
    gone: dict[str, set[ElementKey]] = {}
    for name, value, key, target in _keyed(removed, removed_keys):
        state = current.sets[name]
        if key not in state.elements or (target is not None and state.values.get(key) != target):
            raise DeltaMismatch(f"the delta removes {value!r} from {name}, which the table does not hold")
        gone.setdefault(name, set()).add(key)
    came: dict[str, dict[ElementKey, tuple[ElementKey | None, Any]]] = {}
    for name, value, key, target in _keyed(added, added_keys):
        state = current.sets[name]
        if key in state.elements and key not in gone.get(name, ()):
            raise DeltaMismatch(f"the delta adds {value!r} to {name}, which the table already holds")
        came.setdefault(name, {})[key] = (target, value)
    patched_sets: dict[str, SetState] = {}
    for name in sorted(set(gone) | set(came)):
        state = current.sets[name]
        leaving = gone.get(name, set())
        coming = came.get(name, {})
        elements = patched(state.elements, removed=leaving, added=((k, v) for k, (_, v) in coming.items()))
        values = state.values
        targets = [(k, t) for k, (t, _) in coming.items() if t is not None]
        left = [k for k in leaving if k in values]
        if targets or left:
            values = patched(values, removed=left, added=targets)
        patched_sets[name] = SetState(kind=state.kind, name=name, spec=state.spec, elements=elements, values=values)
    return patched_sets, gone, {name: set(entries) for name, entries in came.items()}


def plan_delta(
    current: TableState, delta: RulesetDelta, *, source: str = "<ruleset>"
) -> tuple[Transaction, TableState]:
    """The transaction that applies ``delta`` to a table holding ``current``, and the state
    the table holds after it: ``current`` patched copy-on-write (untouched sets and chains are
    shared, a touched set shares its unchanged elements). Keys of the elements that come or
    go are built from the delta's intervals, not parsed back from their rendering. Commands
    are ordered as in :func:`plan`.
    Raises :class:`DeltaMismatch` when the delta does not fit ``current``."""
    transaction, after, _ = _plan_delta(current, delta, source=source, renames_later=False)
    return transaction, after


def plan_delta_renames_later(
    current: TableState, delta: RulesetDelta, *, source: str = "<ruleset>"
) -> tuple[Transaction, TableState, Mapping[str, ChainState]]:
    """:func:`plan_delta`, but the chains whose rules change only in their comments are left
    out of the transaction (and the patched state keeps them as they are) and returned,
    for :func:`plan_renames` to send after it.

    Why: a rule's comment names its sources, so a pod or policy that comes or goes renames
    the rules of every identity chain it was named in (10 to 17 chains for the slowest pod
    deletes of the 10k bench, each flushed and its rules added again), though no packet is
    decided differently. A chain is left out only when it refers to nothing that goes away
    or is re-created (those are flushed in this transaction whatever their comments)."""
    return _plan_delta(current, delta, source=source, renames_later=True)


def plan_renames(state: TableState, chains: Mapping[str, ChainState]) -> tuple[Transaction, TableState]:
    """The transaction that re-sends ``chains`` (:func:`plan_delta_renames_later`) on a table
    holding ``state``, and the state after it."""
    build = _Builder(state.family, state.name)
    for name in sorted(chains):
        if state.chains[name].rules:
            build.chain("flush", name)
    for name in sorted(chains):
        build.rules(chains[name])
    transaction = Transaction(commands=tuple(build.commands), chains_replaced=tuple(sorted(chains)))
    return transaction, TableState(
        family=state.family, name=state.name, sets=state.sets, chains={**state.chains, **chains}
    )


def plan_later(
    state: TableState, renames: Mapping[str, ChainState], removals: RulesetDelta
) -> tuple[Transaction, TableState]:
    """One transaction for what deltas left for after the kernel: the comment-only chain
    changes (:func:`plan_renames`) and the rest of the step their caller vouched decides no
    packet (``Enforcer.apply_delta(later=)``), on a table holding ``state``; and the state
    after it. Raises :class:`DeltaMismatch` when ``removals`` does not fit."""
    renamed_transaction, renamed = plan_renames(state, renames) if renames else (Transaction(), state)
    if removals.empty:
        return renamed_transaction, renamed
    removed_transaction, after = plan_delta(renamed, removals)
    return replace(
        removed_transaction,
        commands=renamed_transaction.commands + removed_transaction.commands,
        chains_replaced=renamed_transaction.chains_replaced + removed_transaction.chains_replaced,
    ), after


def _plan_delta(
    current: TableState, delta: RulesetDelta, *, source: str, renames_later: bool
) -> tuple[Transaction, TableState, Mapping[str, ChainState]]:
    whole_names = {s.name for s in delta.sets} | {m.name for m in delta.maps} | set(delta.removed)
    types = {
        name: _field_types(_kept(current, name, "set", whole_names))
        for name, _ in delta.added_elements + delta.removed_elements
    }
    for name, _ in delta.added_entries + delta.removed_entries:
        _kept(current, name, "map", whole_names)
    rendered = render_delta(delta, family=current.family, table=current.name, types=types)
    whole = read_table(rendered.objects, family=current.family, table=current.name, source=source)
    new_sets, new_chains = whole.sets, whole.chains
    cur_sets, cur_chains = current.sets, current.chains

    sets_deleted = set(rendered.removed_sets)
    chains_deleted = set(rendered.removed_chains)
    for name in sorted(n for n in sets_deleted if n not in cur_sets):
        raise DeltaMismatch(f"the delta removes {name}, which the table lacks")
    for name in sorted(n for n in chains_deleted if n not in cur_chains):
        raise DeltaMismatch(f"the delta removes chain {name}, which the table lacks")
    for name in sorted(n for n in sets_deleted | chains_deleted if n in new_sets or n in new_chains):
        raise DeltaMismatch(f"the delta both removes and carries {name}")

    sets_added = {n for n in new_sets if n not in cur_sets}
    sets_recreated = {n for n in new_sets if n in cur_sets and cur_sets[n].signature != new_sets[n].signature}
    sets_rewritten = {n for n in new_sets if n in cur_sets} - sets_recreated
    patched_sets, gone, came = _element_changes(
        current,
        rendered.added,
        rendered.removed,
        added_keys=_typed_keys(delta.added_elements, delta.added_entries, types),
        removed_keys=_typed_keys(delta.removed_elements, delta.removed_entries, types),
    )

    chains = _chain_changes(cur_chains, new_chains, deleted=chains_deleted, sets_going=sets_deleted | sets_recreated)
    renamed: dict[str, ChainState] = {}
    if renames_later and chains.replaced:
        going_sets, going_chains = sets_deleted | sets_recreated, chains.going
        renamed = {
            n: new_chains[n]
            for n in sorted(chains.replaced)
            if differs_only_in_comments(cur_chains[n], new_chains[n])
            and not (going_sets and cur_chains[n].set_references & going_sets)
            and not (going_chains and cur_chains[n].chain_references & going_chains)
        }
        if renamed:
            chains = replace(chains, replaced=chains.replaced - renamed.keys())
            new_chains = {n: c for n, c in new_chains.items() if n not in renamed}
    touched = sorted(set(gone) | set(came) | sets_rewritten)
    moves = {n: _moves(cur_sets[n], new_sets[n]) for n in sorted(sets_rewritten)}
    transaction = _transaction(
        current,
        chains=chains,
        desired_chains=new_chains,
        sets=_SetChanges(added=sets_added, recreated=sets_recreated, deleted=sets_deleted, desired=new_sets),
        removals=[
            (cur_sets[n], moves[n][0] if n in sets_rewritten else gone[n])
            for n in touched if n in sets_rewritten or n in gone
        ],
        additions=[
            (new_sets[n], moves[n][1]) if n in sets_rewritten else (patched_sets[n], came[n])
            for n in touched if n in sets_rewritten or n in came
        ],
    )

    table_sets = dict(cur_sets)
    for name in sets_deleted:
        del table_sets[name]
    table_sets.update(patched_sets)
    table_sets.update(new_sets)
    table_chains = dict(cur_chains)
    for name in chains_deleted:
        del table_chains[name]
    table_chains.update(new_chains)
    after = TableState(family=current.family, name=current.name, sets=table_sets, chains=table_chains)
    return transaction, after, renamed
