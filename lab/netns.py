"""The lab's side effects on the kernel: namespaces, veths, bridges, addresses, routes, sysctls.

Everything here acts only on namespaces whose names start with the lab's prefix, and every
link is created directly inside one of them, never in the caller's namespace, so deleting the
namespaces removes everything (links, routes, nft tables) and nothing outside is touched.
Operations are idempotent: ``apply_plan`` brings whatever exists to the plan (creating,
replacing, deleting what differs), so a crashed build is finished or undone by running it or
``teardown`` again.

Links and addresses go through ``ip -n NS -batch -`` (one process per namespace); sysctls are
written from this process after ``setns(2)`` on the calling thread only (:func:`inside`), which
is also how servers and probes open sockets in a pod's namespace without a process per pod.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import ipaddress
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from policyctl.enforcer import requirements
from policyctl.lab.topology import Cni, LabPlan, NodePlan, PodPlan, Route
from policyctl.policy.diagnostics import PolicyctlError

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
#: Every lab's prefix starts with this; ``lab down --all`` removes what it finds under it.
LAB_PREFIX_ROOT = "pcl-"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class NetnsError(PolicyctlError):
    """A namespace operation failed; carries the command and the kernel's message."""


def available() -> str | None:
    """Why the lab cannot run here, or None when it can: it needs root, nftables (the
    ``nft`` command, for its Service tables) and network namespaces (``ip netns``)."""
    reason = requirements.missing(nft_command=True)
    if reason:
        return reason
    if not Path("/proc/self/ns/net").exists():
        return "this kernel has no network namespaces"
    try:
        subprocess.run(["ip", "-V"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return "iproute2 (ip) is not installed; install it as root: apt-get install iproute2"
    return None


def _run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True)
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise NetnsError(f"{' '.join(argv)}: {detail}")
    return done.stdout


def ip_batch(netns: str, commands: Iterable[str], *, check: bool = True) -> None:
    """Run ``ip`` commands inside ``netns``, in order, in one process."""
    lines = [c for c in commands if c]
    if lines:
        _run(["ip", "-n", netns, "-batch", "-"], stdin="\n".join(lines) + "\n", check=check)


@contextmanager
def inside(netns: str) -> Iterator[None]:
    """Run the body with the calling thread in ``netns`` (setns(2) is per thread); sockets
    opened in the body stay in that namespace after it returns."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(NETNS_DIR / netns, os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                raise NetnsError(f"setns {netns}: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(target)
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise NetnsError(f"setns back: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(own)


def set_sysctls(netns: str, values: Mapping[str, str]) -> None:
    """Write ``net.*`` sysctls of ``netns`` (keys in dotted form)."""
    with inside(netns):
        for key, value in sorted(values.items()):
            try:
                Path("/proc/sys", *key.split(".")).write_text(value)
            except OSError as error:
                raise NetnsError(f"sysctl {key}={value} in {netns}: {error}") from error


def list_netns(prefix: str) -> list[str]:
    """Namespaces whose name starts with ``prefix``, sorted."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))


def add_netns(name: str) -> None:
    if not (NETNS_DIR / name).exists():
        _run(["ip", "netns", "add", name])


def netns_pids(name: str) -> list[int]:
    """Processes whose network namespace is ``name``."""
    out = _run(["ip", "netns", "pids", name], check=False)
    return sorted(int(p) for p in out.split() if p.isdigit())


def kill_pids(pids: Iterable[int], *, grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL what is still alive after ``grace`` seconds."""
    pending = set(pids) - {os.getpid()}
    for pid in pending:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while pending and time.monotonic() < deadline:
        pending = {p for p in pending if _alive(p)}
        time.sleep(0.05)
    for pid in pending:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def delete_netns(name: str) -> None:
    """Stop every process in the namespace, then delete it (its links, routes and nft tables
    go with it)."""
    kill_pids(netns_pids(name))
    if (NETNS_DIR / name).exists():
        _run(["ip", "netns", "delete", name], check=False)


def delete_pod(node: NodePlan, pod: PodPlan) -> None:
    """Detach the pod from its node, then delete its namespace. ``ip netns delete`` only drops
    the name; the kernel dismantles the namespace later (measured here: often after the
    command has returned), and until then the pod's veth stays on its node, answering for the
    pod's addresses and holding the name of its node end. A new pod given one of those
    addresses would lose its neighbour solicitations to the dying one, and a pod rebuilt on the
    same node would find its link name taken. Deleting the node's end removes both ends at
    once."""
    if _link_exists(node.netns, pod.host_link):
        ip_batch(node.netns, [f"link del {pod.host_link}"], check=False)
    delete_netns(pod.netns)


def forget_neighbours(plan: LabPlan, gone: Iterable[PodPlan], *, kept: Iterable[PodPlan]) -> None:
    """Flush the neighbour entries for the addresses of deleted pods on their node and in the
    pods kept there. An entry stays reachable for up to 45 s after its last confirmation; a
    new pod given one of the addresses (addresses are reused, as a CNI's IPAM does) would,
    until then, be sent frames for the dead pod's MAC, which the bridge floods and nobody
    takes."""
    addresses: dict[str, list[str]] = {}
    for pod in gone:
        addresses.setdefault(pod.node, []).extend(str(ipaddress.ip_interface(a).ip) for a in pod.addresses)
    kept_by_node: dict[str, list[str]] = {}
    for pod in kept:
        if not pod.host_network:
            kept_by_node.setdefault(pod.node, []).append(pod.netns)
    for node_name, lost in sorted(addresses.items()):
        node = plan.node_by_name.get(node_name)
        namespaces = ([node.netns] if node else []) + kept_by_node.get(node_name, [])
        for name in namespaces:
            ip_batch(name, [f"neigh flush to {a}" for a in lost], check=False)


def teardown(prefix: str) -> list[str]:
    """Remove every namespace under ``prefix``; returns the names removed."""
    if not prefix.startswith(LAB_PREFIX_ROOT) or len(prefix) <= len(LAB_PREFIX_ROOT):
        raise NetnsError(f"refusing to tear down {prefix!r}: not a lab prefix")
    names = list_netns(prefix)
    pods = [n for n in names if "-pod-" in n]
    for name in pods + [n for n in names if n not in pods]:
        delete_netns(name)
    return names


def _base_sysctls(plan: LabPlan) -> dict[str, str]:
    # A Service hairpin leaves a node by the link it came in on, which makes the node send
    # an ICMP redirect; a pod that obeyed it would bypass the node for that address.
    return {
        "net.ipv6.conf.all.accept_dad": "0",
        "net.ipv6.conf.default.accept_dad": "0",
        "net.ipv4.conf.all.accept_redirects": "0",
        "net.ipv4.conf.default.accept_redirects": "0",
        "net.ipv6.conf.all.accept_redirects": "0",
        "net.ipv6.conf.default.accept_redirects": "0",
    }


def _node_sysctls(plan: LabPlan) -> dict[str, str]:
    values = {
        **_base_sysctls(plan),
        "net.ipv4.ip_forward": "1",
        "net.ipv6.conf.all.forwarding": "1",
        "net.ipv4.conf.all.send_redirects": "0",
        "net.ipv4.conf.default.send_redirects": "0",
    }
    if plan.cni is Cni.BRIDGED:
        # Without these, same-node pod traffic is only bridged and never reaches the inet
        # hooks the enforcer's tables sit on.
        values["net.bridge.bridge-nf-call-iptables"] = "1"
        values["net.bridge.bridge-nf-call-ip6tables"] = "1"
    return values


def _addr(address: str, device: str) -> str:
    return f"address replace {address} dev {device}" + (" nodad" if ":" in address else "")


def build_underlay(plan: LabPlan) -> None:
    add_netns(plan.underlay_netns)
    set_sysctls(plan.underlay_netns, _base_sysctls(plan))
    exists = _link_exists(plan.underlay_netns, plan.underlay_bridge)
    ip_batch(
        plan.underlay_netns,
        [
            "link set lo up",
            "" if exists else _bridge(plan.underlay_netns, plan.underlay_bridge),
            f"link set {plan.underlay_bridge} up",
        ],
    )


def _bridge(netns: str, bridge: str) -> str:
    """``ip`` command creating a bridge with an address of its own. A Linux bridge without one
    takes the lowest address among its ports and changes it when a port with a lower one is
    added: every pod's neighbour entry for its gateway then points at an address nobody has,
    and traffic through the bridge stalls until the entry expires (up to tens of seconds).
    An address set by hand is kept."""
    digest = hashlib.sha256(f"{netns}/{bridge}".encode()).digest()
    mac = ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))
    return f"link add {bridge} address {mac} type bridge mcast_snooping 0"


def _link_exists(netns: str, link: str) -> bool:
    return bool(_run(["ip", "-n", netns, "-o", "link", "show", "dev", link], check=False).strip())


def build_node(plan: LabPlan, node: NodePlan) -> None:
    """The node namespace, its leg on the underlay bridge, and (bridged CNI) its pod bridge."""
    add_netns(node.netns)
    set_sysctls(node.netns, _node_sysctls(plan))
    commands = ["link set lo up"]
    if not _link_exists(node.netns, node.underlay_link):
        commands.append(
            f"link add {node.underlay_link} type veth peer name {node.underlay_peer} netns {plan.underlay_netns}"
        )
    commands.append(f"link set {node.underlay_link} up")
    commands += [_addr(a, node.underlay_link) for a in node.underlay_addresses]
    if node.bridge:
        if not _link_exists(node.netns, node.bridge):
            commands.append(_bridge(node.netns, node.bridge))
        commands.append(f"link set {node.bridge} up")
        commands += [_addr(a, node.bridge) for a in node.gateways]
    ip_batch(node.netns, commands)
    ip_batch(plan.underlay_netns, [f"link set {node.underlay_peer} master {plan.underlay_bridge} up"])


def build_pod(plan: LabPlan, pod: PodPlan) -> None:
    """The pod namespace and its veth to the node: on the bridge (bridged, with hairpin on so
    a pod's Service connection DNATed back to itself can leave by the port it came in, as the
    bridge plugin's ``hairpinMode`` does) or with the link-local gateway addresses on the
    node's end (routed). A hostNetwork pod is its node's namespace: nothing to build."""
    if pod.host_network:
        return
    node = plan.node_by_name[pod.node]
    add_netns(pod.netns)
    set_sysctls(pod.netns, _base_sysctls(plan))
    node_commands = []
    if not _link_exists(node.netns, pod.host_link):
        node_commands.append(f"link add {pod.host_link} type veth peer name {pod.link} netns {pod.netns}")
    if node.bridge:
        node_commands.append(f"link set {pod.host_link} master {node.bridge}")
        node_commands.append(f"link set {pod.host_link} type bridge_slave hairpin on")
    else:
        node_commands += [
            "address replace 169.254.1.1/32 dev " + pod.host_link,
            "address replace fe80::1/64 dev " + pod.host_link + " nodad",
        ]
    node_commands.append(f"link set {pod.host_link} up")
    ip_batch(node.netns, node_commands)
    pod_commands = ["link set lo up", f"link set {pod.link} up"]
    pod_commands += [_addr(a, pod.link) for a in pod.addresses]
    pod_commands += [r.command() for r in pod.routes]
    ip_batch(pod.netns, pod_commands)


def set_routes(netns: str, *, old: Iterable[Route], new: Iterable[Route]) -> None:
    """Replace the routes a plan owns: add or change every new one, delete what is gone."""
    wanted = set(new)
    stale = [r for r in old if r not in wanted and r.destination not in {w.destination for w in wanted}]
    ip_batch(netns, [f"route del {r.destination} dev {r.device}" for r in stale], check=False)
    ip_batch(netns, [r.command() for r in sorted(wanted)])


def _node_shape(node: NodePlan) -> tuple[object, ...]:
    return (node.netns, node.underlay_link, node.underlay_peer, node.underlay_addresses, node.bridge, node.gateways)


def apply_plan(plan: LabPlan, *, previous: LabPlan | None = None) -> None:
    """Make the kernel match ``plan``. With ``previous`` (what was built before), only pods
    that changed are recreated and node routes are updated in place; if the nodes or the
    underlay changed, everything is rebuilt."""
    if previous is not None and (
        previous.prefix != plan.prefix
        or previous.cni != plan.cni
        or [_node_shape(n) for n in previous.nodes] != [_node_shape(n) for n in plan.nodes]
    ):
        teardown(previous.prefix)
        previous = None
    old_pods = previous.pod_by_key if previous else {}
    new_pods = plan.pod_by_key
    gone = [pod for key, pod in sorted(old_pods.items()) if new_pods.get(key) != pod and not pod.host_network]
    for pod in gone:
        delete_pod(plan.node_by_name[pod.node], pod)
    forget_neighbours(plan, gone, kept=[p for k, p in sorted(new_pods.items()) if old_pods.get(k) == p])
    build_underlay(plan)
    for node in plan.nodes:
        build_node(plan, node)
    for key, pod in sorted(new_pods.items()):
        if previous is None or old_pods.get(key) != pod:
            build_pod(plan, pod)
    old_nodes = previous.node_by_name if previous else {}
    for node in plan.nodes:
        old_routes = old_nodes[node.name].routes if node.name in old_nodes else ()
        set_routes(node.netns, old=old_routes, new=node.routes)
