"""Errors the enforcer raises on purpose.

The kernel either takes a whole transaction or none of it, so an error always means "nothing
changed": callers can retry the same desired ruleset, and the previous ruleset stays in force.
Each error says what nft said and, when it can be told, which command of the transaction it
was about, so an operator can go from a failed apply to the offending set, chain or rule.

Error tree::

    PolicyctlError                      (policy.diagnostics)
    └── EnforcerError
        ├── BackendUnavailable          no way to talk to nftables here
        ├── NftCommandError             nft refused a payload (its error text)
        │   └── NftApplyError           ... a transaction of ours: object, index, transaction id
        ├── RulesetError                a desired ruleset we cannot read (source, object, field)
        └── ConntrackError              the conntrack tool failed
"""

from __future__ import annotations

import json
from typing import Any

from policyctl.policy.diagnostics import PolicyctlError


class EnforcerError(PolicyctlError):
    """Base of every enforcer error."""


class BackendUnavailable(EnforcerError):
    """Neither the libnftables binding nor the ``nft`` command can be used."""


class NftCommandError(EnforcerError):
    """nft rejected a payload; ``nft_error`` is its error text, without the empty location
    (``internal:0:0-0``) libnftables puts on errors about JSON input. ``index`` is the command
    the kernel named, when the payload was sent as netlink messages of our own (libnftables
    does not say)."""

    def __init__(self, nft_error: str, *, index: int | None = None) -> None:
        lines = (line.removeprefix("internal:0:0-0: ") for line in nft_error.strip().splitlines())
        self.nft_error = "\n".join(line for line in lines if line.strip())
        self.index = index
        super().__init__(self.nft_error or "nft failed without a message")


class NftApplyError(NftCommandError):
    """The kernel rejected one of our transactions, as a whole. ``command`` is the command
    the kernel named (an element batch's answer says which), else the first command of the
    transaction that fails on its own (found by checking ever longer prefixes in dry-run
    mode); ``index`` its position, ``transaction_id`` the digest of the transaction as
    reported in :class:`ApplyReport`."""

    def __init__(
        self,
        nft_error: str,
        *,
        transaction_id: str,
        command: dict[str, Any] | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(nft_error, index=index)
        self.transaction_id = transaction_id
        self.command = command
        about = describe_command(command) if command is not None else "the transaction"
        where = f" (command {index})" if index is not None else ""
        self.args = (
            f"nft rejected transaction {transaction_id}: {self.nft_error} "
            f"while applying {about}{where}; the previous ruleset is still in force",
        )


class RulesetError(EnforcerError):
    """A desired ruleset that is not in the ``nft -j list table`` object format we apply.
    ``source`` names the file (or ``<ruleset>``), ``object`` the object (``set pods4``) and
    ``field`` the offending key."""

    def __init__(self, message: str, *, source: str = "<ruleset>", object: str = "", field: str = "") -> None:
        self.source = source
        self.object = object
        self.field = field
        self.message = message
        parts = [source + ":"]
        if object:
            parts.append(object + ":")
        if field:
            parts.append(field + ":")
        parts.append(message)
        super().__init__(" ".join(parts))


class ConntrackError(EnforcerError):
    """The conntrack tool failed (its error text)."""


def describe_command(command: dict[str, Any]) -> str:
    """``{"add": {"rule": {"chain": "c", ...}}}`` -> ``add rule in chain c: {...}``, short
    enough for a log line but with the whole object, which is what an operator needs."""
    if len(command) != 1:
        return json.dumps(command, sort_keys=True)
    (verb, body), = command.items()
    if not isinstance(body, dict) or len(body) != 1:
        return f"{verb} {json.dumps(body, sort_keys=True)}"
    (kind, obj), = body.items()
    if not isinstance(obj, dict):
        return f"{verb} {kind} {json.dumps(obj, sort_keys=True)}"
    name = obj.get("name") or (f"in chain {obj['chain']}" if "chain" in obj else "")
    shown = {k: v for k, v in obj.items() if k not in ("family", "table")}
    return f"{verb} {kind} {name}: {json.dumps(shown, sort_keys=True)}"
