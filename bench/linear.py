"""The baseline ruleset: the same policies as an iptables-style linear rule list.

iptables-based enforcers (kube-router, Calico's iptables mode before ipsets) evaluate one rule
per (peer address, port) in sequence, and dispatch to a pod's chain through one rule per local
pod. This module rewrites a compiled libnftables document into exactly that shape, so the data
plane can be measured against the layout the compiler avoids:

* every verdict-map dispatch (``ip saddr vmap @egress-v4``) becomes one ``ip saddr A jump
  CHAIN`` rule per map element, in the map's order;
* every set lookup (``ip saddr . meta l4proto . th dport @ap4-...``) becomes one rule per set
  element matching each field of the element in turn, with the lookup rule's verdict;
* sets and maps that were expanded are left out; the node's own address sets stay.

Pure: a document in, a document out; what is allowed is unchanged (the same elements, the same
verdicts, the same chain order), only the per-packet cost differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KEPT_SETS = ("node-v4", "node-v6")


def _elements(document: Mapping[str, Any]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for command in document["nftables"]:
        for kind in ("set", "map"):
            if kind in command:
                found["@" + command[kind]["name"]] = list(command[kind].get("elem", []))
    return found


def _fields(left: Any) -> list[Any]:
    return list(left["concat"]) if isinstance(left, Mapping) and "concat" in left else [left]


def _values(element: Any) -> list[Any]:
    if isinstance(element, Mapping) and "elem" in element:
        element = element["elem"]["val"]
    return list(element["concat"]) if isinstance(element, Mapping) and "concat" in element else [element]


def _expand(rule: Mapping[str, Any], sets: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    exprs = rule["expr"]
    for position, expr in enumerate(exprs):
        match = expr.get("match") if isinstance(expr, Mapping) else None
        if match and isinstance(match.get("right"), str) and match["right"].startswith("@"):
            name = match["right"]
            if name[1:] in KEPT_SETS:
                continue
            rest = exprs[position + 1:]
            out = []
            for element in sets.get(name, []):
                matches = [
                    {"match": {"op": "==", "left": key, "right": value}}
                    for key, value in zip(_fields(match["left"]), _values(element))
                ]
                out.append({**rule, "expr": [*exprs[:position], *matches, *rest]})
            return out
        vmap = expr.get("vmap") if isinstance(expr, Mapping) else None
        if vmap:
            return [
                {
                    **rule,
                    "expr": [
                        *exprs[:position],
                        {"match": {"op": "==", "left": vmap["key"], "right": address}},
                        verdict,
                    ],
                }
                for address, verdict in sets.get(vmap["data"], [])
            ]
    return [dict(rule)]


def linear_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """The compiled ``document`` with every set lookup and verdict map unrolled into rules."""
    sets = _elements(document)
    out: list[dict[str, Any]] = []
    for command in document["nftables"]:
        if "set" in command and command["set"]["name"] not in KEPT_SETS:
            continue
        if "map" in command:
            continue
        if "rule" in command:
            out.extend({"rule": rule} for rule in _expand(command["rule"], sets))
        else:
            out.append(dict(command))
    return {"nftables": out}


def rule_count(document: Mapping[str, Any]) -> int:
    return sum(1 for command in document["nftables"] if "rule" in command)
