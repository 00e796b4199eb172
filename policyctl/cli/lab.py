"""``policyctl lab``: a cluster of network namespaces on this machine, enforced by policyctl.

``lab up`` builds nodes and pods as namespaces from manifests, applies each node's compiled
ruleset through the enforcer inside the node's namespace, and starts the pods' servers;
``lab probe`` sends real packets between two pods; ``lab exec`` runs a command in a pod;
``lab down`` removes a lab, and ``lab down --all`` also what a crashed one left behind. Each
command imports the lab's machinery when it runs, so completing a command line stays quick.
"""

from __future__ import annotations

import os
import sys

import click

from policyctl.cli.completion import complete_lab_pod
from policyctl.cli.inputs import (
    emit_document,
    fail,
    family_option,
    filename_option,
    identity_mark_option,
    input_errors,
    load_cluster,
    namespace_option,
    parse_family,
)
from policyctl.cli.namedports import NamedPort, PortOrNameType, require_declared, resolve_on
from policyctl.policy.suggest import did_you_mean
from policyctl.lab.state import (
    LabState,
    list_states,
    load_state,
    new_prefix,
    save_state,
    state_root,
    take_lease,
)
from policyctl.lab.topology import Cni, PodPlan
from policyctl.policy.diagnostics import PolicyctlError
from policyctl.policy.model import Family, Protocol

name_option = click.option("--name", default="default", show_default=True, help="Which lab.")


def _require_kernel() -> None:
    from policyctl.lab import netns

    reason = netns.available()
    if reason:
        raise fail(f"the lab cannot run here: {reason}")


@click.group()
def lab() -> None:
    """A local cluster of network namespaces where real packets prove enforcement (root).

    \b
    Examples:
      policyctl lab up -f examples/webshop --name shop
      policyctl lab probe --name shop shop/checkout shop/payments --port https
      policyctl lab probe --name shop shop/frontend shop/postgres --port 5432 --timeout 0.5   # denied: exit 1
      policyctl lab exec --name shop shop/frontend -- ip -brief address
      policyctl lab status
      policyctl lab down --name shop
    """


@lab.command()
@filename_option
@namespace_option
@click.option("--cni", type=click.Choice([c.value for c in Cni]), default=Cni.BRIDGED.value, show_default=True,
              help="bridged: pods share a per-node bridge (br_netfilter on). routed: /32 veths, Calico-like.")
@identity_mark_option
@name_option
def up(filenames: tuple[str, ...], namespace: str, cni: str, identity_mark: int | None, name: str) -> None:
    """Build a lab from manifests: one namespace per node and per pod (workloads are one pod
    each), the node's ruleset (the agent's layout unless --identity-mark says otherwise)
    applied by the enforcer, and servers in every pod on every declared container port (and
    80, 81) for TCP, UDP and SCTP."""
    from policyctl.compiler.markedpeers import IdentityMark
    from policyctl.lab.lifecycle import describe, down, endpoints_of, start_servers, sync
    from policyctl.lab.rulesets import apply_with_enforcer, compiler_for

    _require_kernel()
    cluster = load_cluster(filenames, namespace=namespace)
    mark = IdentityMark(identity_mark) if identity_mark is not None else None
    if (state_root() / name / "lab.json").exists():
        raise fail(f"lab {name!r} is already up; 'policyctl lab down --name {name}' first")
    state = LabState(name=name, prefix=new_prefix(), kind="cli", owner_pid=os.getpid(),
                     endpoints=endpoints_of(cluster, [(Protocol.TCP, 80), (Protocol.TCP, 81)]),
                     source=tuple(f if f == "-" else os.path.abspath(f) for f in filenames))
    save_state(state)
    take_lease(state.prefix, os.getpid())
    try:
        with input_errors():
            compiler = compiler_for(state.prefix, identity_mark=mark)
            state = sync(state, cluster, cni=Cni(cni), families=None, compiler=compiler, applier=apply_with_enforcer,
                         applied={})
            state = start_servers(state)
    except BaseException:
        down(name)
        raise
    if state.server_pid:
        take_lease(state.prefix, state.server_pid)
    info = describe(state)
    click.echo(f"lab {name} is up ({cni}, prefix {state.prefix})")
    for key, pod in sorted(info["pods"].items()):
        click.echo(f"  {key:<30} {pod['node']:<12} {' '.join(pod['addresses'])}")


@lab.command(name="down")
@name_option
@click.option("--all", "everything", is_flag=True, help="Every lab, and leftovers of crashed ones.")
def down_command(name: str, everything: bool) -> None:
    """Remove a lab: its servers, namespaces, links, routes and nft tables."""
    from policyctl.lab.lifecycle import down, down_all

    _require_kernel()
    with input_errors():
        removed = down_all() if everything else down(name)
    click.echo(f"removed {len(removed)} namespaces")


