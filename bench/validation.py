"""What a per-pod event costs the kernel with jumping peer maps, and with data peer maps.

nf_tables re-validates the chain graph on every commit that adds a rule or a set element with
a ``jump`` or ``goto`` verdict: it walks every chain reachable from the base chains and, for
every verdict-map lookup on the way, every element of that map. policyctl's peer maps map each
peer pod address to the chain of its identity (``docs/ruleset.md``), so at 100k pods every pod
event commits a jump element (a local pod's dispatch entry, or a peer's map entry) and pays for
a walk through ~85k elements. The alternative the issue tracker names maps addresses to
identity *numbers* (data, which validation skips) and finds the identity chain in a small
verdict map keyed by that number.

This measures both layouts on a synthetic table of the 100k node's size, in a throwaway
namespace, beside the floor (one element into a plain set of the same table, same run):

* ``verdict``: ``ip saddr vmap @peers`` (peer address -> jump identity chain), as shipped;
* ``data``: ``meta mark set ip saddr map @peers`` (peer address -> number), then
  ``meta mark vmap @identities`` (number -> jump identity chain). nft 1.0.6 accepts a map's
  result only in a statement: neither in a concatenation nor as the key of another map (both
  syntaxes refuse), so the number has to pass through a packet field, and the mark is the only
  one that is free of side effects. Which mark bits policyctl may claim is the open decision.

Run: ``python -m policyctl.bench.validation [--peers 85000] [--identities 1000]`` (root). JSON
figures on stdout.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

from policyctl.bench.figures import Figure, print_report, quantile, timed
from policyctl.bench.run import throwaway_netns
from policyctl.enforcer.backend import LibnftablesBackend

TABLE = "pcvalidation"
LAYOUTS = ("verdict", "data")
PEERS = ipaddress.IPv4Address("10.0.0.0")
EVENTS = ipaddress.IPv4Address("10.200.0.0")
Command = dict[str, Any]


def _payload(*commands: Command) -> dict[str, Any]:
    return {"nftables": list(commands)}


def _saddr() -> dict[str, Any]:
    return {"payload": {"protocol": "ip", "field": "saddr"}}


def _mark() -> dict[str, Any]:
    return {"meta": {"key": "mark"}}


def table(layout: str, peers: int, identities: int) -> list[Command]:
    """The table of one layout: ``identities`` identity chains (one set lookup each), a peer
    map of ``peers`` addresses spread over them, an empty dispatch map and a plain set, both
    read from the base chain as policyctl's are."""
    t = {"family": "inet", "table": TABLE}
    commands: list[Command] = [{"add": {"table": {"family": "inet", "name": TABLE}}}]
    for i in range(identities):
        commands.append({"add": {"set": t | {"name": f"s{i}", "type": ["ipv4_addr", "inet_service"]}}})
        commands.append({"add": {"chain": t | {"name": f"id{i}"}}})
        key = {"concat": [{"payload": {"protocol": "ip", "field": "daddr"}},
                          {"payload": {"protocol": "th", "field": "dport"}}]}
        commands.append({"add": {"rule": t | {"chain": f"id{i}", "expr": [
            {"match": {"op": "==", "left": key, "right": f"@s{i}"}}, {"accept": None}]}}})
    commands.append({"add": {"set": t | {"name": "plain", "type": "ipv4_addr"}}})
    commands.append({"add": {"map": t | {"name": "dispatch", "type": "ipv4_addr", "map": "verdict"}}})
    if layout == "verdict":
        commands.append({"add": {"map": t | {"name": "peers", "type": "ipv4_addr", "map": "verdict"}}})
        elements: list[list[Any]] = [
            [str(PEERS + j), {"jump": {"target": f"id{j % identities}"}}] for j in range(peers)
        ]
        lookup = [{"vmap": {"key": _saddr(), "data": "@peers"}}]
    else:
        commands.append({"add": {"map": t | {"name": "peers", "type": "ipv4_addr", "map": "mark"}}})
        commands.append({"add": {"map": t | {"name": "identities", "type": "mark", "map": "verdict"}}})
        commands.append({"add": {"element": t | {"name": "identities", "elem": [
            [i, {"jump": {"target": f"id{i}"}}] for i in range(identities)]}}})
        elements = [[str(PEERS + j), j % identities] for j in range(peers)]
        lookup = [{"mangle": {"key": _mark(), "value": {"map": {"key": _saddr(), "data": "@peers"}}}},
                  {"vmap": {"key": _mark(), "data": "@identities"}}]
    for start in range(0, peers, 20_000):
        commands.append({"add": {"element": t | {"name": "peers", "elem": elements[start:start + 20_000]}}})
    commands.append({"add": {"chain": t | {"name": "allow"}}})
    commands.append({"add": {"rule": t | {"chain": "allow", "expr": lookup}}})
    commands.append({"add": {"chain": t | {"name": "base", "type": "filter", "hook": "forward", "prio": 0,
                                           "policy": "accept"}}})
    commands.append({"add": {"rule": t | {"chain": "base", "expr": [
        {"match": {"op": "==", "left": _saddr(), "right": "@plain"}}, {"jump": {"target": "allow"}}]}}})
    commands.append({"add": {"rule": t | {"chain": "base", "expr": [
        {"vmap": {"key": {"payload": {"protocol": "ip", "field": "daddr"}}, "data": "@dispatch"}}]}}})
    return commands


def events(layout: str) -> dict[str, Callable[[ipaddress.IPv4Address], Any]]:
    """One element of each kind a pod event commits, by what it is."""
    t = {"family": "inet", "table": TABLE}
    peer_data: Any = {"jump": {"target": "id1"}} if layout == "verdict" else 1
    return {
        "floor": lambda a: {"element": t | {"name": "plain", "elem": [str(a)]}},
        "local_pod": lambda a: {"element": t | {"name": "dispatch", "elem": [[str(a), {"jump": {"target": "id1"}}]]}},
        "peer_pod": lambda a: {"element": t | {"name": "peers", "elem": [[str(a), peer_data]]}},
    }


def measure(peers: int, identities: int, samples: int) -> list[Figure]:
    figures: list[Figure] = []
    for layout in LAYOUTS:
        with throwaway_netns() as ns:
            backend = LibnftablesBackend(netns=ns)
            backend.run(_payload(*table(layout, peers, identities)))
            seconds: dict[str, list[float]] = {}
            for kind, element in events(layout).items():
                for k in range(samples):
                    address = EVENTS + k
                    spent, _ = timed(lambda: backend.run(_payload({"add": element(address)})))
                    seconds.setdefault(kind, []).append(spent)
                    delete = element(address)
                    if kind != "floor":
                        delete["element"]["elem"] = [str(address)]
                    backend.run(_payload({"delete": delete}))
            backend.close()
        floor = seconds["floor"]
        for kind in ("floor", "local_pod", "peer_pod"):
            for name, q in (("p50", 0.5), ("p99", 0.99)):
                base = None if kind == "floor" else quantile(floor, q)
                figures.append(Figure(
                    f"validation.{layout}.{kind}.{name}", "s", quantile(seconds[kind], q), baseline=base,
                    baseline_name="" if base is None else "one element into a plain set of the same table, same run",
                    detail=f"{samples} one-element transactions; {peers} peer addresses over {identities} identities"))
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m policyctl.bench.validation", description=__doc__.split("\n")[0])
    parser.add_argument("--peers", type=int, default=85_000)
    parser.add_argument("--identities", type=int, default=1_000)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args(argv)
    figures = measure(args.peers, args.identities, args.samples)
    print_report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
