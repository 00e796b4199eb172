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

from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
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
from policyctl.policy.model import Cluster, Direction, Family, IPAddress, IPBlockPeer, Node, Pod, Protocol

if TYPE_CHECKING:
    from policyctl.policy.addressranges import AddressRange
    from policyctl.policy.endpoints import ResolvedEndpoint
    from policyctl.policy.portsummary import PortSummary
    from policyctl.policy.verdicts import DirectionVerdict, Endpoint, PeerResult, Verdict
    from policyctl.verifier.index import PolicyIndex
    from policyctl.verifier.ranges import Piece, RangeSet


@dataclass(frozen=True, slots=True)
class Finding:
    """One explanation: ``verdict`` with ``--port``, else ``summary``, for the representative
    ends ``source`` and ``destination``. ``source_range``/``destination_range`` are set when
    that end was a CIDR: every address the explanation covers."""

    source: Endpoint
    destination: Endpoint
    source_range: RangeSet | None = None
    destination_range: RangeSet | None = None
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


def compute_findings(cluster: Cluster, query: Query) -> tuple[Finding, ...]:
    """One finding per distinct explanation, in the order of the first address it covers.

    Pieces are grouped by key (what every policy sees of their addresses and whether they are
    the other end's node), one representative per key is decided, and keys whose outcomes are
    equal (:func:`_outcome_key`) share a finding, listing every range they cover."""
    from policyctl.verifier.index import PolicyIndex
    from policyctl.verifier.ranges import RangeSet

    index = PolicyIndex(cluster) if query.source.network is not None or query.destination.network is not None else None
    sources = _pieces(cluster, index, query.source, query.destination, family=query.family, is_source=True)
    destinations = _pieces(cluster, index, query.destination, query.source, family=query.family, is_source=False)
    by_key: dict[tuple[object, object], tuple[Endpoint, Endpoint, list[AddressRange], list[AddressRange]]] = {}
    for source_key, source, source_range in sources:
        for destination_key, destination, destination_range in destinations:
            found = by_key.setdefault((source_key, destination_key), (source, destination, [], []))
            if source_range is not None:
                found[2].append(source_range)
            if destination_range is not None:
                found[3].append(destination_range)
    merged: dict[Hashable, tuple[Finding, list[AddressRange], list[AddressRange]]] = {}
    for source, destination, source_ranges, destination_ranges in by_key.values():
        finding = _decide(cluster, query, source, destination)
        entry = merged.setdefault(_outcome_key(finding), (finding, [], []))
        entry[1].extend(source_ranges)
        entry[2].extend(destination_ranges)
    findings = [
        _widen(
            Finding(
                finding.source,
                finding.destination,
                RangeSet.merged(source_ranges) if source_ranges else None,
                RangeSet.merged(destination_ranges) if destination_ranges else None,
                finding.verdict,
                finding.summary,
            )
        )
        for finding, source_ranges, destination_ranges in merged.values()
    ]
    return tuple(sorted(findings, key=_order))


def _widen(finding: Finding) -> Finding:
    """The representative's verdict told for every address the finding covers: an ipBlock
    peer is matched when it matches some of them, and then says which (``ipBlock`` matches an
    address "in cidr and in no except", so a peer's addresses are interval arithmetic)."""
    from policyctl.compiler.intervals import block_intervals
    from policyctl.policy.addressranges import AddressRange
    from policyctl.policy.verdicts import PeerResult

    covered = finding.source_range or finding.destination_range
    if covered is None or finding.source_range is not None and finding.destination_range is not None:
        return finding
    rep = covered.first

    def peer(result: PeerResult) -> PeerResult:
        if not isinstance(result.peer, IPBlockPeer):
            return result
        hits = covered.within((i.low, i.high) for i in block_intervals(result.peer.cidr, result.peer.excepts))
        if not hits.ranges or hits == covered and result.matched:
            return result
        if hits.ranges == (AddressRange(rep, rep),):
            return result
        return PeerResult(result.peer, True, (f"matches {hits} of these addresses",))

    def half(verdict: DirectionVerdict) -> DirectionVerdict:
        policies = tuple(
            replace(p, rules=tuple(replace(r, peers=tuple(peer(x) for x in r.peers)) for r in p.rules))
            for p in verdict.policies
        )
        return replace(verdict, policies=policies)

    def whole(verdict: Verdict) -> Verdict:
        return replace(verdict, egress=half(verdict.egress), ingress=half(verdict.ingress))

    if finding.verdict is not None:
        return replace(finding, verdict=whole(finding.verdict))
    assert finding.summary is not None
    intervals = tuple(replace(i, verdict=whole(i.verdict)) for i in finding.summary.intervals)
    return replace(finding, summary=replace(finding.summary, intervals=intervals))


