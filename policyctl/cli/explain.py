"""``policyctl explain``: the verdict on a connection between two ends, with every reason.

Wiring only: the ends are resolved by ``policy.endpoints``, a CIDR end is cut where ipBlocks
may decide differently (``policy.addressranges``), each piece is decided by
``semantics.evaluate`` for one port or by ``policy.portsummary`` for all of them, and adjacent
pieces with the same outcome are joined again so the output lists only real differences.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import click

from policyctl.cli.inputs import (
    EXIT_NO,
    EXIT_OK,
    PortType,
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
from policyctl.cli.render_explain import explain_document, render_explain_table
from policyctl.policy.addressranges import AddressRange, split_network
from policyctl.policy.endpoints import ResolvedEndpoint, resolve_endpoint
from policyctl.policy.model import Cluster, Family, IPAddress, Node, Pod, Protocol
from policyctl.policy.portsummary import PortSummary, summarize_ports
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection, Endpoint, Verdict


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome for one piece of the query: ``verdict`` with ``--port``, else ``summary``.
    ``source_range``/``destination_range`` are set when that end was a CIDR."""

    source: Endpoint
    destination: Endpoint
    source_range: AddressRange | None = None
    destination_range: AddressRange | None = None
    verdict: Verdict | None = None
    summary: PortSummary | None = None

    @property
    def allowed(self) -> bool:
        """With a port: the verdict. Without: whether any port of any protocol is allowed."""
        if self.verdict is not None:
            return self.verdict.allowed
        return self.summary is not None and bool(self.summary.allowed_ranges())


@dataclass(frozen=True, slots=True)
class Query:
    source: ResolvedEndpoint
    destination: ResolvedEndpoint
    family: Family
    port: tuple[int, Protocol] | None


@click.command()
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@filename_option
@namespace_option
@click.option(
    "--port",
    type=PortType(),
    default=None,
    help="Decide one port, e.g. 8443/TCP, 53/UDP (protocol default TCP). Without it every "
    "port of TCP, UDP and SCTP is summarised as ranges.",
)
@family_option
@output_option(("table", "json", "yaml"))
@click.option(
    "--exit-code",
    is_flag=True,
    help="Exit 1 when denied: with --port, when the connection (any piece of a CIDR) is "
    "denied; without, when some piece has no port allowed at all.",
)
def explain(
    source: str,
    destination: str,
    filenames: tuple[str, ...],
    namespace: str,
    port: tuple[int, Protocol] | None,
    family: str | None,
    output: str,
    exit_code: bool,
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
    denial. A CIDR end is split into the ranges where the verdict differs.
    """
    cluster = load_cluster(filenames, namespace=namespace)
    with input_errors():
        query = Query(
            resolve_endpoint(source, cluster, namespace=namespace),
            resolve_endpoint(destination, cluster, namespace=namespace),
            Family.IPV4,
            port,
        )
    chosen = _family(query, parse_family(family))
    query = Query(query.source, query.destination, chosen, port)
    findings = compute_findings(cluster, query)
    if output == "table":
        render_explain_table(query, findings)
    else:
        emit_document(explain_document(query, findings), output)
    if exit_code:
        raise click.exceptions.Exit(EXIT_OK if all(f.allowed for f in findings) else EXIT_NO)


def compute_findings(cluster: Cluster, query: Query) -> tuple[Finding, ...]:
    """One finding per piece of the query, adjacent pieces with the same outcome joined."""
    findings: list[Finding] = []
    keys: list[Hashable] = []
    for source_range, source in _pieces(cluster, query.source):
        for destination_range, destination in _pieces(cluster, query.destination):
            finding = _decide(cluster, query, source, destination, source_range, destination_range)
            key = _outcome_key(finding)
            previous = findings[-1] if findings else None
            if previous is not None and keys[-1] == key and _adjacent(previous, finding):
                findings[-1] = Finding(
                    previous.source,
                    previous.destination,
                    _join(previous.source_range, finding.source_range),
                    _join(previous.destination_range, finding.destination_range),
                    previous.verdict,
                    previous.summary,
                )
            else:
                findings.append(finding)
                keys.append(key)
    return tuple(findings)


def _decide(
    cluster: Cluster,
    query: Query,
    source: Endpoint,
    destination: Endpoint,
    source_range: AddressRange | None,
    destination_range: AddressRange | None,
) -> Finding:
    if query.port is None:
        summary = summarize_ports(cluster, source, destination, family=query.family)
        return Finding(source, destination, source_range, destination_range, summary=summary)
    number, protocol = query.port
    connection = Connection(source, destination, protocol, number, family=query.family)
    return Finding(source, destination, source_range, destination_range, verdict=evaluate(cluster, connection))


def _pieces(cluster: Cluster, end: ResolvedEndpoint) -> list[tuple[AddressRange | None, Endpoint]]:
    if end.network is None:
        assert end.endpoint is not None
        return [(None, end.endpoint)]
    return [(piece, piece.first) for piece in split_network(cluster, end.network)]


def _outcome_key(finding: Finding) -> Hashable:
    """What must be equal for two pieces to be reported as one: the answers, and which
    policies, rules and peers decided them (reasons may name the address, so they are not
    compared)."""
    if finding.summary is not None:
        return tuple(
            (i.protocol, i.first, i.last, i.verdict.allowed, i.verdict.egress.allowed, i.verdict.ingress.allowed)
            for i in finding.summary.intervals
        )
    verdict = finding.verdict
    assert verdict is not None
    halves = tuple(
        (
            half.allowed,
            half.bypass,
            tuple(
                (p.policy, p.allows, tuple((r.index, r.matched, tuple(x.matched for x in r.peers)) for r in p.rules))
                for p in half.policies
            ),
        )
        for half in (verdict.egress, verdict.ingress)
    )
    return verdict.allowed, halves


def _adjacent(previous: Finding, current: Finding) -> bool:
    def follows(a: AddressRange | None, b: AddressRange | None) -> bool:
        return a is not None and b is not None and int(a.last) + 1 == int(b.first)

    same_source = previous.source_range == current.source_range and previous.source == current.source
    return (same_source and follows(previous.destination_range, current.destination_range)) or (
        previous.destination_range == current.destination_range
        and previous.destination == current.destination
        and follows(previous.source_range, current.source_range)
    )


def _join(first: AddressRange | None, second: AddressRange | None) -> AddressRange | None:
    if first is None or second is None or first == second:
        return first
    return AddressRange(first.first, second.last)


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
    for end in (query.source.endpoint, query.destination.endpoint):
        if isinstance(end, Pod):
            addresses.extend(end.ips)
        elif isinstance(end, Node):
            addresses.extend(end.addresses)
    if addresses and all(a.version == 6 for a in addresses):
        return Family.IPV6
    return Family.IPV4
