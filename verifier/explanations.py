"""What ``policyctl explain`` tells: one finding per distinct explanation of a connection.

An end may be a CIDR: it is cut where the verdict may differ (ipBlock boundaries, the other
end's node addresses, :mod:`verifier.ranges`), each piece is keyed by what decides it (the
verifier's view of the piece against the other end's rules, :func:`_piece_key`), one
representative per key is decided by the reference semantics, and keys with equal outcomes
share one finding listing every range they cover. The size of the answer grows with distinct
explanations, not with ipBlocks times ranges. The per-pair reasons come from the oracle
(:func:`policy.semantics.evaluate`, :func:`policy.portsummary.summarize_ports`), so what
explain says is what the semantics decide.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from policyctl.policy.model import Direction, Family, IPAddress, IPBlockPeer, Pod, Protocol
from policyctl.policy.cluster import Cluster

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


def compute_findings(cluster: Cluster, query: Query) -> tuple[Finding, ...]:
    """One finding per distinct explanation, in the order of the first address it covers.

    Pieces are grouped by key (what every policy sees of their addresses and whether they are
    the other end's node), one representative per key is decided, and keys whose outcomes are
    equal (:func:`outcome_key`) share a finding, listing every range they cover."""
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
        entry = merged.setdefault(outcome_key(finding), (finding, [], []))
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
    matching the piece. Pieces with equal keys have equal :func:`outcome_key` (the
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


def outcome_key(finding: Finding) -> Hashable:
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
