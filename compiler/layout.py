"""How the ruleset of a node names its sets, chains and maps, and what each kind of set holds.

Names follow from what a piece does (a direction, a family, a peer identity's id), so equal
input gives equal names on every node and in every compile; a set's :class:`SetLayout` travels
beside its name, so nothing reads a set's kind back out of the name.
"""

from __future__ import annotations

import enum
import hashlib
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from policyctl.policy.model import Direction, Family

from .ruleset import FieldType

FAMILIES = (Family.IPV4, Family.IPV6)
COMMENT_MAX_BYTES = 128


class Identified(typing.Protocol):
    """What naming reads of a peer identity: its id."""

    @property
    def id(self) -> str: ...


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


#: Ends a comment whose sources did not all fit.
MORE = " +more"


MOST_SHOWN = COMMENT_MAX_BYTES // 2 + 1
"""No comment shows more sources than this: ``k`` of them take ``2 * (k - 1)`` bytes of
separators alone."""


def terse_comment(sources: Iterable[str]) -> str:
    """Sources joined, within nft's 128-byte comment limit; what does not fit is marked
    ``+more``, never counted. A comment is part of its rule, and a rule whose comment changes
    must be re-added: the kernel then re-validates the table's whole chain graph (a set lookup
    or a verdict makes it; 1.1-1.5 ms at 10k pods with jumping peer maps, measured on the
    commit: ``bench/README.md``) and the rule's counter restarts. A count of the sources left
    out would change whenever a pod brings or takes one (a shared identity's rule can have
    dozens), so every such pod event would rewrite the rule; the names shown change only when
    one of them comes or goes."""
    return sorted_terse_comment(sorted(set(sources)))


def sorted_terse_comment(items: Sequence[str]) -> str:
    """:func:`terse_comment` of distinct sources already in order. Only the first
    :data:`MOST_SHOWN` are read, and their lengths are counted, not joined, so a set that
    keeps its sources in order (``tracking.SetState``: hundreds at 100k pods) pays the same
    for its comment whatever their number."""
    shown = items[:MOST_SHOWN]
    widths = [len(item.encode()) for item in shown]
    used = sum(widths) + 2 * max(len(shown) - 1, 0)
    for keep in range(len(shown), 0, -1):
        more = MORE if keep < len(items) else ""
        if used + len(more) <= COMMENT_MAX_BYTES:
            return "; ".join(shown[:keep]) + more
        used -= widths[keep - 1] + (2 if keep > 1 else 0)
    if not items:
        return ""
    suffix = "~" + (MORE if len(items) > 1 else "")
    head = items[0].encode()[: COMMENT_MAX_BYTES - len(suffix)].decode(errors="ignore")
    return head + suffix


class SetKind(enum.Enum):
    """What a set of a direction holds. A peer identity's sets (read by its chain) and the
    peerless ones hold ``local [. protocol . port]``; ipBlock sets ``peer range . local [.
    protocol . port]``, always with the interval flag."""

    PEER_PORTS = "ports"
    PEER_ANY = "peer-any"
    BLOCKS_PORTS = "blocks-ports"
    BLOCKS_ANY = "blocks-any"
    ANY_PORTS = "any-ports"
    ANY = "any"


@dataclass(frozen=True, slots=True)
class SetLayout:
    """A set's direction, family and kind, which fix its field types and where the local pod's
    address is; kept beside the set's name so that nothing reads them back out of it."""

    direction: Direction
    family: Family
    kind: SetKind

    @property
    def blocks(self) -> bool:
        return self.kind in (SetKind.BLOCKS_PORTS, SetKind.BLOCKS_ANY)

    @property
    def ports(self) -> bool:
        return self.kind in (SetKind.PEER_PORTS, SetKind.BLOCKS_PORTS, SetKind.ANY_PORTS)

    @property
    def types(self) -> tuple[FieldType, ...]:
        address = FieldType.address(self.family)
        addresses = (address, address) if self.blocks else (address,)
        return addresses + ((FieldType.PROTO, FieldType.SERVICE) if self.ports else ())


