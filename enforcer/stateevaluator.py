"""The compiler's evaluator over the table the enforcer last committed, without rendering it.

Connection revocation asks after every change whether each tracked local flow is still
allowed. Rendering the node's whole ruleset to JSON and parsing it into an evaluator for that
cost 60-70 ms at 10k pods (and seconds at 100k) after every event, and the memory it churned
slowed the next event's path. The enforcer already holds what the kernel was given: a
:class:`TableState`, patched copy-on-write from each delta, so untouched sets and chains are
the same objects from one commit to the next. :class:`StateEvaluators` lets the evaluator read
that state directly: a set answers a lookup from its canonical element keys (a point is one
dictionary lookup; elements that are ranges or prefixes are indexed once per set state), and
what it builds is kept per state object, so a later commit reads again only what it changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from policyctl.compiler.evaluator import Chain, Evaluator, UnsupportedExpression
from policyctl.enforcer.elements import ElementKey, split_map_element
from policyctl.enforcer.tables import ChainState, SetState, TableState
from policyctl.policy.model import IPAddress

#: The address family of each key type whose canonical key is an address (``("ip", version,
#: low, high)``); the number types' keys are ``("n", low, high)``.
_ADDRESS_TYPES = {"ipv4_addr": 4, "ipv6_addr": 6}
_NUMBER_TYPES = frozenset({"inet_proto", "inet_service", "mark"})
_MISSING = object()

Fields = tuple[tuple[int, int], ...]
State = TypeVar("State")
Built = TypeVar("Built")


class StateSet:
    """One set or verdict map of a committed :class:`TableState`, as the evaluator looks it up."""

    def __init__(self, state: SetState) -> None:
        if state.kind == "map" and state.spec.get("map") != "verdict":
            raise UnsupportedExpression(f"map data {state.spec.get('map')!r}")
        flags = set(state.spec.get("flags", ()))
        if flags - {"interval"}:
            raise UnsupportedExpression(f"set flags {sorted(flags)}")
        declared = state.spec.get("type")
        types = tuple(declared) if isinstance(declared, list) else (declared,)
        for kind in types:
            if kind not in _ADDRESS_TYPES and kind not in _NUMBER_TYPES:
                raise UnsupportedExpression(f"data type {kind!r}")
        self.state = state
        self._versions = tuple(_ADDRESS_TYPES.get(kind) for kind in types)
        self._ranges: list[tuple[Fields, Any]] | None = None

    def contains(self, key: tuple[int, ...]) -> bool:
        return self._element(key) is not _MISSING

    def lookup(self, key: tuple[int, ...]) -> Any:
        element = self._element(key)
        if element is _MISSING:
            return None
        pair = split_map_element(element)
        if pair is None:
            raise UnsupportedExpression(f"map element {element!r}")
        return pair[1]

    def _element(self, key: tuple[int, ...]) -> Any:
        """The element (as written) whose every field holds the key's, else ``_MISSING``."""
        if len(key) != len(self._versions):
            raise UnsupportedExpression(f"key {key!r} does not fit set {self.state.name}")
        parts = tuple(
            ("ip", version, value, value) if version is not None else ("n", value, value)
            for version, value in zip(self._versions, key)
        )
        point: ElementKey = parts[0] if len(parts) == 1 else ("concat", parts)
        element = self.state.elements.get(point, _MISSING)
        if element is not _MISSING:
            return element
        for fields, element in self._range_elements():
            if all(low <= value <= high for value, (low, high) in zip(key, fields)):
                return element
        return _MISSING

    def _range_elements(self) -> list[tuple[Fields, Any]]:
        """The elements that are not single points, read once from their keys."""
        if self._ranges is None:
            ranges = []
            for key, element in self.state.elements.items():
                fields = _fields(key, element)
                if any(low != high for low, high in fields):
                    ranges.append((fields, element))
            self._ranges = ranges
        return self._ranges


def _fields(key: ElementKey, element: Any) -> Fields:
    parts = key[1] if isinstance(key, tuple) and key[0] == "concat" else (key,)
    fields = []
    for part in parts:
        if isinstance(part, tuple) and part[0] == "ip":
            fields.append((part[2], part[3]))
        elif isinstance(part, tuple) and part[0] == "n":
            fields.append((part[1], part[2]))
        else:
            raise UnsupportedExpression(f"set element {element!r}")
    return tuple(fields)


def _chain(state: ChainState) -> Chain:
    chain = Chain.of(state.name, state.spec)
    chain.rules = [list(rule.body["expr"]) for rule in state.rules]
    return chain


class StateEvaluators:
    """Evaluators of successive commits of one table. What one built for a set or chain state
    is reused by the next for as long as the commit shares that state object."""

    def __init__(self) -> None:
        self._sets: dict[str, tuple[SetState, StateSet]] = {}
        self._chains: dict[str, tuple[ChainState, Chain]] = {}

    def evaluator(self, table: TableState, *, local_addresses: Iterable[IPAddress] = ()) -> Evaluator:
        for built, states in ((self._sets, table.sets), (self._chains, table.chains)):
            if len(built) > 2 * len(states):
                for name in [n for n in built if n not in states]:
                    del built[name]
        sets: _Reused[SetState, StateSet] = _Reused(table.sets, self._sets, StateSet)
        return Evaluator.over(
            sets,
            _Reused(table.chains, self._chains, _chain),
            local_addresses=local_addresses,
        )


class _Reused(Mapping[str, Built], Generic[State, Built]):
    """``states`` by name, each turned into what evaluation reads on first access and kept in
    ``built`` against the state object it was built from."""

    def __init__(
        self, states: Mapping[str, State], built: dict[str, tuple[State, Built]], build: Callable[[State], Built]
    ) -> None:
        self._states = states
        self._built = built
        self._build = build

    def __getitem__(self, name: str) -> Built:
        state = self._states[name]
        kept = self._built.get(name)
        if kept is not None and kept[0] is state:
            return kept[1]
        value = self._build(state)
        self._built[name] = (state, value)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._states)

    def __len__(self) -> int:
        return len(self._states)
