"""Matching a ``NetworkPolicyPort`` against a connection's protocol and destination port.

The API rules implemented here (``NetworkPolicyPort``):

* ``protocol`` "(TCP, UDP, or SCTP) which traffic must match. If not specified, this field
  defaults to TCP" (the loader has applied the default).
* ``port`` "can either be a numerical or named port on a pod. If this field is not provided,
  this matches all port names and numbers. If present, only traffic on the specified protocol
  AND port will be matched."
* ``endPort`` "indicates that the range of ports from port to endPort if set, inclusive,
  should be allowed" (numeric ports only).

A named port is resolved against the *destination pod's* container ports - for ingress rules
(the selected pod is the destination) and for egress rules (the peer is) alike: a container
port with that name and the rule's protocol. When the destination is not a pod, is a
hostNetwork pod (taken as its node's address, like a peer), or has no such port, the name
resolves to nothing and the port matches no connection.
"""

from __future__ import annotations

from policyctl.policy.ipblocks import describe
from policyctl.policy.matchers import port_admits, resolver_on
from policyctl.policy.model import Pod, PortMatch, Protocol
from policyctl.policy.verdicts import Endpoint, PortResult


def _unresolved(port: PortMatch, name: str, destination: Endpoint) -> str:
    """Why ``name`` resolves to nothing on ``destination``."""
    if not isinstance(destination, Pod):
        return f'named port "{name}" matches nothing: {describe(destination)} is not a pod'
    if destination.host_network:
        return f'named port "{name}" matches nothing: {destination.key} is a hostNetwork pod'
    same_name = sorted((c for c in destination.ports if c.name == name), key=lambda c: (c.port, c.protocol.value))
    if same_name:
        found = ", ".join(f"{c.port}/{c.protocol.value}" for c in same_name)
        return f'named port "{name}" is {found} on {destination.key}, not {port.protocol.value}'
    return f'named port "{name}" is not defined on {destination.key}'


def match_port(port: PortMatch, *, protocol: Protocol, number: int, destination: Endpoint) -> PortResult:
    """Whether ``port`` admits a connection to ``number``/``protocol`` on ``destination``: the
    rule is :func:`policy.matchers.port_admits` (which every engine calls); this adds why."""
    named = resolver_on(destination)
    matched = port_admits(port, protocol, number, named)
    resolved: int | None = None
    if isinstance(port.port, str):
        numbers = named(port.port, port.protocol)
        if not numbers:
            return PortResult(port, False, _unresolved(port, port.port, destination))
        resolved = number if number in numbers else numbers[0]
    if port.protocol is not protocol:
        return PortResult(port, False, f"{port} is {port.protocol.value}, connection is {protocol.value}", resolved)
    if port.port is None:
        return PortResult(port, matched, f"all {protocol.value} ports", resolved)
    if isinstance(port.port, str):
        shown = f'named port "{port.port}" is {resolved}/{port.protocol.value} on {describe(destination)}'
        return PortResult(port, matched, shown if matched else f"{shown}, connection is to {number}", resolved)
    if port.end_port is not None:
        verb = "is in" if matched else "is outside"
        return PortResult(port, matched, f"{number} {verb} {port.port}-{port.end_port}/{protocol.value}")
    return PortResult(port, matched, f"{port} matches" if matched else f"{port}: connection is to {number}")
