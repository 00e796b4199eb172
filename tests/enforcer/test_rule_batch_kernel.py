"""Chain and rule batches of our own against libnftables, in the kernel: the rule encoder's
bytes equal what libnftables sends for the same JSON (the element encoder's differ from them in
two attributes the kernel does not read, a set id and list numbering, and are held to
libnftables' by listings and lookups in test_element_batch_kernel); the same random chain transactions sent both
ways to two tables made alike leave equal listings and fail alike; through the enforcer a local
pod's add and delete each go as one batch, leave what a full apply would, and the chains so
added decide real packets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.compiler.compile import compile_node
from policyctl.compiler.delta import diff
from policyctl.compiler.render_json import to_document
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.batches import transaction_batch
from policyctl.enforcer.errors import NftApplyError, NftCommandError
from policyctl.enforcer.tables import read_table
from tests.builders import cluster, pod, pod_peer, policy, port, rule
from tests.enforcer.bothways import sent_both_ways as both_ways
from tests.enforcer.libnftables_bytes import libnftables_messages, strace_missing, without_set_ids
from tests.enforcer.netns import CLUSTER_OBJECTS, Node, backend_in_a_node

pytestmark = pytest.mark.kernel

BY_JSON, BY_BATCH = "by-json", "by-batch"
#: Chains every transaction may jump to; the chains transactions add come from ``POOL``.
TARGETS = ("allow-v4", "other")
POOL = ("p1", "p2", "p3")
V4, V6, PROTO, PORT = "ipv4_addr", "ipv6_addr", "inet_proto", "inet_service"
#: The sets lookups may name: their key types and whether they have intervals, one of each
#: kind the compiler makes (peer identity sets, ipBlock sets, peerless sets).
LOOKUP_SETS: dict[str, tuple[tuple[str, ...], bool]] = {
    "v4": ((V4,), False), "v6": ((V6,), False), "v4-interval": ((V4,), True),
    "peer-ports": ((V4, PROTO, PORT), False), "peer-ports-interval": ((V4, PROTO, PORT), True),
    "peer-ports-v6": ((V6, PROTO, PORT), False), "peer-ports-v6-interval": ((V6, PROTO, PORT), True),
    "blocks-ports": ((V4, V4, PROTO, PORT), True), "blocks-ports-v6": ((V6, V6, PROTO, PORT), True),
    "blocks-any": ((V4, V4), True), "blocks-any-v6": ((V6, V6), True),
}
VERDICT_MAPS = {"ingress-v4": V4, "ingress-v6": V6}
#: Sets and maps transactions create, one of each kind the compiler makes and a few shapes
#: more, with a pool of elements no two of which overlap.
CREATED: dict[str, tuple[dict[str, Any], list[Any]]] = {
    "n-v4": ({"type": V4}, ["10.0.0.1", "10.0.0.2", "192.0.2.255"]),
    "n-v6": ({"type": V6}, ["2001:db8::1", "fd00::2"]),
    "n-v4-interval": ({"type": V4, "flags": ["interval"]}, [
        {"prefix": {"addr": "10.0.0.0", "len": 8}}, "12.0.0.1", {"range": ["172.16.0.5", "172.16.0.9"]}]),
    "n-v6-interval": ({"type": V6, "flags": ["interval"]}, [{"prefix": {"addr": "2001:db8::", "len": 32}}, "fd00::1"]),
    "n-peer-ports": ({"type": [V4, PROTO, PORT]}, [
        {"concat": ["10.0.0.1", "tcp", 80]}, {"concat": ["10.0.0.1", "udp", 53]}, {"concat": ["10.0.0.2", "sctp", 7]}]),
    "n-peer-ports-interval": ({"type": [V4, PROTO, PORT], "flags": ["interval"]}, [
        {"concat": ["10.0.0.1", "tcp", {"range": [80, 90]}]}, {"concat": ["10.0.0.2", "udp", 53]}]),
    "n-peer-ports-v6": ({"type": [V6, PROTO, PORT]}, [{"concat": ["2001:db8::1", "tcp", 443]}]),
    "n-peer-ports-v6-interval": ({"type": [V6, PROTO, PORT], "flags": ["interval"]}, [
        {"concat": ["2001:db8::1", "tcp", {"range": [1000, 2000]}]}]),
    "n-blocks-ports": ({"type": [V4, V4, PROTO, PORT], "flags": ["interval"]}, [
        {"concat": [{"prefix": {"addr": "10.1.0.0", "len": 16}}, "10.77.2.2", "tcp", 80]},
        {"concat": [{"range": ["0.0.0.0", "9.255.255.255"]}, "10.77.2.2", "udp", {"range": [0, 65535]}]}]),
    "n-blocks-any": ({"type": [V4, V4], "flags": ["interval"]}, [
        {"concat": [{"prefix": {"addr": "10.1.0.0", "len": 16}}, "10.77.2.2"]}]),
    "n-blocks-any-v6": ({"type": [V6, V6], "flags": ["interval"]}, [
        {"concat": [{"prefix": {"addr": "::", "len": 0}}, "fd00::1"]}]),
    "n-pairs": ({"type": [V4, V4]}, [{"concat": ["10.0.0.1", "10.0.0.2"]}]),
    "n-marks": ({"type": "mark"}, [5, 7, 65536]),
    "n-marks-interval": ({"type": "mark", "flags": ["interval"]}, [{"range": [65536, 131071]}, 7]),
    "n-map-v4": ({"type": V4, "map": "verdict"}, [["10.0.0.1", {"jump": {"target": "other"}}],
                                                   ["10.0.0.2", {"accept": None}]]),
    "n-map-v6": ({"type": V6, "map": "verdict"}, [["fd00::1", {"goto": {"target": "allow-v4"}}]]),
    "n-map-marks": ({"type": "mark", "map": "verdict"}, [[65536, {"jump": {"target": "other"}}], [1, {"drop": None}]]),
}


def created(name: str, elements: list[Any] | None = None, verb: str = "add") -> dict[str, Any]:
    spec, pool = CREATED[name]
    kind = "map" if "map" in spec else "set"
    body: dict[str, Any] = {"family": "inet", "table": "T", "name": name}
    if verb == "add":
        body |= spec
        chosen = pool if elements is None else elements
        if chosen:
            body["elem"] = chosen
    return {verb: {kind: body}}
KEYS = {V4: ({"payload": {"protocol": "ip", "field": "saddr"}}, {"payload": {"protocol": "ip", "field": "daddr"}}),
        V6: ({"payload": {"protocol": "ip6", "field": "saddr"}}, {"payload": {"protocol": "ip6", "field": "daddr"}}),
        PROTO: ({"meta": {"key": "l4proto"}},), PORT: ({"payload": {"protocol": "th", "field": "dport"}},)}
TEXT = st.text("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 /-.:_", min_size=1, max_size=100)


def base_document(table: str) -> dict[str, Any]:
    commands: list[dict[str, Any]] = [{"add": {"table": {"family": "inet", "name": table}}}]
    commands += [{"add": {"chain": {"family": "inet", "table": table, "name": name}}} for name in TARGETS]
    commands += [lookup_set(table, name) for name in LOOKUP_SETS]
    for name, key in (*VERDICT_MAPS.items(), ("identities", "mark")):
        commands.append({"add": {"map": {"family": "inet", "table": table, "name": name, "type": key,
                                         "map": "verdict"}}})
    return {"nftables": commands}


def lookup_set(table: str, name: str) -> dict[str, Any]:
    types, interval = LOOKUP_SETS[name]
    spec = {"type": list(types) if len(types) > 1 else types[0], **({"flags": ["interval"]} if interval else {})}
    return {"add": {"set": {"family": "inet", "table": table, "name": name, **spec}}}


def chain(verb: str, table: str, name: str) -> dict[str, Any]:
    return {verb: {"chain": {"family": "inet", "table": table, "name": name}}}


def add_rule(table: str, name: str, statements: list[Any], comment: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"family": "inet", "table": table, "chain": name, "expr": statements}
    if comment is not None:
        body["comment"] = comment
    return {"add": {"rule": body}}


MARK = {"meta": {"key": "mark"}}


def mangle(operator: str, value: int) -> dict[str, Any]:
    """The mark set to itself under ``&`` a mask or ``|`` more bits."""
    return {"mangle": {"key": MARK, "value": {operator: [MARK, value]}}}


def lookup(name: str, source: bool) -> dict[str, Any]:
    """A match of ``name``'s key types against it, each address field the source or the
    destination address (the second address field the other one)."""
    types, _ = LOOKUP_SETS[name]
    fields = []
    for position, kind in enumerate(types):
        choices = KEYS[kind]
        fields.append(choices[(0 if source else 1) ^ (position if kind in (V4, V6) else 0)] if len(choices) > 1
                      else choices[0])
    left = fields[0] if len(fields) == 1 else {"concat": fields}
    return {"match": {"op": "==", "left": left, "right": f"@{name}"}}


def in_table(commands: list[dict[str, Any]], table: str) -> list[dict[str, Any]]:
    """``commands`` (written for any table) aimed at ``table``."""
    return json.loads(json.dumps(commands).replace('"table": "T"', f'"table": "{table}"'))


@pytest.fixture(scope="module")
def tables() -> Iterator[LibnftablesBackend]:
    with backend_in_a_node(base_document(BY_JSON), base_document(BY_BATCH)) as backend:
        yield backend


def batch_of(backend: LibnftablesBackend, commands: list[dict[str, Any]]) -> Any:
    listing = backend.list_table("inet", BY_BATCH) or {}
    return transaction_batch(commands, read_table(listing, family="inet", table=BY_BATCH).sets,
                             family="inet", table=BY_BATCH)


def reset(backend: LibnftablesBackend) -> None:
    for table in (BY_JSON, BY_BATCH):
        listing = backend.list_table("inet", table) or {"nftables": []}
        present = {item[kind]["name"] for item in listing["nftables"] for kind in ("chain", "set", "map")
                   if kind in item}
        commands = [chain("delete", table, name) for name in POOL if name in present]
        commands += [{"delete": {"set": {"family": "inet", "table": table, "name": name}}}
                     for name in CREATED if name in present]
        commands += [lookup_set(table, name) for name in LOOKUP_SETS if name not in present]
        backend.run({"nftables": commands})


def listed(backend: LibnftablesBackend, table: str) -> list[str]:
    """Every set, map, chain and rule as nft lists them (elements in a set's order), without
    handles and table names."""
    listing = backend.list_table("inet", table)
    assert listing is not None
    found = []
    for item in listing["nftables"]:
        for kind in ("set", "map", "chain", "rule"):
            if kind in item:
                body = {k: v for k, v in item[kind].items() if k not in ("handle", "table")}
                if "elem" in body:
                    body["elem"] = sorted(json.dumps(e, sort_keys=True) for e in body["elem"])
                found.append(json.dumps({kind: body}, sort_keys=True))
    return sorted(found)


def sent_both_ways(backend: LibnftablesBackend, commands: list[dict[str, Any]]) -> str | None:
    """``commands`` (for table "T") sent as JSON to one table and as a batch to the other."""
    batch = batch_of(backend, in_table(commands, BY_BATCH))
    return both_ways(backend, {"nftables": in_table(commands, BY_JSON)}, batch)


# -- the encoders' bytes against libnftables' ----------------------------------------------

POD_CHAIN = [
    chain("add", "T", "p1"),
    add_rule("T", "p1", [{"jump": {"target": "allow-v4"}}]),
    add_rule("T", "p1", [{"limit": {"rate": 10, "burst": 20, "per": "second"}},
                         {"log": {"prefix": "policyctl drop ingress x/b "}}]),
    add_rule("T", "p1", [{"counter": {"packets": 0, "bytes": 0}}, {"drop": None}],
             comment="x/allow isolates ingress policies.yaml:12"),
]

BYTES_CASES = {
    "a-pod-chain": POD_CHAIN,
    "an-audit-pod-chain-logging-to-a-group": [
        chain("add", "T", "p1"),
        add_rule("T", "p1", [{"goto": {"target": "allow-v4"}}]),
        add_rule("T", "p1", [{"limit": {"rate": 3, "burst": 1, "per": "minute"}},
                             {"log": {"prefix": "policyctl audit egress x/b ", "group": 65535}}]),
        add_rule("T", "p1", [{"counter": {"packets": 7, "bytes": 1 << 40}}, {"return": None}], comment="x"),
    ],
    "every-verdict-and-limit-unit": [
        chain("add", "T", "p1"),
        *(add_rule("T", "p1", [{"limit": {"rate": 1, "burst": 1, "per": per}}, {verdict: None}])
          for per, verdict in (("hour", "accept"), ("day", "continue"), ("week", "drop"), ("second", "return"))),
        add_rule("T", "p1", [{"log": {"group": 0}}]),
    ],
    "a-flush-and-a-delete": [chain("flush", "T", "other"), chain("delete", "T", "other")],
    "lookups-of-every-set-kind": [
        chain("add", "T", "p1"),
        *(add_rule("T", "p1", [lookup(name, source), {"counter": {"packets": 0, "bytes": 0}}, {"accept": None}],
                   comment=f"{name} {source}")
          for name in LOOKUP_SETS for source in (True, False)),
        *(add_rule("T", "p1", [{"vmap": {"key": KEYS[address][source], "data": f"@{name}"}}])
          for name, address in VERDICT_MAPS.items() for source in (0, 1)),
    ],
    "two-lookups-in-one-rule": [
        chain("add", "T", "p1"),
        add_rule("T", "p1", [lookup("v4", True), lookup("blocks-ports", False), {"accept": None}]),
        add_rule("T", "p1", [lookup("peer-ports-v6-interval", False), {"vmap": {"key": KEYS[V6][0],
                                                                               "data": "@ingress-v6"}}]),
    ],
    "the-marked-layout": [
        chain("add", "T", "p1"),
        add_rule("T", "p1", [lookup("peer-ports-interval", False), mangle("&", 0x0000FFFF),
                             {"counter": {"packets": 0, "bytes": 0}}, {"accept": None}], comment="ns/p ingress[0]"),
        add_rule("T", "p1", [lookup("v4", True), mangle("|", 0x00030000)]),
        add_rule("T", "p1", [{"vmap": {"key": {"&": [MARK, 0xFFFF0000]}, "data": "@identities"}}]),
        add_rule("T", "p1", [{"match": {"op": "==", "left": {"&": [MARK, 0xFFFF0000]}, "right": 0}},
                             {"jump": {"target": "p1"}}]),
        add_rule("T", "p1", [{"match": {"op": "!=", "left": {"&": [MARK, 0x0F0F0000]}, "right": 0}},
                             {"goto": {"target": "p1"}}]),
    ],
    "every-set-kind-created-with-elements-without-intervals": [
        created(name) for name, (spec, _) in CREATED.items() if "flags" not in spec],
    "every-set-kind-created-empty": [created(name, []) for name in CREATED],
    "a-set-re-created-with-intervals": [
        {"delete": {"set": {"family": "inet", "table": "T", "name": "v4"}}},
        {"add": {"set": {"family": "inet", "table": "T", "name": "v4", "type": V4, "flags": ["interval"]}}},
        chain("add", "T", "p1"), add_rule("T", "p1", [lookup("v4", True), {"accept": None}]),
    ],
    "set-and-map-deletes": [{"delete": {"set": {"family": "inet", "table": "T", "name": "blocks-any"}}},
                            {"delete": {"map": {"family": "inet", "table": "T", "name": "ingress-v6"}}}],
}


@pytest.mark.parametrize("commands", BYTES_CASES.values(), ids=BYTES_CASES.keys())
def test_the_encoders_send_the_bytes_libnftables_sends(tables: LibnftablesBackend, commands: list[Any]) -> None:
    reason = strace_missing()
    if reason is not None:
        pytest.skip(reason)
    reset(tables)
    ours = batch_of(tables, in_table(commands, BY_BATCH))
    assert ours is not None
    theirs = libnftables_messages(tables.netns, in_table(commands, BY_BATCH))
    assert [(ours.family, m.type, m.flags, without_set_ids(m.type, m.body)) for m in ours.messages] == theirs


# -- random transactions both ways -----------------------------------------------------------

VERDICTS = st.sampled_from([{"accept": None}, {"drop": None}, {"continue": None}, {"return": None}]) | st.builds(
    lambda verb, target: {verb: {"target": target}}, st.sampled_from(["jump", "goto"]), st.sampled_from(TARGETS))
STATEMENTS = st.one_of(
    st.builds(lambda p, b: {"counter": {"packets": p, "bytes": b}}, st.integers(0, 1 << 40), st.integers(0, 1 << 40)),
    st.builds(lambda r, b, per: {"limit": {"rate": r, "burst": b, "per": per}}, st.integers(1, 10**6),
              st.integers(1, 1000), st.sampled_from(["second", "minute", "hour", "day", "week"])),
    st.builds(lambda p: {"log": {"prefix": p}}, TEXT),
    st.builds(lambda p, g: {"log": {"prefix": p, "group": g}}, TEXT, st.integers(0, 65535)),
    st.builds(mangle, st.sampled_from(["&", "|"]), st.integers(0, 0xFFFFFFFF)),
)
MARKED_VMAPS = st.builds(lambda mask: {"vmap": {"key": {"&": [MARK, mask]}, "data": "@identities"}},
                         st.integers(0, 0xFFFFFFFF))


@st.composite
def rules(draw: st.DrawFn) -> tuple[list[Any], Any, str | None]:
    """A rule's statements, its final verdict or verdict map, and its comment; its lookups are
    of one family, as a rule that could match any packet's are."""
    family = draw(st.sampled_from([V4, V6]))
    lookups = st.builds(lookup, st.sampled_from(sorted(n for n, (t, _) in LOOKUP_SETS.items() if t[0] == family)),
                        st.booleans())
    vmaps = st.builds(lambda name, source: {"vmap": {"key": KEYS[family][source], "data": f"@{name}"}},
                      st.sampled_from(sorted(n for n, t in VERDICT_MAPS.items() if t == family)), st.integers(0, 1))
    statements = draw(st.lists(STATEMENTS | lookups, max_size=3))
    final = draw(st.none() | VERDICTS | vmaps | MARKED_VMAPS)
    return statements, final if statements or final else {"accept": None}, draw(st.none() | TEXT)


@st.composite
def transactions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Adds of pool chains with rules (a chain added again keeps its rules and gets more),
    flushes and deletes of pool chains, creations (with some of their pool's elements) and
    deletions of sets and maps, and elements added to them, any of which may or may not
    exist."""
    commands: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["add", "add", "flush", "delete", "create", "create", "unset", "elements"]))
        if action in ("create", "unset", "elements"):
            name = draw(st.sampled_from(sorted(CREATED)))
            chosen = draw(st.lists(st.sampled_from(CREATED[name][1]), unique_by=json.dumps, max_size=3))
            if action == "elements" and chosen:
                commands.append({"add": {"element": {"family": "inet", "table": "T", "name": name, "elem": chosen}}})
            elif action != "elements":
                commands.append(created(name, chosen, "add" if action == "create" else "delete"))
            continue
        name = draw(st.sampled_from(POOL))
        if action != "add":
            commands.append(chain(action, "T", name))
            continue
        commands.append(chain("add", "T", name))
        for statements, verdict, comment in draw(st.lists(rules(), max_size=4)):
            commands.append(add_rule("T", name, [*statements, *([verdict] if verdict else [])], comment))
    return commands or [chain("add", "T", POOL[0])]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(transactions(), min_size=1, max_size=4))
def test_random_chain_and_set_transactions_leave_equal_listings_both_ways(
    tables: LibnftablesBackend, steps: list[list[dict[str, Any]]]
) -> None:
    reset(tables)
    for commands in steps:
        if elements_of_absent_sets(tables, commands):
            assert batch_of(tables, in_table(commands, BY_BATCH)) is None
            continue
        sent_both_ways(tables, commands)
        assert listed(tables, BY_BATCH) == listed(tables, BY_JSON)


def elements_of_absent_sets(backend: LibnftablesBackend, commands: list[dict[str, Any]]) -> bool:
    """Whether a command adds elements to a set neither the table nor an earlier command has
    (the encoders know a set's type only from those, so such a transaction is libnftables')."""
    listing = backend.list_table("inet", BY_BATCH) or {"nftables": []}
    known = {item[kind]["name"] for item in listing["nftables"] for kind in ("set", "map") if kind in item}
    for command in commands:
        (verb, body), = command.items()
        (kind, target), = body.items()
        if kind in ("set", "map"):
            (known.add if verb == "add" else known.discard)(target["name"])
        elif kind == "element" and target["name"] not in known:
            return True
    return False


REFUSED = {
    "a-jump-to-a-missing-chain": ([chain("add", "T", "p1"), add_rule("T", "p1", [{"jump": {"target": "nowhere"}}])],
                                  1),
    "a-rule-in-a-missing-chain": ([chain("add", "T", "p1"), add_rule("T", "p3", [{"accept": None}])], 1),
    "a-delete-of-a-missing-chain": ([chain("add", "T", "p1"), chain("delete", "T", "p2")], 1),
    "a-flush-of-a-missing-chain": ([chain("flush", "T", "p3")], 0),
    "a-delete-of-a-set-still-looked-up": ([chain("add", "T", "p1"), add_rule("T", "p1", [lookup("v4", True)]),
                                           {"delete": {"set": {"family": "inet", "table": "T", "name": "v4"}}}], 2),
    "a-delete-of-a-chain-still-jumped-to": ([chain("add", "T", "p1"),
                                             add_rule("T", "p1", [{"jump": {"target": "other"}}]),
                                             chain("delete", "T", "other")], 2),
}


@pytest.mark.parametrize(("commands", "index"), REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_batch_fails_as_libnftables_json_does_names_its_command_and_changes_nothing(
    tables: LibnftablesBackend, commands: list[dict[str, Any]], index: int
) -> None:
    reset(tables)
    before = listed(tables, BY_BATCH)
    assert sent_both_ways(tables, commands) is not None
    assert listed(tables, BY_BATCH) == listed(tables, BY_JSON) == before
    with pytest.raises(NftCommandError) as refused:
        tables.commit_batch(batch_of(tables, in_table(commands, BY_BATCH)))
    assert refused.value.index == index


@pytest.mark.parametrize("command", [
    {"add": {"chain": {"family": "inet", "table": "T", "name": "base", "type": "filter", "hook": "input", "prio": 0,
                       "policy": "accept"}}},
    {"add": {"chain": {"family": "inet", "table": "T", "name": "p2", "comment": "libnftables drops it"}}},
    add_rule("T", "other", [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                                       "right": "10.0.0.1"}}, {"accept": None}]),
    add_rule("T", "other", [{"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                                       "right": "@v4"}}]),
    add_rule("T", "other", [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                                       "right": "@absent"}}]),
    add_rule("T", "other", [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}},
                                       "right": "@v4"}}]),
    add_rule("T", "other", [{"match": {"op": "==", "left": {"concat": [
        {"meta": {"key": "l4proto"}}, {"payload": {"protocol": "ip", "field": "saddr"}}]}, "right": "@v4"}}]),
    add_rule("T", "other", [{"vmap": {"key": {"&": [MARK, 4294901760]}, "data": "@ingress-v4"}}]),
    add_rule("T", "other", [lookup("v4", True), {"mangle": {"key": MARK, "value": 1}}]),
    add_rule("T", "other", [{"match": {"op": "<", "left": {"&": [MARK, 0xFF]}, "right": 3}}]),
    add_rule("T", "other", [{"match": {"op": "==", "left": {"|": [MARK, 0xFF]}, "right": 0}}]),
    add_rule("T", "other", [lookup("v4", True), lookup("v6", True)]),
    {"insert": {"rule": {"family": "inet", "table": "T", "chain": "other", "expr": [{"accept": None}]}}},
    add_rule("T", "other", [{"log": {"prefix": "x", "level": "info"}}]),
    add_rule("T", "other", [{"limit": {"rate": 1, "burst": 1, "per": "second", "rate_unit": "bytes"}}]),
    add_rule("T", "other", [{"limit": {"rate": 1, "burst": 0, "per": "second"}}]),
    add_rule("T", "other", [{"counter": {"packets": -1, "bytes": 0}}]),
    add_rule("T", "other", []),
    {"add": {"rule": {"family": "inet", "table": "T", "chain": "other", "expr": [{"accept": None}], "index": 0}}},
    {"delete": {"rule": {"family": "inet", "table": "T", "chain": "other", "handle": 4}}},
    {"add": {"set": {"family": "inet", "table": "T", "name": "s", "type": "inet_service"}}},
    {"add": {"set": {"family": "inet", "table": "T", "name": "s", "type": "ipv4_addr", "flags": ["timeout"]}}},
    {"add": {"map": {"family": "inet", "table": "T", "name": "s", "type": "ipv4_addr", "map": "mark"}}},
], ids=["a-base-chain", "a-chain-comment", "a-match-of-a-value", "a-lookup-negated", "a-lookup-of-an-absent-set",
        "a-lookup-of-another-type", "a-key-not-led-by-an-address", "a-masked-mark-vmap-keyed-by-addresses",
        "a-mark-set-to-a-value", "a-mark-compared-by-order", "a-mark-with-bits-added-compared",
        "lookups-of-two-families", "an-insert", "a-log-level", "a-byte-limit",
        "a-burst-of-0", "a-negative-counter", "no-statement", "a-position", "a-rule-delete", "a-set-of-ports",
        "a-set-with-timeouts", "a-map-to-marks"])
def test_a_transaction_with_a_command_outside_the_vocabulary_goes_to_libnftables(
    tables: LibnftablesBackend, command: dict[str, Any]
) -> None:
    assert batch_of(tables, in_table([*POD_CHAIN, command], BY_BATCH)) is None
    assert batch_of(tables, in_table(POD_CHAIN, BY_BATCH)) is not None


# -- through the enforcer, with packets ------------------------------------------------------

ISOLATE_B = policy("x/allow", {"pod": "b"}, ingress=[rule(pod_peer({"pod": "a"}), ports=[port(80)])])
NODE, POD_A, POD_B = CLUSTER_OBJECTS
#: Another replica of b, on the node without a namespace of its own: with it, b's sets and maps
#: exist before b comes, as they do for a replica added to an app already on the node.
TWIN_B = pod("x/b-twin", {"pod": "b"}, node="node-1", ips=["10.77.2.9"])
#: A replica of b that one more policy isolates: b's drop comment differs from its twin's, so b
#: comes and goes with a pod chain of its own.
TWIN_APART = (pod("x/b-twin", {"pod": "b", "twin": "yes"}, node="node-1", ips=["10.77.2.9"]),
              policy("x/twin", {"twin": "yes"}, ingress=[]))


def never() -> Any:
    raise AssertionError("the delta was not applied from the trusted state")


def drops_counted(backend: LibnftablesBackend) -> int:
    """Packets counted by the drop rules of the pod chains."""
    listing = backend.list_table("inet", "policyctl") or {"nftables": []}
    counted = 0
    for item in listing["nftables"]:
        statements = item.get("rule", {}).get("expr", [])
        if {"drop": None} in statements:
            counted += sum(s["counter"]["packets"] for s in statements if "counter" in s)
    return counted


@pytest.mark.parametrize(
    ("twin", "own_chain"),
    [pytest.param((TWIN_B,), False, id="joins-its-twins-chain"), pytest.param(TWIN_APART, True, id="own-chain")],
)
def test_a_local_pod_added_and_deleted_goes_as_one_batch_each_and_its_chain_decides_packets(
    node: Node, backend: LibnftablesBackend, twin: tuple[Any, ...], own_chain: bool
) -> None:
    without_b = compile_node(cluster(NODE, POD_A, *twin, ISOLATE_B), "node-1")
    with_b = compile_node(cluster(NODE, POD_A, POD_B, *twin, ISOLATE_B), "node-1")
    node.serve(node.b, 80)
    node.serve(node.b, 81)
    enforcer = Enforcer(backend)
    enforcer.apply(to_document(without_b))
    assert node.connects(node.a, node.B_IP, 81)

    report = enforcer.apply_delta(diff(without_b, with_b), desired=never)
    assert report.applied and enforcer.netlink_batches == 1
    assert any("chain" in c.get("add", {}) for c in report.transaction.commands) == own_chain
    assert Enforcer(backend).plan(to_document(with_b)).empty
    assert node.connects(node.a, node.B_IP, 80)
    assert not node.connects(node.a, node.B_IP, 81, timeout=0.5)
    assert drops_counted(backend) >= 1

    report = enforcer.apply_delta(diff(with_b, without_b), desired=never)
    assert report.applied and enforcer.netlink_batches == 2
    assert Enforcer(backend).plan(to_document(without_b)).empty
    assert node.connects(node.a, node.B_IP, 81)


A_TO_B = policy("x/to-b", {"pod": "a"}, egress=[rule(pod_peer({"pod": "b"}), ports=[port(443)])])


def test_the_only_pod_of_a_peer_identity_takes_and_brings_its_sets_chains_and_rules_in_one_batch(
    backend: LibnftablesBackend,
) -> None:
    """b is the only member of the identity a may reach: its deletion deletes that identity's
    set and chain and rewrites the rules that read them, its return creates them again; each
    is one batch and leaves what a full apply would."""
    with_b = compile_node(cluster(NODE, POD_A, POD_B, A_TO_B), "node-1")
    without_b = compile_node(cluster(NODE, POD_A, A_TO_B), "node-1")
    enforcer = Enforcer(backend)
    enforcer.apply(to_document(with_b))
    report = enforcer.apply_delta(diff(with_b, without_b), desired=never)
    kinds = {(verb, kind) for c in report.transaction.commands for verb, body in c.items() for kind in body}
    assert {("delete", "set"), ("delete", "chain")} <= kinds
    assert report.applied and enforcer.netlink_batches == 1
    assert Enforcer(backend).plan(to_document(without_b)).empty
    report = enforcer.apply_delta(diff(without_b, with_b), desired=never)
    kinds = {(verb, kind) for c in report.transaction.commands for verb, body in c.items() for kind in body}
    assert {("add", "set"), ("add", "chain"), ("add", "rule")} <= kinds
    assert report.applied and enforcer.netlink_batches == 2
    assert Enforcer(backend).plan(to_document(with_b)).empty


def test_a_refused_pod_chain_batch_names_its_command_and_the_next_apply_reads_the_kernel(
    backend: LibnftablesBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod chain deleted by hand (with the dispatch entry that jumps to it) makes the pod
    delete's flush of it fail: the batch is refused whole, its command named from the kernel's
    answer, not from dry runs."""
    with_b = compile_node(cluster(NODE, POD_A, POD_B, *TWIN_APART, ISOLATE_B), "node-1")
    without_b = compile_node(cluster(NODE, POD_A, *TWIN_APART, ISOLATE_B), "node-1")
    enforcer = Enforcer(backend)
    enforcer.apply(to_document(with_b))
    plan = Enforcer(backend).plan(to_document(without_b))
    first = plan.commands[0]
    assert "flush" in first
    gone = first["flush"]["chain"]["name"]
    entries = [dict(c) for c in plan.commands if "element" in c.get("delete", {}) and gone in json.dumps(c)]
    assert entries
    backend.run({"nftables": [*entries, dict(first), chain("delete", "policyctl", gone)]})
    kernel = Enforcer(backend).current()
    monkeypatch.setattr(backend, "check", never)
    with pytest.raises(NftApplyError) as refused:
        enforcer.apply_delta(diff(with_b, without_b), desired=never)
    assert refused.value.index == 0 and refused.value.command == first
    assert Enforcer(backend).current() == kernel and enforcer.netlink_batches == 0
    enforcer.apply_delta(diff(with_b, without_b), desired=lambda: to_document(without_b))
    assert Enforcer(backend).plan(to_document(without_b)).empty