def _lab(name: str) -> LabState:
    """The lab ``name``; one that is not up is bad input naming the closest lab that is."""
    try:
        return load_state(name)
    except PolicyctlError as error:
        raise fail(f"{error}{did_you_mean(name, [s.name for s in list_states()])}") from None


def _pod(state: LabState, key: str) -> PodPlan:
    plan = state.plan
    if plan is None:
        raise fail(f"lab {state.name} was never built; 'policyctl lab down --name {state.name}'")
    pods = plan.pod_by_key
    found = pods.get(key) or pods.get(f"default/{key}")
    if found is None:
        names = set(pods) | {k.removeprefix("default/") for k in pods if k.startswith("default/")}
        raise fail(f"no pod {key!r} in lab {state.name} ({len(pods)} pods: 'policyctl lab status' lists them)"
                   f"{did_you_mean(key, names)}")
    return found


def _named(port: NamedPort, state: LabState, destination: str) -> tuple[int, Protocol]:
    """The number ``port`` names on the destination pod in the manifests the lab was built
    from (``lab up -f``), resolved as the semantics resolve a policy's named port."""
    if not state.source or "-" in state.source:
        raise fail(f"--port {port}: lab {state.name} was not built from manifest files; give the port's number")
    cluster = load_cluster(state.source, namespace="default")
    require_declared(port, cluster)
    pod = cluster.pod_by_key.get(destination)
    return resolve_on(port, pod)


@lab.command(name="exec", context_settings={"ignore_unknown_options": True})
@name_option
@click.argument("pod", shell_complete=complete_lab_pod)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(name: str, pod: str, command: tuple[str, ...]) -> None:
    """Run COMMAND (after --) in POD's network namespace."""
    _require_kernel()
    state = _lab(name)
    target = _pod(state, pod)
    os.execvp("ip", ["ip", "netns", "exec", target.netns, *command])


@lab.command(name="probe")
@name_option
@click.argument("source", shell_complete=complete_lab_pod)
@click.argument("destination", shell_complete=complete_lab_pod)
@click.option("--port", "port", type=PortOrNameType(), required=True,
              help="PORT[/PROTOCOL], e.g. 80/TCP, or a container port's name (https), resolved on DESTINATION "
              "in the manifests the lab was built from.")
@family_option
@click.option("--timeout", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Seconds to wait for an answer in all: a denied pair is reported after this long, its "
              "retries included.")
def probe_command(name: str, source: str, destination: str, port: tuple[int, Protocol] | NamedPort,
                  family: str | None, timeout: float) -> None:
    """Try one new connection from SOURCE to DESTINATION with real packets.

    Exit status: 0 allowed, 1 denied, 2 no such lab or pod."""
    from policyctl.lab.probes import DEFAULT_RETRIES, Attempt, method, round_waits, run_probes
    from policyctl.lab.servers import PodServers, own_addresses, pod_families

    _require_kernel()
    state = _lab(name)
    src, dst = _pod(state, source), _pod(state, destination)
    number, protocol = _named(port, state, dst.key) if isinstance(port, NamedPort) else port
    chosen = parse_family(family) or (state.plan.families[0] if state.plan else Family.IPV4)
    address = dst.address(chosen)
    if address is None or src.address(chosen) is None:
        raise fail(f"{source} and {destination} do not both have an {chosen.value} address")
    servers = PodServers()
    try:
        servers.serve(dst.netns, families=pod_families(dst.addresses), endpoints=[(protocol, number)],
                      addresses=own_addresses(dst))
        first = round_waits(timeout, DEFAULT_RETRIES)[0]
        result = run_probes([Attempt("pair", src.netns, address)], protocol=protocol, port=number, timeout=first,
                            retries=DEFAULT_RETRIES)
    except PolicyctlError as error:
        raise fail(str(error)) from None
    finally:
        servers.close()
    verdict = "allowed" if result["pair"] else "denied"
    click.echo(f"{src.key} -> {dst.key} {address} {number}/{protocol.value} {chosen.value}: {verdict} "
               f"({method(protocol)})")
    sys.exit(0 if result["pair"] else 1)


@lab.command()
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def status(output: str) -> None:
    """List labs: nodes, pods, addresses, whether their servers run."""
    from policyctl.lab.lifecycle import describe

    labs = [describe(s) for s in list_states()]
    if output == "json":
        emit_document({"labs": labs}, "json")
        return
    if not labs:
        click.echo("no labs")
    for info in labs:
        click.echo(f"{info['name']} ({info['kind']}, {info['cni']}, prefix {info['prefix']}, "
                   f"servers {'running' if info['servers'] else 'stopped'})")
        for key, pod in sorted(info["pods"].items()):
            click.echo(f"  {key:<30} {pod['node']:<12} {' '.join(pod['addresses'])}")
