"""Why the kernel dropped a packet: a logged drop turned into a flow and the model's reason.

The ruleset logs a denied new connection just before dropping it, with the prefix
``policyctl drop isolated <direction> `` (``policyctl audit ...`` in audit mode, where the packet
passes): the prefix says which half denied it, the packet says the flow (addresses, protocol,
destination port) and so the local pod (the egress half's source, the ingress half's
destination), since an isolated pod's chain is shared by the local pods with the same isolating
policies and entered by the pod's address. A pod that cluster-scoped policies apply to has a
chain of its own, whose prefix names it: ``policyctl drop <direction> <namespace/pod> ``.

The reason is not guessed from the rule that logged: the flow is decided again by the
reference semantics (``policy.semantics``, the model ``policyctl explain`` prints), on the
cluster the caller gives (the agent's view, or the manifests of ``-f``), so a drop is explained
exactly as ``explain`` explains that connection: the isolating policies and why no rule
matched, the hints (the nearest rule and what it would need), or for a cluster-scoped policy
the Deny rule itself with its tier and priority.

Two rules of the base chains drop what no policy decides, and log with prefixes of their own
(``policyctl drop mid-stream <direction> ``, ``policyctl drop new-pod <direction> ``): a TCP
packet without SYN that conntrack picked up as a new connection (a revoked connection, or one
whose entry was lost) from or to a policed pod, and the traffic of an address of the node's pod
range that no known pod holds yet (the new-pod window). The model has no verdict on either, so
such a drop has no explanation but a :attr:`Drop.reason` naming the policed pod or the unknown
address and its node, checked against the cluster like a pod chain's drop.

When the model does not deny what the kernel dropped (the cluster given is not the one the
ruleset was compiled from, or the address belongs to no pod the prefix names), the drop is
still reported, with the disagreement in :attr:`Drop.problem`: never silently explained away.

Pure: no I/O. :class:`AddressBook` turns packet addresses into pods, nodes or outside
addresses, kept from snapshot to snapshot by their changes, so attributing a drop costs a
dictionary lookup and one evaluation of one half.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from policyctl.compiler.droplog import ISOLATED, MIDSTREAM, NEW_POD, log_prefix
from policyctl.compiler.ruleset import Mode
from policyctl.enforcer.nflog import LoggedPacket
from policyctl.enforcer.packetheaders import HeaderError, Headers, parse_headers
from policyctl.policy.ipblocks import describe
from policyctl.policy.matchers import AnyPolicy, selecting, takes_part
from policyctl.policy.model import Direction, IPAddress, Node, Pod
from policyctl.policy.cluster import Cluster
from policyctl.policy.snapshots import changed_objects
from policyctl.policy.semantics import evaluate_direction, selecting_policies
from policyctl.policy.verdicts import Connection, DecidedBy, DirectionVerdict, Endpoint, TierOutcome

SCHEMA_VERSION = 1
#: Verdicts an address book remembers before it starts over.
EXPLAINED_MAX = 4096
PREFIX_HEAD = "policyctl "
_DIRECTIONS = {"ingress": Direction.INGRESS, "egress": Direction.EGRESS}
POD_CHAIN = "pod-chain"
#: The ``policy`` label of ``policyctl_dropped_packets_total`` for the base chains' drops, which
#: no policy decides (parenthesized: no policy's ``namespace/name`` can look like them).
BASE_RULE_LABELS = {MIDSTREAM: "(mid-stream)", NEW_POD: "(new pod)"}


@dataclass(frozen=True, slots=True)
class LogPrefix:
    """What the logging rule says: ``drop`` or ``audit`` (logged, let through), the half,
    and the local pod whose chain logged (its key as the compiler wrote it, possibly cut to
    fit nft's 127-character prefix). ``rule`` is :data:`POD_CHAIN`, :data:`ISOLATED` for a
    shared pod chain's rule, or for a base chain's rule :data:`MIDSTREAM` or :data:`NEW_POD`
    (``pod`` then is "": the rule was reached by, or looked up, the local address, and the
    packet holds it)."""

    action: str
    direction: Direction
    pod: str
    rule: str = POD_CHAIN

    @property
    def text(self) -> str:
        if self.rule != POD_CHAIN:
            return f"{PREFIX_HEAD}{self.action} {self.rule} {self.direction.value.lower()}"
        return f"{PREFIX_HEAD}{self.action} {self.direction.value.lower()} {self.pod}"


def parse_prefix(text: str) -> LogPrefix | None:
    """``policyctl drop isolated ingress ``, ``policyctl drop ingress x/a `` or ``policyctl
    drop mid-stream ingress `` -> its parts; None for a prefix that is not ours."""
    words = text.strip().split(" ")
    if len(words) == 4 and (words[2] in BASE_RULE_LABELS or words[2] == ISOLATED):
        if f"{words[0]} " != PREFIX_HEAD or words[1] not in ("drop", "audit") or words[3] not in _DIRECTIONS:
            return None
        return LogPrefix(words[1], _DIRECTIONS[words[3]], "", words[2])
    if len(words) != 4 or f"{words[0]} " != PREFIX_HEAD or words[1] not in ("drop", "audit"):
        return None
    direction = _DIRECTIONS.get(words[2])
    return None if direction is None else LogPrefix(words[1], direction, words[3])


_Rank = tuple[int, bool, str]


class AddressBook:
    """Which end an address is in one cluster snapshot, as ``explain`` resolves an address:
    a pod's address names the pod (a pod network pod before a hostNetwork pod sharing it),
    else a node's address names the node, else it is an address outside the cluster.

    :meth:`following` makes the book of a later snapshot from this one by the snapshots'
    changes: the agent explains drops on every applied snapshot, and sorting every pod again
    for each cost 86 ms at 100,000 pods, on the thread that shares the interpreter with the
    event path. An address more than one end claims keeps its claimants in order of
    precedence (:func:`_rank`), so the next one names it when the first leaves."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._owners: dict[IPAddress, Pod | Node] | None = {}
        self._contested: dict[IPAddress, list[tuple[_Rank, Pod | Node]]] = {}
        ends: list[Pod | Node] = [*cluster.nodes, *cluster.pods]
        for end in ends:
            self._claim(end)
        self._verdicts: dict[tuple[Connection, Direction], DirectionVerdict] = {}

    @classmethod
    def following(cls, book: AddressBook | None, cluster: Cluster) -> AddressBook:
        """The book of ``cluster``, made from ``book`` (of an earlier snapshot, or None) by
        what changed between them; ``book`` is spent (its claims move to the new book)."""
        if book is not None and book.cluster is cluster:
            return book
        if book is None or book._owners is None:
            return cls(cluster)
        new = cls.__new__(cls)
        new.cluster, new._owners, new._contested, new._verdicts = cluster, book._owners, book._contested, {}
        book._owners = None
        gone_nodes, came_nodes = changed_objects(book.cluster.nodes, cluster.nodes)
        gone_pods, came_pods = changed_objects(book.cluster.pods, cluster.pods)
        gone: list[Pod | Node] = [*gone_nodes, *gone_pods]
        came: list[Pod | Node] = [*came_nodes, *came_pods]
        for end in gone:
            new._withdraw(end)
        for end in came:
            new._claim(end)
        return new

    def end(self, address: IPAddress) -> Endpoint:
        if self._owners is None:
            raise RuntimeError("this address book was spent on a later snapshot's")
        return self._owners.get(address, address)

    def _claim(self, end: Pod | Node) -> None:
        owners, contested = self._owners, self._contested
        assert owners is not None
        for address in _addresses(end):
            held = owners.setdefault(address, end)
            if held is end:
                continue
            claimants = contested.get(address)
            if claimants is None:
                claimants = contested[address] = [(_rank(held), held)]
            claimants.append((_rank(end), end))
            claimants.sort(key=lambda c: c[0])
            owners[address] = claimants[0][1]

    def _withdraw(self, end: Pod | Node) -> None:
        owners, contested = self._owners, self._contested
        assert owners is not None
        for address in _addresses(end):
            claimants = contested.get(address)
            if claimants is None:
                del owners[address]
                continue
            claimants[:] = [c for c in claimants if c[1] is not end]
            owners[address] = claimants[0][1]
            if len(claimants) == 1:
                del contested[address]

    def explain(self, connection: Connection, direction: Direction) -> DirectionVerdict:
        """The oracle's verdict on one half, remembered: a denied client retries (TCP resends
        its SYN), and every retry is logged as one more drop of the same connection."""
        key = (connection, direction)
        found = self._verdicts.get(key)
        if found is None:
            if len(self._verdicts) >= EXPLAINED_MAX:
                self._verdicts.clear()
            found = self._verdicts[key] = evaluate_direction(self.cluster, connection, direction)
        return found


def _rank(end: Pod | Node) -> _Rank:
    """Which claimant of a shared address names it: pods before nodes, a pod network pod
    before a hostNetwork one, then the first by key or name."""
    if isinstance(end, Pod):
        return (0, end.host_network, end.key)
    return (1, False, end.name)


def _addresses(end: Pod | Node) -> tuple[IPAddress, ...]:
    addresses = end.ips if isinstance(end, Pod) else end.addresses
    return addresses if len(addresses) < 2 else tuple(dict.fromkeys(addresses))


@dataclass(frozen=True, slots=True)
class Drop:
    """One logged drop: when (Unix seconds), what the logging rule said, the packet's flow,
    the two ends as the cluster names them, and the model's verdict on the half that
    dropped it (``half``, as ``explain`` shows it; None when the flow cannot be decided:
    then ``problem`` says why). ``problem`` is also set when the model disagrees with the
    kernel. A base chain's drop (mid-stream, new pod) has no half: ``reason`` says what the
    rule stands for, on this packet."""

    time: float
    prefix: LogPrefix
    headers: Headers
    source: Endpoint
    destination: Endpoint
    half: DirectionVerdict | None
    problem: str = ""
    reason: str = ""

    @property
    def audit(self) -> bool:
        return self.prefix.action == "audit"

    @property
    def local(self) -> Endpoint:
        """The end on this node the dropping rule is about: the egress half's source, the
        ingress half's destination; for a mid-stream drop the policed pod, which is the
        sender when it is policed for ingress (the server of the connection picked up)."""
        return self.source if self.local_is_source else self.destination

    @property
    def local_is_source(self) -> bool:
        source_side = Direction.INGRESS if self.prefix.rule == MIDSTREAM else Direction.EGRESS
        return self.prefix.direction is source_side

    @property
    def pod(self) -> str | None:
        """The pod the drop is reported for: the pod chain's (a shared chain's: the pod
        holding the packet's local address), the policed pod of a mid-stream drop, None for
        the new-pod window (no known pod holds the address)."""
        if self.prefix.rule == POD_CHAIN:
            return self.prefix.pod
        local = self.local
        return local.key if self.prefix.rule in (ISOLATED, MIDSTREAM) and isinstance(local, Pod) else None

    @property
    def policy_label(self) -> str:
        """The ``policy`` label of ``policyctl_dropped_packets_total``: the deciding policies,
        "none" when the model does not explain the drop, or the base rule's marker."""
        return BASE_RULE_LABELS.get(self.prefix.rule) or ",".join(self.policies) or "none"

    @property
    def policies(self) -> tuple[str, ...]:
        """The policies the drop is attributed to: the cluster policy whose Deny rule
        decided, else the NetworkPolicies isolating the pod in this direction."""
        half = self.half
        if half is None:
            return ()
        outcome = _deciding_tier(half)
        if outcome is not None and outcome.deciding is not None:
            return (str(outcome.deciding.policy),)
        return tuple(str(p.policy) for p in half.policies)


def _deciding_tier(half: DirectionVerdict) -> TierOutcome | None:
    if half.decided_by is DecidedBy.ADMIN:
        return half.admin
    if half.decided_by is DecidedBy.BASELINE:
        return half.baseline
    return None


def connection_of(headers: Headers, book: AddressBook) -> Connection | None:
    """The new connection the packet starts, with its ends named as in the cluster; None when
    it has no TCP, UDP or SCTP destination port (policies decide nothing else by port). A pod
    whose packet reaches its own address has come back through a Service (DNAT on its node):
    a pod reaching itself directly never meets the hooks."""
    protocol = headers.policy_protocol
    if protocol is None or headers.port is None:
        return None
    source, destination = book.end(headers.source), book.end(headers.destination)
    hairpin = isinstance(source, Pod) and isinstance(destination, Pod) and source.key == destination.key
    return Connection(source, destination, protocol, headers.port, headers.family, via_service=hairpin)


def attribute(packet: LoggedPacket, book: AddressBook, *, now: float) -> Drop | None:
    """The drop a logged packet stands for, explained on ``book``'s cluster; None when the
    packet was not logged by a policyctl drop rule. ``now`` is used when the kernel gave the
    packet no timestamp. Raises :class:`HeaderError` when the packet's bytes cannot be read."""
    prefix = parse_prefix(packet.prefix)
    if prefix is None:
        return None
    when = packet.timestamp if packet.timestamp is not None else now
    try:
        headers = parse_headers(packet.payload)
    except HeaderError as error:
        owner = {POD_CHAIN: f"{prefix.pod}'s", ISOLATED: "an isolated pod's"}.get(prefix.rule, f"the {prefix.rule}")
        raise HeaderError(f"a packet logged by {owner} {prefix.direction.value.lower()} rule cannot be read "
                          f"({error}; {len(packet.payload)} bytes copied)") from None
    source, destination = book.end(headers.source), book.end(headers.destination)
    if prefix.rule not in (POD_CHAIN, ISOLATED):
        return _base_rule_drop(Drop(when, prefix, headers, source, destination, None), book.cluster)
    connection = connection_of(headers, book)
    local = source if prefix.direction is Direction.EGRESS else destination
    if connection is None:
        isolating = _isolating(book.cluster, local, prefix.direction)
        whose = prefix.pod if prefix.rule == POD_CHAIN else describe(local)
        problem = (f"{headers.protocol_name} has no port a policy could name; {whose} admits only listed "
                   f"protocols and ports for {prefix.direction.value.lower()}{isolating}")
        return Drop(when, prefix, headers, source, destination, None, problem)
    half = book.explain(connection, prefix.direction)
    return Drop(when, prefix, headers, source, destination, half, _disagreement(prefix, half, local))


MIDSTREAM_REASON = ("TCP without SYN that conntrack does not track (a connection revoked or whose entry was lost): "
                    "mid-stream pickups of policed pods are dropped")


def _base_rule_drop(drop: Drop, cluster: Cluster) -> Drop:
    """``drop`` (of a base chain's rule) with its reason, and a problem when the cluster
    given does not hold what the rule stands for: a mid-stream drop's pod isolated in the
    rule's direction, a new-pod drop's address in a node's pod range and held by no pod."""
    direction = drop.prefix.direction.value.lower()
    local = drop.local
    address = drop.headers.source if drop.local_is_source else drop.headers.destination
    stale = "the ruleset was compiled from another cluster view (stale, or not yet updated)"
    if drop.prefix.rule == MIDSTREAM:
        isolating = _policing(cluster, local, drop.prefix.direction)
        reason = f"{MIDSTREAM_REASON} ({describe(local)} is policed for {direction}{isolating})"
        problem = "" if isolating else f"{describe(local)} is not isolated for {direction} in this cluster: {stale}"
        return replace(drop, reason=reason, problem=problem)
    nodes = sorted(n.name for n in cluster.nodes if any(address in c for c in n.pod_cidrs))
    if not nodes:
        reason = f"address {address} is in no node's pod range in this cluster, and no known pod holds it"
        return replace(drop, reason=reason, problem=f"the new-pod window denied it: {stale}")
    reason = (f"address {address} is in node {nodes[0]}'s pod range and no known pod holds it yet: "
              "the new-pod window denies it until its pod is programmed")
    problem = f"{describe(local)} holds the address in this cluster: {stale}" if isinstance(local, Pod) else ""
    return replace(drop, reason=reason, problem=problem)


def _policing(cluster: Cluster, local: Endpoint, direction: Direction) -> str:
    """`` (isolated by x/p, ...)``: the policies that give ``local`` a chain in ``direction``
    (NetworkPolicies isolating it, cluster-scoped policies with rules in that direction that
    apply to it: :func:`policy.matchers.takes_part`); "" when none does."""
    if not isinstance(local, Pod):
        return ""
    labels = cluster.namespace_labels(local.namespace)
    found: list[AnyPolicy] = [*selecting_policies(cluster, local), *selecting(cluster.cluster_policies, local, labels)]
    refs = [str(p.ref) for p in found if takes_part(p, direction)]
    return f" (isolated by {', '.join(refs)})" if refs else ""


def _isolating(cluster: Cluster, local: Endpoint, direction: Direction) -> str:
    if not isinstance(local, Pod):
        return ""
    refs = [str(p.ref) for p in selecting_policies(cluster, local) if p.isolates(direction)]
    return f" (isolated by {', '.join(refs)})" if refs else ""


def _disagreement(prefix: LogPrefix, half: DirectionVerdict, local: Endpoint) -> str:
    """Why the model does not explain what the kernel did, or "" when it does."""
    mode = Mode.ENFORCE if prefix.action == "drop" else Mode.AUDIT
    if prefix.rule == ISOLATED and not isinstance(local, Pod):
        return (f"the kernel's rule is an isolated pod's but the address is {describe(local)} in this cluster: "
                "the ruleset was compiled from another cluster view")
    if prefix.rule == POD_CHAIN and (
        not isinstance(local, Pod) or log_prefix(mode, prefix.direction, local).strip() != prefix.text
    ):
        return (f"the kernel's rule is {prefix.pod}'s but the address is {describe(local)} in this cluster: "
                "the ruleset was compiled from another cluster view")
    if half.allowed:
        return (f"the model allows this {prefix.direction.value.lower()} half ({half.note}): the ruleset in the "
                "kernel was compiled from another cluster view than this one (stale, or not yet updated)")
    return ""


def _end_document(address: IPAddress, end: Endpoint) -> dict[str, Any]:
    if isinstance(end, Pod):
        kind, name = "pod", end.key
    elif isinstance(end, Node):
        kind, name = "node", end.name
    else:
        kind, name = "address", str(end)
    return {"address": str(address), "kind": kind, "name": name}


def _where(provenance: object) -> str | None:
    return None if provenance is None else str(provenance)


def explanation_document(half: DirectionVerdict) -> dict[str, Any]:
    """The deciding explanation of a denied half, in the words ``explain`` uses: who decided
    (``decided_by``), the note, the isolating NetworkPolicies with their rules, or the
    cluster policy's deciding rule with its tier and priority, and the hints."""
    document: dict[str, Any] = {
        "decided_by": half.decided_by.value,
        "note": half.note,
        "policies": [
            {
                "policy": str(p.policy),
                "source": _where(p.provenance),
                "rules": [
                    {
                        "rule": f"{r.direction.value.lower()}[{r.index}]",
                        "source": _where(r.provenance),
                        "peer_matched": r.peer_matched,
                        "port_matched": r.port_matched,
                    }
                    for r in p.rules
                ],
            }
            for p in half.policies
        ],
        "rule": None,
        "hints": [{"text": h.text, "source": _where(h.provenance)} for h in half.hints],
    }
    outcome = _deciding_tier(half)
    if outcome is not None and outcome.deciding is not None and outcome.deciding.deciding_rule is not None:
        deciding = outcome.deciding
        rule = deciding.deciding_rule.rule  # type: ignore[union-attr]
        document["rule"] = {
            "policy": str(deciding.policy),
            "rule": rule.label,
            "action": rule.action.value,
            "tier": outcome.tier.value,
            "priority": deciding.priority,
            "source": _where(rule.provenance),
            "policy_source": _where(deciding.provenance),
        }
    return document


def drop_document(drop: Drop) -> dict[str, Any]:
    """One drop as one JSON object (``policyctl drops -o json`` prints one per line; the
    agent's ``/drops`` serves the same objects)."""
    headers = drop.headers
    return {
        "schema_version": SCHEMA_VERSION,
        "time": round(drop.time, 6),
        "action": drop.prefix.action,
        "direction": drop.prefix.direction.value.lower(),
        "pod": drop.pod,
        "drop_rule": drop.prefix.rule,
        "reason": drop.reason or None,
        "family": headers.family.value,
        "protocol": headers.protocol_name,
        "port": headers.port,
        "source_port": headers.source_port,
        "source": _end_document(headers.source, drop.source),
        "destination": _end_document(headers.destination, drop.destination),
        "policies": list(drop.policies),
        "explanation": explanation_document(drop.half) if drop.half is not None else None,
        "problem": drop.problem or None,
    }
