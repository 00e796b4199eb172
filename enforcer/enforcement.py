"""One node's ruleset put in force: its table made equal to the ruleset in one transaction,
then the tracked connections the ruleset no longer allows cut.

The API leaves open whether a policy change affects established connections ("existing
connections may or may not be affected"); policyctl cuts them (``docs/semantics.md``), so a
revoked flow stops at once instead of living on in conntrack. Both ``policyctl enforce`` and
the lab's nodes go through :func:`enforce_ruleset`, so the lab's packets prove the path a node
runs. A failure to cut is reported, never undoes the apply: the rules are already right, and
only flows established before them may live on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policyctl.enforcer.apply import ApplyReport, Enforcer
from policyctl.enforcer.backend import default_backend
from policyctl.enforcer.conntrack import ConntrackTool, Flow, IPAddress, revoke, ruleset_judge
from policyctl.policy.diagnostics import PolicyctlError


@dataclass(frozen=True, slots=True)
class Enforcement:
    """What one enforcement did: the transaction's report, the flows cut, and why cutting
    failed (``None`` when it did not, or was not asked for)."""

    report: ApplyReport
    revoked: tuple[Flow, ...] = ()
    revoke_error: str | None = None


def local_addresses(document: Mapping[str, Any]) -> frozenset[IPAddress]:
    """Addresses of the local pods: the keys of the ruleset's verdict maps (its dispatch from
    local pod address to that pod's chains), the only flows this node's rules decide."""
    found: set[IPAddress] = set()
    for item in document.get("nftables", []):
        body = item.get("map") if isinstance(item, dict) else None
        if isinstance(body, dict) and body.get("map") == "verdict":
            for element in body.get("elem", []):
                try:
                    found.add(ipaddress.ip_address(element[0]))
                except (ValueError, TypeError, IndexError, KeyError):
                    continue
    return frozenset(found)


def enforce_ruleset(
    document: Mapping[str, Any],
    *,
    table: str,
    source: str,
    netns: str | None = None,
    keep_established: bool = False,
    dry_run: bool = False,
) -> Enforcement:
    """Apply ``document`` (``nft -j list table`` format) to ``table`` in ``netns`` (this
    process's namespace when ``None``), then cut what it denies unless ``keep_established``
    or nothing changed. Raises :class:`~policyctl.enforcer.errors.NftApplyError` when the
    kernel refuses the transaction (the previous ruleset then stays in force)."""
    backend = default_backend(netns=netns)
    try:
        report = Enforcer(backend, table=table).apply(dict(document), dry_run=dry_run, source=source)
    finally:
        backend.close()
    if dry_run or not report.changed or keep_established:
        return Enforcement(report)
    try:
        result = revoke(ConntrackTool(netns=netns), ruleset_judge(dict(document)), local=local_addresses(document))
    except PolicyctlError as error:
        return Enforcement(report, revoke_error=str(error))
    return Enforcement(report, revoked=result.revoked)