def _order(finding: Finding) -> tuple[int, int]:
    return tuple(  # type: ignore[return-value]
        int(r.first) if r is not None else -1 for r in (finding.source_range, finding.destination_range)
    )


def _decide(cluster: Cluster, query: Query, source: Endpoint, destination: Endpoint) -> Finding:
    from policyctl.policy.portsummary import summarize_ports
    from policyctl.policy.semantics import evaluate
    from policyctl.policy.verdicts import Connection

    if query.port is None:
        summary = summarize_ports(cluster, source, destination, family=query.family)
        return Finding(source, destination, summary=summary)
    number, protocol = query.port
    connection = Connection(source, destination, protocol, number, family=query.family)
    return Finding(source, destination, verdict=evaluate(cluster, connection))


def _pieces(
    cluster: Cluster,
    index: PolicyIndex | None,
    end: ResolvedEndpoint,
    other: ResolvedEndpoint,
    *,
    family: Family,
    is_source: bool,
) -> list[tuple[object, Endpoint, AddressRange | None]]:
    """(key, representative end, range) per piece of ``end``; one piece unless it is a CIDR.
    The representative of a key is the first address of its first piece."""
    from policyctl.verifier.ranges import pieces

    if end.network is None:
        assert end.endpoint is not None
        return [(None, end.endpoint, None)]
    assert index is not None
    own: tuple[IPAddress, ...] = ()
    if isinstance(other.endpoint, Pod) and other.endpoint.node is not None:
        node = cluster.node_by_name.get(other.endpoint.node)
        own = node.addresses if node is not None else ()
    key = _piece_key(index, other.endpoint, family=family, is_source=is_source)
    first: dict[object, IPAddress] = {}
    found = []
    for piece in pieces(index, end.network, own_node=own):
        chosen = key(piece)
        representative = first.setdefault(chosen, piece.range.first)
        found.append((chosen, representative, piece.range))
    return found  # type: ignore[return-value]


def _piece_key(
    index: PolicyIndex, other: Endpoint | None, *, family: Family, is_source: bool
) -> Callable[[Piece], object]:
    """What decides the explanation of a piece of addresses facing ``other``: whether it is
    ``other``'s own node, and, when ``other`` is a pod, the ports the pod's half allows
    (``Decider.half``, every tier included) and which of the rules applying to it have a peer
    matching the piece. Pieces with equal keys have equal :func:`_outcome_key` (the
    verifier's decisions are those of the oracle, property-tested), so a few keys stand for
    many pieces: one per rule outcome, not one per ipBlock."""
    from policyctl.verifier.decisions import Decider
    from policyctl.verifier.index import EndKind

    if not isinstance(other, Pod):
        return lambda piece: piece.own_node
    decider = Decider(index)
    direction = Direction.INGRESS if is_source else Direction.EGRESS
    view = index.view_of_pod(other, family)
    rules = [index.rules[i] for i in index.applying(view.selectors, direction)[1]] if view.kind is EndKind.POD else []

    def key(piece: Piece) -> object:
        matches = tuple(decider.peer_matches(rule, piece.view) for rule in rules)
        return piece.own_node, decider.half(direction, view, piece.view), matches

    return key


def _outcome_key(finding: Finding) -> Hashable:
    """What must be equal for two pieces to be reported as one: the answers, the bypasses and
    which policies and rules decided them. Which ipBlock peer of a rule matched is left out:
    a rule listing one address per peer would otherwise make one explanation per address;
    :func:`_widen` says which of the covered addresses each peer matches instead. Reasons
    may name the address, so they are not compared. Without a port: the answers per port
    interval and the port-independent part shown (the first interval's verdict)."""
    if finding.summary is not None:
        answers = tuple(
            (i.protocol, i.first, i.last, i.verdict.allowed, i.verdict.egress.allowed, i.verdict.ingress.allowed)
            for i in finding.summary.intervals
        )
        sample = finding.summary.intervals[0].verdict
        return answers, _halves_key(sample, with_ports=False)
    verdict = finding.verdict
    assert verdict is not None
    return verdict.allowed, _halves_key(verdict, with_ports=True)


def _halves_key(verdict: Verdict, *, with_ports: bool) -> Hashable:
    return tuple(
        (
            half.allowed if with_ports else None,
            half.bypass,
            half.isolated,
            tuple(
                (
                    p.policy,
                    p.allows if with_ports else None,
                    tuple((r.index, r.matched if with_ports else None, r.peer_matched) for r in p.rules),
                )
                for p in half.policies
            ),
        )
        for half in (verdict.egress, verdict.ingress)
    )


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
