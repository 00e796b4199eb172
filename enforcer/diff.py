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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policyctl.enforcer.elements import ElementKey
from policyctl.enforcer.tables import ChainState, SetState, TableState


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
        errors can be matched to the transaction that was sent."""
        text = json.dumps(self.payload(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _sorted_elements(elements: Mapping[ElementKey, Any], keys: Iterable[ElementKey]) -> list[Any]:
    return [elements[k] for k in sorted(keys, key=_order)]


def _order(key: ElementKey) -> str:
    return json.dumps(key)


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


def plan(current: TableState | None, desired: TableState) -> Transaction:
    """The one transaction that turns ``current`` (None: no table yet) into ``desired``."""
    if current is None:
        return create(desired)
    cur_sets, des_sets = current.sets, desired.sets
    cur_chains, des_chains = current.chains, desired.chains

    sets_deleted = set(cur_sets) - set(des_sets)
    sets_added = set(des_sets) - set(cur_sets)
    sets_recreated = {
        n for n in set(cur_sets) & set(des_sets) if cur_sets[n].signature != des_sets[n].signature
    }
    sets_kept = (set(cur_sets) & set(des_sets)) - sets_recreated

    chains_deleted = set(cur_chains) - set(des_chains)
    chains_added = set(des_chains) - set(cur_chains)
    chains_recreated = {
        n
        for n in set(cur_chains) & set(des_chains)
        if cur_chains[n].hook_signature != des_chains[n].hook_signature
    }
    chains_kept = (set(cur_chains) & set(des_chains)) - chains_recreated
    policy_updates = {n for n in chains_kept if cur_chains[n].policy != des_chains[n].policy}

    sets_going = sets_deleted | sets_recreated
    chains_going = chains_deleted | chains_recreated
    chains_replaced = {
        n
        for n in chains_kept
        if [r.key for r in cur_chains[n].rules] != [r.key for r in des_chains[n].rules]
        or cur_chains[n].set_references & sets_going
        or cur_chains[n].chain_references & chains_going
    }

    build = _Builder(desired.family, desired.name)
    for name in sorted(chains_replaced | chains_going):
        if cur_chains[name].rules:
            build.chain("flush", name)

    removed = 0
    added = 0
    for name in sorted(sets_kept):
        cur, des = cur_sets[name], des_sets[name]
        changed = {k for k in set(cur.values) & set(des.values) if cur.values[k] != des.values[k]}
        removed += build.elements("delete", cur, (set(cur.elements) - set(des.elements)) | changed)
    for name in sorted(sets_going):
        build.set("delete", cur_sets[name])
        removed += len(cur_sets[name].elements)
    for name in sorted(chains_going):
        build.chain("delete", name)

    for name in sorted(chains_added | chains_recreated | policy_updates):
        build.chain("add", des_chains[name], spec=True)
    for name in sorted(sets_added | sets_recreated):
        build.set("add", des_sets[name], with_elements=True)
        added += len(des_sets[name].elements)
    for name in sorted(sets_kept):
        cur, des = cur_sets[name], des_sets[name]
        changed = {k for k in set(cur.values) & set(des.values) if cur.values[k] != des.values[k]}
        added += build.elements("add", des, (set(des.elements) - set(cur.elements)) | changed)
    for name in sorted(chains_replaced | chains_added | chains_recreated):
        build.rules(des_chains[name])

    return Transaction(
        commands=tuple(build.commands),
        elements_added=added,
        elements_removed=removed,
        chains_added=tuple(sorted(chains_added)),
        chains_replaced=tuple(sorted(chains_replaced | chains_recreated)),
        chains_deleted=tuple(sorted(chains_deleted)),
        sets_added=tuple(sorted(sets_added)),
        sets_recreated=tuple(sorted(sets_recreated)),
        sets_deleted=tuple(sorted(sets_deleted)),
    )
