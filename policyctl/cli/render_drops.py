"""Presentation of ``policyctl drops``: a drop document as lines for people, or as one JSON line.

Both node mode (NFLOG read here) and agent mode (``/drops``) hand over the same documents
(``enforcer.drops.drop_document``), so both print alike. ``-o json`` is the document itself,
one per line, keys sorted: what log shippers take. The text is the flow on one line, then the
deciding explanation indented, in the words of ``policyctl explain``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

MARK = {True: "✔", False: "✘"}


def drop_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, ensure_ascii=False)


def _end(end: Mapping[str, Any]) -> str:
    if end["kind"] == "address":
        return str(end["address"])
    name = end["name"] if end["kind"] == "pod" else f"node/{end['name']}"
    return f"{name} ({end['address']})"


def _when(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _where(source: str | None) -> str:
    return f" ({source})" if source else ""


def drop_lines(document: Mapping[str, Any]) -> list[str]:
    """``2026-01-02T03:04:05.678Z DROP ingress shop/b: lab/a (10.0.1.2) → shop/b (10.0.2.3) TCP/80``
    and the explanation below it; a base chain's drop names its rule (``DROP ingress mid-stream
    shop/b: ...``, ``DROP egress new-pod: ...``) and its reason instead."""
    port = f"/{document['port']}" if document.get("port") is not None else ""
    rule = document.get("drop_rule")
    what = " ".join(w for w in (rule if rule not in (None, "pod-chain") else None, document.get("pod")) if w)
    head = (f"{_when(document['time'])} {document['action'].upper()} {document['direction']} {what}: "
            f"{_end(document['source'])} → {_end(document['destination'])} {document['protocol']}{port}")
    lines = [head]
    if document.get("reason"):
        lines.append(f"  {document['reason']}")
    explanation = document.get("explanation")
    if explanation is not None:
        lines.append(f"  {explanation['note']}")
        rule = explanation.get("rule")
        if rule is None:
            for policy in explanation["policies"]:
                rules = ", ".join(
                    f"{r['rule']}{_where(r['source'])} peer {MARK[r['peer_matched']]} port {MARK[r['port_matched']]}"
                    for r in policy["rules"]
                ) or "no rules: allows nothing in this direction"
                lines.append(f"  policy {policy['policy']}{_where(policy['source'])}: {rules}")
        for hint in explanation["hints"]:
            where = hint["source"] if hint["source"] and hint["source"] not in hint["text"] else None
            lines.append(f"  hint: {hint['text']}{_where(where)}")
    if document.get("problem"):
        lines.append(f"  not explained: {document['problem']}")
    return lines
