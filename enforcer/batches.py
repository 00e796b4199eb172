"""Which transactions the enforcer sends as nfnetlink batches of its own, and their messages.

libnftables charges every transaction its cache fetch and its evaluation of each command
before the kernel sees it, more than the kernel's own commit for what an event changes (a few
elements, or a local pod's chains). A transaction all of whose commands one of the encoders
encodes exactly goes as those messages: elements of the table's sets and maps
(:mod:`~policyctl.enforcer.elementbatch`); regular chains and rules of a small vocabulary
(:mod:`~policyctl.enforcer.rulebatch`); sets and maps of the kinds the compiler makes, created
and deleted (:mod:`~policyctl.enforcer.setbatch`). Any other goes through libnftables whole,
so one batch is never split between the two paths and stays atomic.

The commands other than elements are encoded first: they are few, and the one an encoder does
not take is found before the elements (most of an event's bytes) are encoded for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policyctl.enforcer.elementbatch import element_messages
from policyctl.enforcer.nfmessages import NFPROTO, Batch, BatchMessage, Unencodable
from policyctl.enforcer.rulebatch import chain_messages, rule_messages
from policyctl.enforcer.setbatch import set_messages
from policyctl.enforcer.tables import SetState

#: A netlink socket takes a send of at most its send buffer (212,992 bytes by default); a
#: larger transaction (a resync's worth, never an event's) is left to libnftables.
MAX_BATCH_BYTES = 128 * 1024


def transaction_batch(
    commands: Sequence[Mapping[str, Any]], sets: Mapping[str, SetState], *, family: str, table: str
) -> Batch | None:
    """The nfnetlink messages of ``commands`` (of table ``family`` ``table``, whose sets and
    maps are ``sets``) when every command is one the encoders encode and they fit one send,
    else None."""
    nfproto = NFPROTO.get(family)
    if not commands or nfproto is None:
        return None
    encoded: dict[int, list[BatchMessage]] = {}
    elements: list[tuple[int, str, Any, SetState | None]] = []
    known: Mapping[str, SetState] = sets
    own: dict[str, SetState] | None = None
    try:
        for index, command in enumerate(commands):
            verb, kind, target = _parts(command, family=family, table=table)
            if kind == "element":
                name = target.get("name")
                elements.append((index, verb, target.get("elem"), known.get(name) if isinstance(name, str) else None))
            elif kind == "chain":
                encoded[index] = chain_messages(index, verb, target, table=table)
            elif kind == "rule":
                encoded[index] = rule_messages(index, verb, target, known, table=table)
            elif kind in ("set", "map"):
                encoded[index], created = set_messages(index, verb, kind, target, table=table, set_id=index + 1)
                if own is None:
                    known = own = dict(sets)
                own.pop(target["name"], None)
                if created is not None:
                    own[created.name] = created
            else:
                raise Unencodable
        for index, verb, chosen, found in elements:
            encoded[index] = element_messages(index, verb, chosen, found, table=table)
    except Unencodable:
        return None
    messages = tuple(m for index in range(len(commands)) for m in encoded[index])
    if sum(len(m.body) for m in messages) > MAX_BATCH_BYTES:
        return None
    return Batch(nfproto, messages)


def _parts(command: Mapping[str, Any], *, family: str, table: str) -> tuple[str, str, Mapping[str, Any]]:
    """A command's verb, object kind and object, when it is of table ``family`` ``table``."""
    if len(command) != 1:
        raise Unencodable
    (verb, body), = command.items()
    if not isinstance(body, Mapping) or len(body) != 1:
        raise Unencodable
    (kind, target), = body.items()
    if not isinstance(target, Mapping) or target.get("family") != family or target.get("table") != table:
        raise Unencodable
    return verb, kind, target
