"""Addresses of the pods and nodes of a probe case, and ``{{ip4:ns/pod}}`` substitution.

The spec leaves unpinned addresses to the engine ("pod CIDRs per node, per family") and reports
them in the output; every engine that takes its clusters from ``probecases.cases`` gets these,
so all three answer about the same addresses. Node ``i`` of the model's ``nodes`` (from 1) has
the pod CIDRs ``10.244.i.0/24`` and ``fd00:10:244:i::/64`` (hosts from ``.2``) and the node
addresses ``172.18.0.(1+i)`` and ``fc00:f853:ccd:e793::(1+i)``, which its hostNetwork pods
share. Assignment follows pod order and skips every pinned address, so it is deterministic and
never hands out an address twice.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from policyctl.policy.model import Family, IPAddress, IPNetwork

PathT = tuple[str | int, ...]

_SUBSTITUTION = re.compile(r"\{\{\s*ip([46])\s*:\s*([^}\s]+)\s*\}\}")


def assign_addresses(
    pods: Sequence[tuple[str, str, bool, tuple[IPAddress, ...]]],
    *,
    families: Sequence[Family],
    nodes: Sequence[str],
    node_pins: Mapping[str, Sequence[IPAddress]] | None = None,
) -> tuple[dict[str, dict[Family, IPAddress]], list[tuple[str, str]]]:
    """Addresses of ``(key, node, host_network, pinned)`` pods, one per family: pinned ones
    kept, hostNetwork pods their node's, the rest the next free host of their node's pod CIDR
    in the order given. Also returns ``(key, problem)`` for pinned addresses of a family the
    cluster does not have."""
    taken = {a for _, _, _, pinned in pods for a in pinned}
    next_host: dict[tuple[str, Family], int] = {}
    result: dict[str, dict[Family, IPAddress]] = {}
    problems: list[tuple[str, str]] = []
    for key, node, host_network, pinned in pods:
        node_index = list(nodes).index(node) + 1
        assigned: dict[Family, IPAddress] = {}
        for family in families:
            chosen = next((a for a in pinned if Family.of(a) is family), None)
            if chosen is not None:
                assigned[family] = chosen
            elif host_network:
                assigned[family] = node_address(node, node_index, family, node_pins or {})
            else:
                network = pod_network(node_index, family)
                host = next_host.get((node, family), 2)
                while network[host] in taken:
                    host += 1
                next_host[(node, family)] = host + 1
                assigned[family] = network[host]
        for address in pinned:
            if Family.of(address) not in families:
                problems.append((key, f"{address} is {Family.of(address).value}, not a family of this cluster"))
        result[key] = assigned
    return result, problems


def substitute_addresses(
    value: Any, addresses: Mapping[str, Mapping[Family, IPAddress]]
) -> tuple[Any, list[tuple[PathT, str]]]:
    """``{{ip4:ns/pod}}`` and ``{{ip6:ns/pod}}`` in every string of ``value`` replaced by the
    pod's address; returns the new value and, for each reference that does not resolve, the
    path (relative to ``value``) and the reason."""
    problems: list[tuple[PathT, str]] = []

    def walk(item: Any, path: PathT) -> Any:
        if isinstance(item, str):
            return _SUBSTITUTION.sub(lambda m: replace(m, path), item)
        if isinstance(item, Mapping):
            return {k: walk(v, (*path, k)) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, (*path, i)) for i, v in enumerate(item)]
        return item

    def replace(match: re.Match[str], path: PathT) -> str:
        family = Family.IPV4 if match.group(1) == "4" else Family.IPV6
        key = match.group(2)
        if key not in addresses:
            problems.append((path, f"{match.group(0)}: no pod {key!r} in this case"))
            return match.group(0)
        address = addresses[key].get(family)
        if address is None:
            problems.append((path, f"{match.group(0)}: pod {key} has no {family.value} address"))
            return match.group(0)
        return str(address)

    return walk(value, ()), problems


def pod_network(node_index: int, family: Family) -> IPNetwork:
    if family is Family.IPV4:
        return ipaddress.ip_network(f"10.244.{node_index}.0/24")
    return ipaddress.ip_network(f"fd00:10:244:{node_index:x}::/64")


def node_address(node: str, node_index: int, family: Family, pins: Mapping[str, Sequence[IPAddress]]) -> IPAddress:
    """A node's address in ``family``: the one the case pins, else the plan's."""
    pinned = next((a for a in pins.get(node, ()) if Family.of(a) is family), None)
    return pinned if pinned is not None else node_addresses(node_index, (family,))[0]


def node_addresses(node_index: int, families: Sequence[Family]) -> tuple[IPAddress, ...]:
    by_family: dict[Family, Callable[[], IPAddress]] = {
        Family.IPV4: lambda: ipaddress.ip_address(f"172.18.0.{1 + node_index}"),
        Family.IPV6: lambda: ipaddress.ip_address(f"fc00:f853:ccd:e793::{1 + node_index:x}"),
    }
    return tuple(by_family[f]() for f in families)
