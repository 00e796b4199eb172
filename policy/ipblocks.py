"""Addresses of connection ends, and ``ipBlock`` peers matched against them.

The API: an ipBlock "describes a particular CIDR ... that is allowed to the pods matched by a
NetworkPolicySpec's podSelector. The except entry describes CIDRs that should not be included
within this rule." An ipBlock matches any end whose address (in the connection's family) is in
``cidr`` and in no ``except`` - pod addresses included: the upstream conformance tests
("should allow egress access to server in CIDR block", "should enforce except clause while
egress access to server in CIDR block") reach pods through ipBlocks.

The address of an end, per family (dual-stack policy is decided for each family on its own):

* a pod: its ``status.podIPs`` entry in that family;
* a hostNetwork pod: its node's address in that family (it shares the node's network
  namespace), falling back to its own podIPs when the node is not known;
* a node: its address in that family;
* an external address: itself.

An end with addresses but none in the family cannot take part in the connection at all
(:attr:`EndAddress.impossible`); a pod with no addresses at all (a workload template) is still
decided by labels and ports, only ipBlocks cannot match it.
"""

from __future__ import annotations

from dataclasses import dataclass

from policyctl.policy.model import Family, IPAddress, IPBlockPeer, Node, Pod
from policyctl.policy.cluster import Cluster
from policyctl.policy.verdicts import Endpoint, PeerResult


@dataclass(frozen=True, slots=True)
class EndAddress:
    """The address of one end in one family. ``address`` is None when there is none;
    ``impossible`` tells "has addresses, none in this family" (no such connection can exist)
    from "no address known at all"; ``problem`` says which, in words."""

    address: IPAddress | None
    impossible: bool = False
    problem: str = ""


def describe(endpoint: Endpoint) -> str:
    """How reasons name an end: ``x/a``, ``node node-1``, ``203.0.113.9``."""
    if isinstance(endpoint, Pod):
        return endpoint.key
    if isinstance(endpoint, Node):
        return f"node {endpoint.name}"
    return str(endpoint)


def _known(candidates: tuple[IPAddress, ...], family: Family, name: str) -> EndAddress:
    found = next((a for a in candidates if Family.of(a) is family), None)
    if found is not None:
        return EndAddress(found)
    if candidates:
        return EndAddress(None, impossible=True, problem=f"{name} has no {family.value} address")
    return EndAddress(None, problem=f"no {family.value} address known for {name}")


def end_address(cluster: Cluster, endpoint: Endpoint, family: Family) -> EndAddress:
    """The address ``endpoint`` uses in ``family`` (see the module docstring)."""
    name = describe(endpoint)
    if isinstance(endpoint, Node):
        return _known(endpoint.addresses, family, name)
    if isinstance(endpoint, Pod):
        if endpoint.host_network and endpoint.node is not None:
            node = cluster.node_by_name.get(endpoint.node)
            if node is not None and node.addresses:
                return _known(node.addresses, family, f"{name} (hostNetwork on node {node.name})")
        return _known(endpoint.ips, family, name)
    if Family.of(endpoint) is not family:
        return EndAddress(None, impossible=True, problem=f"{name} is not an {family.value} address")
    return EndAddress(endpoint)


def match_ip_block(peer: IPBlockPeer, *, other: Endpoint, address: EndAddress, family: Family) -> PeerResult:
    """Whether ``peer`` matches the other end: its address in ``family`` is inside ``cidr``
    and inside no ``except``. Boundaries are inclusive: the network and last addresses of a
    CIDR belong to it."""
    if Family.of(peer.cidr) is not family:
        return PeerResult(
            peer, False, (f"ipBlock {peer.cidr} is {Family.of(peer.cidr).value}, connection is {family.value}",)
        )
    if address.address is None:
        return PeerResult(peer, False, (address.problem or f"no {family.value} address known for {describe(other)}",))
    ip = address.address
    if ip not in peer.cidr:
        return PeerResult(peer, False, (f"{ip} is outside {peer.cidr}",))
    excluded = [e for e in peer.excepts if ip in e]
    if excluded:
        return PeerResult(peer, False, tuple(f"{ip} is in except {e}" for e in excluded))
    return PeerResult(peer, True, (f"{ip} is in {peer.cidr}" + (" and in no except" if peer.excepts else ""),))
