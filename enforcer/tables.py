"""One nftables table as the enforcer compares it: sets, maps, chains and their rules.

Both sides of a diff are read into :class:`TableState` by the same function: the kernel's
listing (``nft -j list table``) and the compiler's desired ruleset, which is written in that
same object format. Reading normalises what the kernel rewrites on the way back (handles,
counter values, element spellings, an omitted base-chain policy), so an unchanged ruleset
reads the same from both sides; it keeps what was written for the objects themselves, because
that is what the enforcer sends when it (re)creates them.

Invariant: a :class:`TableState` holds exactly one table's objects; objects of any other
table or family in a desired ruleset are an error, never silently dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from policyctl.enforcer.elements import ElementKey, element_key, split_map_element, value_key
from policyctl.enforcer.errors import RulesetError
from policyctl.enforcer.givingway import give_way_if
from policyctl.enforcer.patches import settled

#: Attributes that make a set or map what it is; changing any of them means re-creating it.
SET_SIGNATURE = ("type", "map", "flags", "timeout", "gc-interval", "size", "policy")
#: Attributes that make a chain a base chain at a hook.
CHAIN_HOOK = ("type", "hook", "prio", "dev")
_IGNORED_KINDS = ("metainfo",)
_SET_REFERENCE = re.compile(r'"@([A-Za-z0-9_.\-/]+)"')
_CHAIN_REFERENCE = re.compile(r'"(?:jump|goto)": \{"target": ("(?:[^"\\]|\\.)*")\}')


@dataclass(frozen=True, slots=True)
class SetState:
    """A named set (``kind == "set"``) or map. ``elements`` maps each element's canonical key
    to the element as written (for a map, the ``[key, value]`` pair); ``values`` maps a map
    element's key to its value's canonical key."""

    kind: str
    name: str
    spec: Mapping[str, Any]
    elements: Mapping[ElementKey, Any]
    values: Mapping[ElementKey, ElementKey]

    @property
    def signature(self) -> str:
        return json.dumps([self.kind, [_attr(self.spec, k) for k in SET_SIGNATURE]], sort_keys=True)

    @property
    def references(self) -> frozenset[str]:
        """Chains that the elements of a verdict map jump or go to."""
        return frozenset(_chain_targets(list(self.elements.values())))


@dataclass(frozen=True, slots=True)
class RuleState:
    """A rule: ``key`` compares rules (counter values and handles left out), ``decision`` the
    part of it that decides packets (its expressions: the key without the comment), ``body``
    is what ``add rule`` sends (``expr`` and ``comment`` as written)."""

    key: str
    body: Mapping[str, Any]
    decision: str


@dataclass(frozen=True, slots=True)
class ChainState:
    """A chain and its rules in order. ``spec`` holds the hook attributes of a base chain."""

    name: str
    spec: Mapping[str, Any]
    rules: tuple[RuleState, ...] = ()

    @property
    def is_base(self) -> bool:
        return "hook" in self.spec

    @property
    def hook_signature(self) -> str:
        return json.dumps([_attr(self.spec, k) for k in CHAIN_HOOK])

    @property
    def policy(self) -> str | None:
        return str(self.spec.get("policy", "accept")) if self.is_base else None

    @property
    def set_references(self) -> frozenset[str]:
        """Named sets and maps the rules look up (``"@name"`` in their expressions)."""
        return frozenset(_SET_REFERENCE.findall("".join(r.decision for r in self.rules)))

    @property
    def chain_references(self) -> frozenset[str]:
        """Chains the rules jump or go to, read from their decisions' text (keys sorted, so a
        verdict is spelled ``"jump": {"target": "name"}``)."""
        return frozenset(json.loads(t) for t in _CHAIN_REFERENCE.findall("".join(r.decision for r in self.rules)))


@dataclass(frozen=True, slots=True)
class TableState:
    family: str
    name: str
    sets: Mapping[str, SetState]
    chains: Mapping[str, ChainState]


def settled_table(state: TableState) -> TableState:
    """``state`` with the changes pending on its sets' elements folded where they outgrew
    their bound (:func:`~policyctl.enforcer.patches.settled`); ``state`` itself when none did."""
    folded: dict[str, SetState] = {}
    for name, found in state.sets.items():
        elements, values = settled(found.elements), settled(found.values)
        if elements is not found.elements or values is not found.values:
            folded[name] = SetState(kind=found.kind, name=name, spec=found.spec, elements=elements, values=values)
    if not folded:
        return state
    return TableState(family=state.family, name=state.name, sets={**state.sets, **folded}, chains=state.chains)


def _attr(spec: Mapping[str, Any], key: str) -> Any:
    value = spec.get(key)
    if key == "flags" and value is not None:
        flags = [value] if isinstance(value, str) else list(value)
        return sorted(flags) or None
    if key == "type" and isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def _chain_targets(tree: Any) -> set[str]:
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for verb in ("jump", "goto"):
                target = node.get(verb)
                if isinstance(target, dict) and isinstance(target.get("target"), str):
                    found.add(target["target"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


_MARK = {"meta": {"key": "mark"}}


def _as_written(statement: Any) -> Any:
    """A statement as the compiler writes it. The kernel lists ``meta mark & 0xffff0000 == 0``
    (a mask of the top bits, compared with zero) as the prefix ``meta mark 0/16``; every
    other masked mark test it lists as written."""
    match = statement.get("match") if isinstance(statement, dict) and len(statement) == 1 else None
    if not isinstance(match, dict) or match.get("left") != _MARK or match.get("op") not in ("==", "!="):
        return statement
    prefix = match.get("right", {}).get("prefix") if isinstance(match.get("right"), dict) else None
    if not isinstance(prefix, dict) or prefix.get("addr") != 0 or not isinstance(prefix.get("len"), int):
        return statement
    mask = (0xFFFFFFFF << (32 - prefix["len"])) & 0xFFFFFFFF
    return {"match": {"op": match["op"], "left": {"&": [_MARK, mask]}, "right": 0}}


def _without_counter_values(tree: Any) -> Any:
    """Anonymous counters compare equal whatever they have counted."""
    if isinstance(tree, dict):
        if len(tree) == 1 and "counter" in tree and (tree["counter"] is None or isinstance(tree["counter"], dict)):
            return {"counter": None}
        return {k: _without_counter_values(v) if isinstance(v, (dict, list)) else v for k, v in tree.items()}
    if isinstance(tree, list):
        return [_without_counter_values(v) if isinstance(v, (dict, list)) else v for v in tree]
    return tree


def differs_only_in_comments(current: ChainState, desired: ChainState) -> bool:
    """The same rules but for their comments, which decide no packet (the compiler names a
    rule's sources there, ``compiler.layout.terse_comment``)."""
    return len(current.rules) == len(desired.rules) and all(
        a.decision == b.decision for a, b in zip(current.rules, desired.rules)
    )


def rule_state(body: Mapping[str, Any]) -> RuleState:
    """The rule ``body`` with its key and decision. The key is the JSON text of the comment
    and the expressions without counter values (keys sorted), built around the decision's
    text so the expressions are walked and dumped once."""
    decision = json.dumps(_without_counter_values(body.get("expr", [])), sort_keys=True)
    return RuleState(key=f'{{"comment": {json.dumps(body.get("comment"))}, "expr": {decision}}}', body=body,
                     decision=decision)


class _Reader:
    def __init__(
        self,
        *,
        family: str,
        table: str,
        source: str,
        strict: bool,
        reuse: TableState | None = None,
        interrupted: Callable[[], bool] | None = None,
    ) -> None:
        self.family = family
        self.table = table
        self.source = source
        self.strict = strict
        self.reuse = reuse if strict else None
        self.interrupted = interrupted

    def fail(self, message: str, *, object: str = "", field: str = "") -> RulesetError:
        return RulesetError(message, source=self.source, object=object, field=field)

    def owned(self, kind: str, index: int, obj: Any) -> bool:
        where = f"nftables[{index}].{kind}"
        if not isinstance(obj, dict):
            raise self.fail("must be an object", object=where)
        family = obj.get("family", self.family)
        table = obj.get("name" if kind == "table" else "table", self.table)
        if (family, table) == (self.family, self.table):
            return True
        if self.strict:
            raise self.fail(
                f"belongs to table {family} {table}, but this ruleset is applied as table "
                f"{self.family} {self.table} (use --table or render the ruleset for it)",
                object=where,
                field="table" if kind != "table" else "name",
            )
        return False

    def read_set(self, kind: str, index: int, obj: dict[str, Any]) -> SetState:
        name = obj.get("name")
        label = f"{kind} {name}" if isinstance(name, str) else f"nftables[{index}].{kind}"
        if not isinstance(name, str) or not name:
            raise self.fail("has no name", object=label, field="name")
        if "type" not in obj and "typeof" not in obj:
            raise self.fail("has no type", object=label, field="type")
        raw = obj.get("elem", [])
        if not isinstance(raw, list):
            raise self.fail("must be a list", object=label, field="elem")
        spec = {k: v for k, v in obj.items() if k not in ("family", "table", "handle", "elem")}
        previous = self.reuse.sets.get(name) if self.reuse is not None else None
        if (
            previous is not None
            and previous.kind == kind
            and previous.spec == spec
            and len(previous.elements) == len(raw)
            and list(previous.elements.values()) == raw
        ):
            return previous
        elements: dict[ElementKey, Any] = {}
        values: dict[ElementKey, ElementKey] = {}
        for position, element in enumerate(raw):
            if position and not position & 1023:
                give_way_if(self.interrupted)
            if kind == "map":
                pair = split_map_element(element)
                if pair is None:
                    raise self.fail("a map element must be [key, value]", object=label, field=f"elem[{position}]")
                key = element_key(pair[0])
                values[key] = value_key(pair[1])
            else:
                key = element_key(element)
            if key in elements and self.strict:
                raise self.fail("duplicates an earlier element", object=label, field=f"elem[{position}]")
            elements[key] = element
        return SetState(kind=kind, name=name, spec=spec, elements=elements, values=values)

    def read(self, document: Any) -> TableState:
        if not isinstance(document, dict) or not isinstance(document.get("nftables"), list):
            raise self.fail('must be a JSON object {"nftables": [...]}')
        sets: dict[str, SetState] = {}
        chains: dict[str, dict[str, Any]] = {}
        rules: dict[str, list[RuleState]] = {}
        for index, item in enumerate(document["nftables"]):
            if index and not index & 63:
                give_way_if(self.interrupted)
            if not isinstance(item, dict) or len(item) != 1:
                raise self.fail("must be an object with one key", object=f"nftables[{index}]")
            (kind, obj), = item.items()
            if kind in _IGNORED_KINDS:
                continue
            if kind not in ("table", "set", "map", "chain", "rule"):
                if self.strict:
                    raise self.fail(
                        f"{kind!r} objects are not supported (table, set, map, chain, rule)",
                        object=f"nftables[{index}]",
                    )
                continue
            if not self.owned(kind, index, obj):
                continue
            if kind in ("set", "map"):
                state = self.read_set(kind, index, obj)
                if state.name in sets and self.strict:
                    raise self.fail("is defined twice", object=f"{kind} {state.name}")
                sets[state.name] = state
            elif kind == "chain":
                name = obj.get("name")
                if not isinstance(name, str) or not name:
                    raise self.fail("has no name", object=f"nftables[{index}].chain", field="name")
                chains[name] = {k: v for k, v in obj.items() if k not in ("family", "table", "handle", "name")}
                rules.setdefault(name, [])
            elif kind == "rule":
                chain = obj.get("chain")
                if not isinstance(chain, str):
                    raise self.fail("names no chain", object=f"nftables[{index}].rule", field="chain")
                expr = obj.get("expr")
                if not isinstance(expr, list):
                    raise self.fail("must be a list", object=f"rule {index} in chain {chain}", field="expr")
                body: dict[str, Any] = {"expr": [_as_written(e) for e in expr]}
                if obj.get("comment") is not None:
                    body["comment"] = obj["comment"]
                rules.setdefault(chain, []).append(rule_state(body))
        for chain in sorted(set(rules) - set(chains)):
            raise self.fail("has rules but is not declared", object=f"chain {chain}")
        chain_states = {
            name: ChainState(name=name, spec=spec, rules=tuple(rules[name]))
            for name, spec in chains.items()
        }
        return TableState(family=self.family, name=self.table, sets=sets, chains=chain_states)


def read_table(
    document: Any,
    *,
    family: str,
    table: str,
    source: str = "<ruleset>",
    strict: bool = True,
    reuse: TableState | None = None,
    interrupted: Callable[[], bool] | None = None,
) -> TableState:
    """Read one table from a document in the ``nft -j list table`` object format.

    ``strict`` is for desired rulesets: objects of another table, unsupported object kinds,
    duplicates and rules of undeclared chains are errors (naming ``source``, the object and the
    field). A kernel listing is read with ``strict=False`` and only our table is kept.

    ``reuse`` is an earlier strict reading: a set or map written exactly as it was then (same
    attributes, same elements in the same order) is taken from it instead of being parsed
    again, which is most of the sets when one event changed a ruleset. The result is the
    same as without it.

    ``interrupted`` is asked every 1,024 elements and 64 objects; when it says so the
    reading stops with :class:`~policyctl.enforcer.givingway.GaveWay` (the read-back's
    reading of a 100k-pod listing takes 0.4 s, which a waiting event should not)."""
    reader = _Reader(family=family, table=table, source=source, strict=strict, reuse=reuse, interrupted=interrupted)
    return reader.read(document)
