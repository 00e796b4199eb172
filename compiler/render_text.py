"""Render a :class:`~ruleset.Ruleset` in ``nft`` syntax, for people.

The text is what ``nft list table`` would print for the same table, plus the chain comments
the JSON cannot carry (as ``#`` lines naming the pod and direction). ``nft -f`` accepts it too,
but the JSON is what the enforcer applies.
"""

from __future__ import annotations

import json

from .render_json import field_value
from .ruleset import (
    Chain,
    Counter,
    CtStateIn,
    Goto,
    Icmpv6TypeRange,
    Jump,
    Limit,
    Log,
    Lookup,
    NotLocalAddress,
    Rule,
    Ruleset,
    Set,
    Statement,
    TcpNotSyn,
    Verdict,
    VerdictMap,
    MarkSet,
    MarkTest,
    VmapLookup,
)

PRIORITY_NAMES = {95: "srcnat - 5", 96: "srcnat - 4"}


def _quote(text: str) -> str:
    return json.dumps(text)


def _value(v: object) -> str:
    if isinstance(v, dict):
        if "prefix" in v:
            return f"{v['prefix']['addr']}/{v['prefix']['len']}"
        if "range" in v:
            return f"{v['range'][0]}-{v['range'][1]}"
        if "concat" in v:
            return " . ".join(_value(x) for x in v["concat"])
    return str(v)


def _element(s: Set, element: tuple[object, ...]) -> str:
    return " . ".join(_value(field_value(t, f)) for t, f in zip(s.types, element))  # type: ignore[arg-type]


def _set(s: Set) -> list[str]:
    lines = [f"\tset {s.name} {{", f"\t\ttype {' . '.join(t.value for t in s.types)}"]
    if s.interval:
        lines.append("\t\tflags interval")
    if s.comment:
        lines.append(f"\t\tcomment {_quote(s.comment)}")
    if s.elements:
        items = [_element(s, e) for e in s.elements]
        lines.append("\t\telements = { " + ",\n\t\t\t     ".join(items) + " }")
    lines.append("\t}")
    return lines


def _map(m: VerdictMap) -> list[str]:
    lines = [f"\tmap {m.name} {{", f"\t\ttype {m.key.value} : verdict"]
    if m.comment:
        lines.append(f"\t\tcomment {_quote(m.comment)}")
    if m.elements:
        items = [f"{a:#010x} : jump {j.target}" if isinstance(a, int) else f"{a} : jump {j.target}"
                 for a, j in m.elements]
        lines.append("\t\telements = { " + ",\n\t\t\t     ".join(items) + " }")
    lines.append("\t}")
    return lines


def statement(s: Statement) -> str:
    if isinstance(s, CtStateIn):
        return "ct state " + ",".join(s.states)
    if isinstance(s, Icmpv6TypeRange):
        return f"icmpv6 type {s.low}-{s.high}"
    if isinstance(s, TcpNotSyn):
        return "tcp flags != syn / fin,syn,rst,ack"
    if isinstance(s, NotLocalAddress):
        return f"fib {'saddr' if s.source else 'daddr'} type != local"
    if isinstance(s, Lookup):
        return f"{' . '.join(k.value for k in s.keys)} @{s.set}"
    if isinstance(s, VmapLookup):
        mask = f" & {s.mask:#010x}" if s.mask is not None else ""
        return f"{s.key.value}{mask} vmap @{s.map}"
    if isinstance(s, MarkSet):
        operation = f"& {s.keep:#010x}" if s.bits == 0 else f"| {s.bits:#010x}"
        return f"meta mark set meta mark {operation}"
    if isinstance(s, MarkTest):
        return f"meta mark & {s.mask:#010x} {'==' if s.zero else '!='} 0"
    if isinstance(s, Counter):
        return "counter"
    if isinstance(s, Limit):
        return f"limit rate {s.rate}/{s.per} burst {s.burst} packets"
    if isinstance(s, Log):
        group = f" group {s.group}" if s.group is not None else ""
        return f"log prefix {_quote(s.prefix)}{group}"
    if isinstance(s, Jump):
        return f"jump {s.target}"
    if isinstance(s, Goto):
        return f"goto {s.target}"
    if isinstance(s, Verdict):
        return s.value
    raise TypeError(f"unknown statement {s!r}")


def _rule(r: Rule) -> str:
    text = " ".join(statement(s) for s in r.statements)
    return f"\t\t{text}" + (f" comment {_quote(r.comment)}" if r.comment else "")


def _chain(c: Chain) -> list[str]:
    lines = [f"\t# {c.comment}"] if c.comment else []
    lines.append(f"\tchain {c.name} {{")
    if c.is_base:
        assert c.hook is not None and c.priority is not None and c.policy is not None
        priority = PRIORITY_NAMES.get(c.priority, str(c.priority)) if c.hook.value == "postrouting" else str(c.priority)
        lines.append(f"\t\ttype filter hook {c.hook.value} priority {priority}; policy {c.policy.value};")
    lines += [_rule(r) for r in c.rules]
    lines.append("\t}")
    return lines


def render_text(ruleset: Ruleset) -> str:
    """The table in nft syntax; byte-identical for equal rulesets."""
    header = f"# node {ruleset.node}, mode {ruleset.mode.value}, {ruleset.element_count} elements"
    blocks = [[header, f"table {ruleset.family} {ruleset.table} {{"]]
    blocks += [_set(s) for s in ruleset.sets]
    blocks += [_map(m) for m in ruleset.maps]
    blocks += [_chain(c) for c in ruleset.chains]
    lines = blocks[0] + [line for block in blocks[1:] for line in block + [""]]
    if lines[-1] == "":
        lines.pop()
    return "\n".join(lines + ["}", ""])
