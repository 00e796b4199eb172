"""``--port http`` or ``--port dns/UDP``: a port by the name a pod's container gives it.

The name is resolved on the destination pod by :func:`policyctl.policy.ports.match_port`, the
function the semantics resolve a policy's named port with (``NetworkPolicyPort.port`` "can
either be a numerical or named port on a pod"): a container port of that name and protocol,
on a pod of the pod network. So ``explain --port http`` decides exactly the connection a
policy allowing port ``http`` is about. A name that no pod of the input declares is an error
naming the closest declared names, never a silent "denied".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import click

from policyctl.cli.inputs import PortType, fail
from policyctl.policy.suggest import did_you_mean
from policyctl.policy.model import Pod, PortMatch, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.policy.ports import match_port
from policyctl.policy.verdicts import Endpoint

_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")
"""``IANA_SVC_NAME``, the API's rule for a container port's name: at most 15 lowercase
letters, digits and dashes, at least one letter, no dash at either end."""


@dataclass(frozen=True, slots=True)
class NamedPort:
    name: str
    protocol: Protocol = Protocol.TCP

    def __str__(self) -> str:
        return f"{self.name}/{self.protocol.value}"


class PortOrNameType(click.ParamType):
    """``80``, ``80/TCP``, ``http``, ``dns/UDP``: a number (as :class:`PortType`) or a
    container port's name, with a protocol (default TCP, as the API)."""

    name = "PORT|NAME[/PROTOCOL]"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, Protocol] | NamedPort:
        if isinstance(value, (tuple, NamedPort)):
            return value
        name, _, protocol = str(value).partition("/")
        if name.isdigit() or not name:
            return PortType().convert(value, param, ctx)
        if not _NAME.match(name):
            self.fail(f"{value!r}: a port is a number (1-65535) or a container port's name "
                      "(up to 15 lowercase letters, digits and '-'), e.g. 8080/TCP or http", param, ctx)  # fmt: skip
        try:
            return NamedPort(name, Protocol((protocol or "TCP").upper()))
        except ValueError:
            self.fail(f"{value!r}: the protocol must be TCP, UDP or SCTP", param, ctx)


def declared_names(cluster: Cluster, protocol: Protocol) -> set[str]:
    """Every container port name of ``protocol`` the input's pods declare."""
    return {c.name for pod in cluster.pods for c in pod.ports if c.name and c.protocol is protocol}


def require_declared(port: NamedPort, cluster: Cluster) -> None:
    """Exit 2 when no pod declares ``port``, with the closest declared names."""
    if port.name in declared_names(cluster, port.protocol):
        return
    other = sorted(p.value for p in Protocol if p is not port.protocol and port.name in declared_names(cluster, p))
    if other:
        raise fail(f"no pod declares a {port.protocol.value} port named {port.name!r} (it is declared for "
                   f"{', '.join(other)}: --port {port.name}/{other[0]})")  # fmt: skip
    close = did_you_mean(port.name, declared_names(cluster, port.protocol))
    raise fail(f"no pod declares a port named {port.name!r}{close}")


def resolved_number(port: NamedPort, destination: Endpoint) -> int | None:
    """The number the semantics resolve ``port`` to on ``destination``, as for a policy port
    naming it (:func:`policyctl.policy.ports.match_port`); None when it names nothing there."""
    asked = PortMatch(port.protocol, port.name)
    return match_port(asked, protocol=port.protocol, number=0, destination=destination).resolved


def resolve_on(port: NamedPort, destination: Endpoint | None) -> tuple[int, Protocol]:
    """The number ``port`` names on ``destination``; exit 2 when it names none there."""
    number = resolved_number(port, destination) if destination is not None else None
    if number is not None:
        click.echo(f"note: port {port.name!r} is {number}/{port.protocol.value} on {destination}", err=True)
        return number, port.protocol
    if not isinstance(destination, Pod):
        what = "a range of addresses" if destination is None else str(destination)
        raise fail(f"--port {port}: a named port is resolved on the destination pod; {what} is not a pod")
    if destination.host_network:
        raise fail(f"--port {port}: {destination.key} is a hostNetwork pod, whose ports are its node's: "
                   "give the number")  # fmt: skip
    own = sorted(f"{c.name} {c.port}/{c.protocol.value}" for c in destination.ports if c.name)
    listed = f" (its named ports: {', '.join(own)})" if own else " (it names none of its ports)"
    names = {c.name for c in destination.ports if c.name and c.protocol is port.protocol}
    raise fail(f"--port {port}: {destination.key} declares no port named {port.name!r}{listed}"
               f"{did_you_mean(port.name, names)}")  # fmt: skip
