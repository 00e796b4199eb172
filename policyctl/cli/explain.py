"""``policyctl explain``: the verdict on a connection between two ends, with every reason.

Wiring only: the ends are resolved by ``policy.endpoints``; a CIDR end is cut where policies
may decide differently, node addresses (the destination's own node among them) included
(``verifier.ranges``); pieces with the same key are decided once, by ``semantics.evaluate``
for one port or by ``policy.portsummary`` for all of them, and pieces whose explanations are
the same are reported once, with every range they cover. So the output grows with the
distinct explanations, not with the number of pieces. Those helpers are imported where they
are used, so completing a command line costs no more than the command's options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from policyctl.cli.completion import complete_endpoint, complete_port, namespace_names
from policyctl.cli.inputs import (
    EXIT_NO,
    EXIT_OK,
    emit_document,
    fail,
    family_option,
    filename_option,
    input_errors,
    load_cluster,
    namespace_option,
    output_option,
    parse_family,
)
from policyctl.cli.namedports import NamedPort, PortOrNameType, require_declared, resolve_on
from policyctl.cli.progress import Progress, quiet_option
from policyctl.policy.suggest import bare_names_in_unknown_namespace
from policyctl.policy.model import Family, IPAddress, Node, Pod, Protocol

if TYPE_CHECKING:
    from policyctl.verifier.explanations import Query


@click.command()
@click.argument("source", metavar="SRC", shell_complete=complete_endpoint)
@click.argument("destination", metavar="DST", shell_complete=complete_endpoint)
@filename_option
@namespace_option
@click.option(
    "--port",
    type=PortOrNameType(),
    shell_complete=complete_port,
    default=None,
    help="Decide one port, e.g. 8443/TCP, 53/UDP (protocol default TCP), or a container port's name, "
    "e.g. http, resolved on DST as policies resolve named ports. Without it every port of TCP, UDP and "
    "SCTP is summarised as ranges.",
)
@family_option
@output_option(("table", "json", "yaml"))
@click.option(
    "--exit-code",
    is_flag=True,
    help="Exit 1 when denied: with --port, when the connection (any piece of a CIDR) is "
    "denied; without, when some piece has no port allowed at all.",
)
@quiet_option
def explain(
    source: str,
    destination: str,
    filenames: tuple[str, ...],
    namespace: str,
    port: tuple[int, Protocol] | NamedPort | None,
    family: str | None,
    output: str,
    exit_code: bool,
    quiet: bool,
) -> None:
    """Explain whether SRC may open a connection to DST, and why.

    \b
    SRC and DST are each one of:
      NAMESPACE/NAME      a pod, or the workload of that name (Deployment, StatefulSet, ...)
      NAME                the same in the namespace of -n
      KIND/NAME           a workload, e.g. deploy/web, sts/db (also NAMESPACE/KIND/NAME)
      node/NAME           a node's host network (e.g. the kubelet)
      IP or CIDR          an address or range outside the cluster (a pod's IP names the pod)

    The verdict has two halves, as the API defines it: egress is decided by the policies
    selecting the source pod, ingress by those selecting the destination pod; both must
    allow. For each half the output shows whether the pod is isolated, every policy that
    selects it (file:line), each rule with the reason for each peer and port, the defaults
    the API applied, bypasses (not a pod, hostNetwork, own node) and hints that would flip a
    denial. A CIDR end is split where the verdict may differ (ipBlock boundaries, node
    addresses); each distinct explanation is printed once with the ranges it covers.
    """
    from policyctl.policy.endpoints import resolve_endpoint
    from policyctl.verifier.explanations import Query, compute_findings

    progress = Progress.for_terminal(quiet=quiet)
    with progress.phase("loading manifests"):
        cluster = load_cluster(filenames, namespace=namespace)
    if click.get_current_context().get_parameter_source("namespace") is not click.core.ParameterSource.DEFAULT:
        unknown = bare_names_in_unknown_namespace((source, destination), namespace, namespace_names(cluster))
        if unknown is not None:
            raise fail(unknown)
    with input_errors():
        ends = (resolve_endpoint(source, cluster, namespace=namespace),
                resolve_endpoint(destination, cluster, namespace=namespace))  # fmt: skip
    if isinstance(port, NamedPort):
        require_declared(port, cluster)
        port = resolve_on(port, ends[1].endpoint)
    query = Query(ends[0], ends[1], Family.IPV4, port)
    chosen = _family(query, parse_family(family))
    query = Query(query.source, query.destination, chosen, port)
    with progress.phase("explaining"):
        findings = compute_findings(cluster, query)
    from policyctl.cli.render_explain import explain_document, render_explain_table

    with progress.phase("writing the explanation"):
        if output == "table":
            render_explain_table(query, findings)
        else:
            emit_document(explain_document(query, findings), output)
    if exit_code:
        raise click.exceptions.Exit(EXIT_OK if all(f.allowed for f in findings) else EXIT_NO)


def _family(query: Query, requested: Family | None) -> Family:
    """The family asked for; else the family of a written address or CIDR; else IPv4 unless
    the pod or node ends only have IPv6 addresses."""
    written: set[Family] = set()
    for end in (query.source, query.destination):
        if end.network is not None:
            written.add(Family.of(end.network))
        elif isinstance(end.endpoint, (Pod, Node)) or end.endpoint is None:
            continue
        else:
            written.add(Family.of(end.endpoint))
    if len(written) > 1:
        raise fail("SRC and DST are addresses of different IP families")
    if requested is not None and written and requested not in written:
        raise fail(f"--family {requested.value} does not match the address given ({written.pop().value})")
    if requested is not None:
        return requested
    if written:
        return written.pop()
    addresses: list[IPAddress] = []
    for endpoint in (query.source.endpoint, query.destination.endpoint):
        if isinstance(endpoint, Pod):
            addresses.extend(endpoint.ips)
        elif isinstance(endpoint, Node):
            addresses.extend(endpoint.addresses)
    if addresses and all(a.version == 6 for a in addresses):
        return Family.IPV6
    return Family.IPV4
