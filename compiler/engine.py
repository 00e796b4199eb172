"""The ``compiled`` engine: decide connections by running the emitted JSON rulesets.

For each connection the new-connection packet (``ct state new``, the family's addresses, the
protocol and destination port) is run through the hooks it would traverse, the way the kernel
would see it:

* leaving a pod on the pod network, it enters its node from the pod's interface: ``input`` when
  addressed to that node itself (its addresses, its hostNetwork pods), else forwarded to
  ``postrouting``;
* sent from a node (the node itself or a hostNetwork pod), it is locally generated:
  ``postrouting``, and then ``input`` too when addressed to the same node (loopback);
* arriving at another node, it meets that node's ``input`` (for the node itself) or
  ``postrouting`` (forwarded to a pod); an address outside the cluster has no node.

A same-node pair therefore traverses the one node's hooks once. A Service connection is the
same packet after DNAT (hooks at srcnat - 5 see the endpoint address). A pod reaching its own
address without a Service never leaves its network namespace and is allowed unevaluated. An end
with no address in the connection's family makes the connection impossible (denied); so does an
end without any address, since no packet can carry it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from policyctl.probecases.engines import Observation, Probe
from policyctl.policy.ipblocks import end_address
from policyctl.policy.model import Node, Pod
from policyctl.policy.cluster import Cluster
from policyctl.policy.verdicts import Connection, Endpoint

from .compile import compile_node, node_addresses
from .elements import PROTOCOL_NUMBERS
from .evaluator import Evaluator, Outcome, Packet
from .graph import PolicyGraph
from .layout import FAMILIES
from .markedpeers import IdentityMark
from .newpods import NewPodWindow
from .render_json import render_json
from .ruleset import Hook, Mode


@dataclass(frozen=True, slots=True)
class Hop:
    node: str
    hook: Hook


def _node_of(endpoint: Endpoint) -> str | None:
    if isinstance(endpoint, Node):
        return endpoint.name
    if isinstance(endpoint, Pod):
        return endpoint.node
    return None


def _is_host(endpoint: Endpoint) -> bool:
    return isinstance(endpoint, Node) or (isinstance(endpoint, Pod) and endpoint.host_network)


def hops(source: Endpoint, destination: Endpoint) -> tuple[Hop, ...]:
    """The (node, hook) pairs a new connection's first packet traverses, in order."""
    src, dst = _node_of(source), _node_of(destination)
    to_host = _is_host(destination)
    path: list[Hop] = []
    if src is not None:
        if _is_host(source):
            path.append(Hop(src, Hook.POSTROUTING))
            if dst == src and to_host:
                path.append(Hop(src, Hook.INPUT))
        else:
            path.append(Hop(src, Hook.INPUT if dst == src and to_host else Hook.POSTROUTING))
    if dst is not None and dst != src:
        path.append(Hop(dst, Hook.INPUT if to_host else Hook.POSTROUTING))
    return tuple(path)


class CompiledCluster:
    """The rendered ruleset of every node of one snapshot, parsed for evaluation."""

    def __init__(
        self, cluster: Cluster, *, table: str = "policyctl", mode: Mode = Mode.ENFORCE,
        new_pods: NewPodWindow = NewPodWindow.ALLOW, identity_mark: IdentityMark | None = None, packet_mark: int = 0,
    ) -> None:
        """``packet_mark``: the mark every packet arrives with (what other components set)."""
        self.cluster = cluster
        self.packet_mark = packet_mark
        graph = PolicyGraph(cluster)
        names = sorted({n.name for n in cluster.nodes} | {p.node for p in cluster.pods if p.node})
        self.documents = {
            n: render_json(compile_node(cluster, n, table=table, mode=mode, graph=graph, new_pods=new_pods,
                                        identity_mark=identity_mark))
            for n in names
        }
        self.evaluators = {
            n: Evaluator(json.loads(text), local_addresses=(a for f in FAMILIES for a in node_addresses(cluster, n, f)))
            for n, text in self.documents.items()
        }

    def outcomes(self, connection: Connection) -> tuple[tuple[Hop, Outcome], ...] | None:
        """Every hop's outcome until the first drop, or None when no packet can exist."""
        source = end_address(self.cluster, connection.source, connection.family).address
        destination = end_address(self.cluster, connection.destination, connection.family).address
        if source is None or destination is None:
            return None
        protocol = PROTOCOL_NUMBERS[connection.protocol]
        packet = Packet(source, destination, protocol, connection.port, mark=self.packet_mark)
        results = []
        for hop in hops(connection.source, connection.destination):
            outcome = self.evaluators[hop.node].evaluate(hop.hook.value, packet)
            results.append((hop, outcome))
            if not outcome.accepted:
                break
        return tuple(results)

    def allowed(self, connection: Connection) -> bool:
        src, dst = connection.source, connection.destination
        if isinstance(src, Pod) and isinstance(dst, Pod) and src.key == dst.key and not connection.via_service:
            return end_address(self.cluster, src, connection.family).address is not None or not src.ips
        results = self.outcomes(connection)
        return results is not None and all(o.accepted for _, o in results)


class CompiledEngine:
    """:class:`probecases.engines.Engine` over the compiled rulesets."""

    name = "compiled"

    def __init__(
        self, *, table: str = "policyctl", mode: Mode = Mode.ENFORCE, identity_mark: IdentityMark | None = None
    ) -> None:
        self.table = table
        self.mode = mode
        self.identity_mark = identity_mark
        self._compiled: CompiledCluster | None = None

    def _for(self, cluster: Cluster) -> CompiledCluster:
        if self._compiled is None or self._compiled.cluster is not cluster:
            self._compiled = CompiledCluster(
                cluster, table=self.table, mode=self.mode, identity_mark=self.identity_mark
            )
        return self._compiled

    def observe(self, cluster: Cluster, probe: Probe) -> Observation:
        compiled = self._for(cluster)
        pods = sorted(cluster.pods, key=lambda p: p.key)
        allowed: dict[str, Mapping[str, bool]] = {}
        for source in pods:
            allowed[source.key] = {
                destination.key: compiled.allowed(
                    Connection(source, destination, probe.protocol, probe.port, probe.family, probe.via_service)
                )
                for destination in pods
            }
        return Observation(allowed, "compiled")

    def close(self) -> None:
        self._compiled = None