LAYOUTS = {(d, f, k): SetLayout(d, f, k) for d in Direction for f in Family for k in SetKind}
"""Every layout, made once: gathering looks them up per element."""


def prefix(direction: Direction) -> str:
    return "in" if direction is Direction.INGRESS else "out"


def peer_set_name(direction: Direction, peer: Identified, what: str, family: Family) -> str:
    link = "from" if direction is Direction.INGRESS else "to"
    return f"{prefix(direction)}-{link}-{peer.id}-{what}-v{_v(family)}"


def peer_chain_name(direction: Direction, peer: Identified) -> str:
    link = "from" if direction is Direction.INGRESS else "to"
    return f"{prefix(direction)}-{link}-{peer.id}"


def shared_set_name(direction: Direction, suffix: str, family: Family) -> str:
    return f"{prefix(direction)}-{suffix}-v{_v(family)}"


def allow_chain_name(direction: Direction, family: Family) -> str:
    return f"{prefix(direction)}-allow-v{_v(family)}"


def peer_map_name(direction: Direction, family: Family) -> str:
    return f"{prefix(direction)}-peers-v{_v(family)}"


def peer_bit_set_name(direction: Direction, family: Family, position: int) -> str:
    """The set of peer addresses whose identity number sets mark bit ``position``
    (``markedpeers``)."""
    return f"{prefix(direction)}-peers-b{position}-v{_v(family)}"


def identity_map_name(direction: Direction, family: Family) -> str:
    """The verdict map from a peer's identity mark value to its identity chain (``markedpeers``)."""
    return f"{prefix(direction)}-identities-v{_v(family)}"


def marked_chain_name(direction: Direction, family: Family) -> str:
    """The chain that numbers a peer in mark bits and looks the number up (``markedpeers``),
    entered only by packets that arrive with those bits clear."""
    return f"{prefix(direction)}-marked-v{_v(family)}"


def marked_entry_chain_name(identity_chain: str) -> str:
    """The chain the identity map jumps to for ``identity_chain``: it clears the mark bits
    and goes to the identity chain, which itself leaves the mark alone (``markedpeers``)."""
    head, _, rest = identity_chain.partition("-")
    return f"{head}-marked-{rest}"


def identity_chain_of_entry(entry_chain: str) -> str:
    """The identity chain ``marked_entry_chain_name`` made ``entry_chain`` for."""
    head, _, rest = entry_chain.partition("-marked-")
    return f"{head}-{rest}"


def foreign_chain_name(direction: Direction, family: Family, positions: tuple[int, ...] = ()) -> str:
    """A chain of the tree that decides, without marks, the peers of packets that arrive with
    some mark bit already set (``markedpeers``): the root, or the chain of the numbers whose
    highest set bits are ``positions`` (mark bit positions, highest first)."""
    bits = "".join(f"-b{p}" for p in positions)
    return f"{prefix(direction)}-foreign{bits}-v{_v(family)}"


def peer_chain_prefix(direction: Direction) -> str:
    """What the name of every peer identity chain of ``direction`` starts with."""
    return f"{prefix(direction)}-{'from' if direction is Direction.INGRESS else 'to'}-"


def _v(family: Family) -> str:
    return "4" if family is Family.IPV4 else "6"


def dispatch_map_name(direction: Direction, family: Family) -> str:
    return f"{direction.value.lower()}-v{_v(family)}"


def node_set_name(family: Family) -> str:
    return f"node-v{_v(family)}"


def policed_set_name(direction: Direction, family: Family) -> str:
    """The set of the local pods that have a chain in ``direction``: the addresses the
    dispatch map of that direction holds."""
    return f"{direction.value.lower()}-policed-v{_v(family)}"


def new_pod_set_name(family: Family) -> str:
    """The set of this node's pod range that no known pod holds (``newpods``)."""
    return f"new-pods-v{_v(family)}"
