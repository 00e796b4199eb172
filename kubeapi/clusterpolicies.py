"""A cluster-scoped policy the API server stored but policyctl's parser refuses, read failing closed.

The API server validates these objects against their CRD, so a refusal means the two disagree:
most likely a CRD of a newer network-policy-api release, with a peer or field this parser does
not know. The API says what an implementation does then ("If an implementation sees no fields
are set then it can infer that the deployed CRD is of an incompatible version with an unknown
field. In that case it should fail closed"): "For "Accept" rules, "fail closed" means: "treat
the rule as matching no traffic". For "Deny" and "Pass" rules, "fail closed" means: "treat the
rule as a 'Deny all' rule"". Leaving the policy out instead would open what an administrator's
Deny closed, which NetworkPolicy's reading avoids too (:func:`kubeapi.projections.refused_policy`).

The stand-in is read by the one parser (:func:`manifests.clusterparse.parse_cluster_policy`), from
a value rewritten rule by rule, never by a second reading of the fields:

* each rule is tried alone under the policy's header; a rule that parses is kept as written;
  a rule that does not is dropped when its action is ``Accept``/``Allow`` and otherwise (Deny,
  Pass, an action that cannot be read) becomes a Deny of every peer its direction has: every
  pod (``namespaces: {}``) for ingress, every address (``networks: [0.0.0.0/0, ::/0]``) for
  egress, on every port;
* a header part that cannot be read takes its most closed reading: the subject every pod,
  the tier Admin, the priority 0 (the fewest replaced parts that make the header readable);
* if the rewritten policy is still refused, every direction that has rules becomes one such
  Deny-all rule;
* a ``spec`` field the schema does not have is left out (its meaning is unknown; the rules
  still apply as far as they can be read, and the object is reported).

Only a policy whose name itself is refused (which no API server stores) is left out, with an
error.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from policyctl.policy.clustermodel import ClusterNetworkPolicy
from policyctl.manifests.clusterparse import parse_cluster_policy
from policyctl.policy.diagnostics import Diagnostic, Severity
from policyctl.manifests.fields import Site
from policyctl.manifests.yamlsource import Document

REFUSED_CLUSTER_WARNING = ("refused by policyctl's parser: enforced failing closed (rules it cannot read deny all "
                           "traffic, or match none when they accept)")  # fmt: skip

_CLOSED_HEADER: Mapping[str, object] = {"subject": {"namespaces": {}}, "tier": "Admin", "priority": 0}
_ACCEPTING = frozenset({"Accept", "Allow"})
_DENY_ALL = {"ingress": ("from", [{"namespaces": {}}]), "egress": ("to", [{"networks": ["0.0.0.0/0", "::/0"]}])}


def _parse(value: Mapping[str, Any], kind: str, site: Site) -> ClusterNetworkPolicy | None:
    document = Document(site.document.source, 0, value)
    return parse_cluster_policy(value, kind=kind, site=Site(document, (), site.object))[0]


def _with_spec(value: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    return {**value, "spec": dict(spec)}


def _deny_all(direction: str, name: object) -> dict[str, Any]:
    peers_field, peers = _DENY_ALL[direction]
    rule: dict[str, Any] = {"action": "Deny", peers_field: peers}
    if isinstance(name, str) and name:
        rule["name"] = name
    return rule


def _header(value: Mapping[str, Any], spec: Mapping[str, Any], kind: str, site: Site) -> dict[str, Any] | None:
    """The spec without rules, with the fewest header parts replaced by their closed reading
    that makes it readable; None when no replacement does."""
    header = {k: v for k, v in spec.items() if k in _CLOSED_HEADER}
    parts = [k for k in _CLOSED_HEADER if k in header or k == "subject"]
    for size in range(len(parts) + 1):
        for chosen in itertools.combinations(parts, size):
            candidate = {**header, **{k: _CLOSED_HEADER[k] for k in chosen}}
            if _parse(_with_spec(value, candidate), kind, site) is not None:
                return candidate
    return None


def _closed_rules(value: Mapping[str, Any], header: Mapping[str, Any], direction: str, rules: object,
                  kind: str, site: Site) -> list[Any]:  # fmt: skip
    if not isinstance(rules, list):
        return [_deny_all(direction, "")]
    kept: list[Any] = []
    for rule in rules:
        if _parse(_with_spec(value, {**header, direction: [rule]}), kind, site) is not None:
            kept.append(rule)
            continue
        action = rule.get("action") if isinstance(rule, Mapping) else None
        if action not in _ACCEPTING:
            kept.append(_deny_all(direction, rule.get("name") if isinstance(rule, Mapping) else ""))
    return kept


def refused_cluster_policy(
    value: Mapping[str, Any], *, kind: str, key: str, site: Site
) -> tuple[ClusterNetworkPolicy | None, Diagnostic]:
    """The failing-closed reading of a refused ``kind`` object, and the diagnostic saying so
    (None and an error when even its header cannot be read)."""
    spec = value.get("spec") if isinstance(value.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    header = _header(value, spec, kind, site)
    if header is None:
        return None, site.diagnostic((), "left-out", f"{kind} {key} cannot be read even failing closed: left out",
                                     severity=Severity.ERROR)  # fmt: skip
    directions = [d for d in ("ingress", "egress") if spec.get(d) is not None]
    rewritten = {**header, **{d: _closed_rules(value, header, d, spec[d], kind, site) for d in directions}}
    policy = _parse(_with_spec(value, {k: v for k, v in rewritten.items() if v != []}), kind, site)
    if policy is None:
        policy = _parse(_with_spec(value, {**header, **{d: [_deny_all(d, "")] for d in directions}}), kind, site)
    assert policy is not None, "a readable header with Deny-all rules is always readable"
    replaced = sorted(k for k in _CLOSED_HEADER if header.get(k) is _CLOSED_HEADER[k])
    what = f"; read with {', '.join(replaced)} at the most closed value" if replaced else ""
    notice = site.diagnostic((), "fails-closed", f"{kind} {key} is enforced failing closed: its rules that cannot be "
                             f"read deny all traffic (Deny, Pass) or match none (Accept){what}, until it can be read",
                             severity=Severity.WARNING)  # fmt: skip
    return replace(policy, warnings=(*policy.warnings, REFUSED_CLUSTER_WARNING)), notice
