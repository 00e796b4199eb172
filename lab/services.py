"""Services in the lab: one ClusterIP per pod, DNATed on every node the way kube-proxy does.

The probe-case spec's ``via: service`` sends a probe to "the destination's ClusterIP, DNAT on
the node". The lab gives every pod a Service of its own (every port, every protocol, the pod
as its one endpoint) with an address from the plan's Service range (``LabPlan.
service_networks``, chosen to hold no pod or node address), and programs each node as
kube-proxy's nftables mode does, in a table of its own beside the enforcer's:

* ``nat-prerouting`` and ``nat-output`` (type nat, priority ``dstnat`` = -100; nft 1.0.6
  takes the name only on prerouting) jump to ``services``, where a packet to a ClusterIP is
  DNATed to its pod: forwarded pod traffic and the node's own (hostNetwork) traffic alike;
* a packet whose source is the very pod its ClusterIP leads to is marked first (kube-proxy's
  ``mark-for-masquerade``, bit ``0x4000``), and ``nat-postrouting`` (priority ``srcnat``)
  masquerades marked packets. Without it the pod would get its own packet back from its own
  address and answer itself directly, so the reply would never be un-DNATed: that is the
  hairpin case kube-proxy masquerades.

The enforcer's postrouting chains run at ``srcnat - 5`` and ``srcnat - 4``: after the DNAT and
before the masquerade, so policy sees the pod addresses on both ends, the hairpin included.

The ruleset is plain ``nft`` text (this table is the lab's stand-in for kube-proxy, not
something policyctl enforces) and replaces the table in one transaction. Pure except
:func:`apply_services`.
"""

from __future__ import annotations

import ipaddress
import subprocess

from policyctl.lab.topology import LabPlan
from policyctl.policy.diagnostics import PolicyctlError
from policyctl.policy.model import Family, IPAddress

#: kube-proxy's masquerade bit (``--masquerade-bit=14``).
MASQUERADE_MARK = 0x4000
_MATCH = {Family.IPV4: "ip", Family.IPV6: "ip6"}


class ServiceError(PolicyctlError):
    """A node's Service table could not be loaded; carries nft's message."""


def table_name(prefix: str) -> str:
    return f"{prefix}kube-proxy"


def cluster_ips(plan: LabPlan) -> dict[str, dict[Family, IPAddress]]:
    """Pod key -> its Service's ClusterIP per family it has an address in: the pods in key
    order take the hosts of each family's Service range from ``.1``."""
    networks = {Family.of(n.network_address): n for n in map(ipaddress.ip_network, plan.service_networks)}
    result: dict[str, dict[Family, IPAddress]] = {}
    for index, pod in enumerate(sorted(plan.pods, key=lambda p: p.key)):
        result[pod.key] = {
            family: networks[family][index + 1]
            for family in sorted(networks, key=lambda f: f.value)
            if pod.address(family) is not None
        }
    return result


def service_ruleset(plan: LabPlan) -> str:
    """The node's Service table as an ``nft -f`` script that replaces it atomically. The same
    on every node: a Service is reachable from anywhere in the cluster."""
    table = f"inet {table_name(plan.prefix)}"
    endpoints = {p.key: p for p in plan.pods}
    rules: list[str] = []
    for key, addresses in sorted(cluster_ips(plan).items()):
        for family, cluster_ip in sorted(addresses.items(), key=lambda item: item[0].value):
            pod = endpoints[key].address(family)
            match = _MATCH[family]
            rules.append(
                f"{match} daddr {cluster_ip} {match} saddr {pod} meta mark set meta mark | {MASQUERADE_MARK:#x}"
            )
            rules.append(f"{match} daddr {cluster_ip} dnat {match} to {pod}")
    lines = [
        f"table {table} {{}}",
        f"delete table {table}",
        f"table {table} {{",
        "  chain services {",
        *(f"    {rule}" for rule in rules),
        "  }",
        "  chain nat-prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        "    jump services",
        "  }",
        "  chain nat-output {",
        "    type nat hook output priority -100; policy accept;",
        "    jump services",
        "  }",
        "  chain nat-postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        f"    meta mark & {MASQUERADE_MARK:#x} == {MASQUERADE_MARK:#x} masquerade",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def apply_services(netns: str, script: str) -> None:
    """Load ``script`` into the node namespace ``netns`` (one nft transaction)."""
    done = subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=script, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise ServiceError(f"loading the Service table in {netns}: {(done.stderr or done.stdout).strip()}")

