"""Splitting an address range outside the cluster where ``ipBlock`` peers may decide differently.

An ipBlock matches an address when it is in ``cidr`` and in no ``except`` entry; nothing else
in a policy looks at an external address. So the verdict on connections to (or from) a CIDR is
constant between the boundaries of every ``cidr`` and ``except`` of the cluster's policies:
splitting there and asking about one address per piece is exact, whatever the size of the
range.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from policyctl.policy.clustermodel import ClusterNetworkPolicy, NodesPeer
from policyctl.policy.model import IPAddress, IPBlockPeer, IPNetwork, NetworkPolicy
from policyctl.policy.cluster import Cluster


@dataclass(frozen=True, slots=True)
class AddressRange:
    """Addresses ``first``..``last`` inclusive, of one family."""

    first: IPAddress
    last: IPAddress

    @property
    def networks(self) -> tuple[IPNetwork, ...]:
        """The range as the fewest CIDRs, in order."""
        return tuple(ipaddress.summarize_address_range(self.first, self.last))

    def __str__(self) -> str:
        return ", ".join(str(n) for n in self.networks)


def block_networks(cluster: Cluster) -> tuple[IPNetwork, ...]:
    """Every ``cidr`` and ``except`` network of every ipBlock peer in the cluster (and every
    ``networks`` CIDR of cluster-scoped policies, and each node address when a ``nodes`` peer
    can match it), sorted."""
    found: set[IPNetwork] = set()
    policies: list[NetworkPolicy | ClusterNetworkPolicy] = [*cluster.policies, *cluster.cluster_policies]
    for policy in policies:
        for rule in (*policy.ingress, *policy.egress):
            for peer in rule.peers:
                if isinstance(peer, IPBlockPeer):
                    found.add(peer.cidr)
                    found.update(peer.excepts)
                elif isinstance(peer, NodesPeer):
                    found.update(ipaddress.ip_network(a) for n in cluster.nodes for a in n.addresses)
    return tuple(sorted(found, key=lambda n: (n.version, n.network_address, n.prefixlen)))


def split_network(cluster: Cluster, network: IPNetwork) -> tuple[AddressRange, ...]:
    """``network`` cut at every ipBlock boundary inside it, in address order."""
    low = int(network.network_address)
    high = int(network.broadcast_address)
    cuts = {low}
    for block in block_networks(cluster):
        if block.version != network.version:
            continue
        for point in (int(block.network_address), int(block.broadcast_address) + 1):
            if low < point <= high:
                cuts.add(point)
    starts = sorted(cuts)
    ends = [s - 1 for s in starts[1:]] + [high]
    return tuple(
        AddressRange(_address(first, network.version), _address(last, network.version))
        for first, last in zip(starts, ends)
    )


def _address(value: int, version: int) -> IPAddress:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)
