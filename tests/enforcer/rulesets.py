"""Hand-written desired rulesets in the ``nft -j list table`` object format the compiler
emits: an ingress dispatch verdict map keyed by destination pod, a concatenated interval set
of allowed (source CIDR . destination . port), a plain set of local pods, a regular chain with
policy comments and counters, and a postrouting base chain at srcnat - 5."""

from __future__ import annotations

import ipaddress
from typing import Any

FAMILY = "inet"


def _prefix(cidr: str) -> dict[str, Any]:
    net = ipaddress.ip_network(cidr)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def ruleset(
    *,
    table: str = "policyctl",
    isolated: tuple[str, ...] = (),
    allowed: tuple[tuple[str, str, int], ...] = (),
    local_pods: tuple[str, ...] = (),
    audit: bool = False,
    extra_rules: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """``isolated`` destination pods accept only ``allowed`` (source CIDR, destination,
    TCP port) triples; ``audit`` counts what would be dropped and lets it pass."""
    base = {"family": FAMILY, "table": table}
    deny = [{"counter": None}, {"accept": None} if audit else {"drop": None}]
    objects: list[dict[str, Any]] = [
        {"table": {"family": FAMILY, "name": table}},
        {"set": {**base, "name": "local_pods", "type": "ipv4_addr", "elem": sorted(local_pods)}},
        {
            "set": {
                **base,
                "name": "allow_in",
                "type": ["ipv4_addr", "ipv4_addr", "inet_service"],
                "flags": ["interval"],
                "elem": [{"concat": [_prefix(s), d, p]} for s, d, p in allowed],
            }
        },
        {
            "map": {
                **base,
                "name": "ingress_dispatch",
                "type": "ipv4_addr",
                "map": "verdict",
                "elem": [[d, {"jump": {"target": "ingress"}}] for d in isolated],
            }
        },
        {"chain": {**base, "name": "ingress"}},
        {
            "chain": {
                **base,
                "name": "postrouting",
                "type": "filter",
                "hook": "postrouting",
                "prio": 95,
                "policy": "accept",
            }
        },
        {
            "rule": {
                **base,
                "chain": "ingress",
                "comment": "x/allow ingress[0]",
                "expr": [
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "concat": [
                                    {"payload": {"protocol": "ip", "field": "saddr"}},
                                    {"payload": {"protocol": "ip", "field": "daddr"}},
                                    {"payload": {"protocol": "tcp", "field": "dport"}},
                                ]
                            },
                            "right": "@allow_in",
                        }
                    },
                    {"counter": None},
                    {"accept": None},
                ],
            }
        },
        {"rule": {**base, "chain": "ingress", "comment": "x/default-deny ingress", "expr": deny}},
        {
            "rule": {
                **base,
                "chain": "postrouting",
                "expr": [
                    {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
                    {"accept": None},
                ],
            }
        },
        {
            "rule": {
                **base,
                "chain": "postrouting",
                "expr": [
                    {"vmap": {"key": {"payload": {"protocol": "ip", "field": "daddr"}}, "data": "@ingress_dispatch"}}
                ],
            }
        },
    ]
    objects.extend({"rule": {**base, **r}} for r in extra_rules)
    return {"nftables": objects}
