"""Reachability assertions: a YAML file of "can", "cannot" and "only" claims, proved or refuted.

Format (``docs/verifier.md`` has the full reference and examples)::

    assertions:
      - name: payments only from checkout
        expect: only            # can | cannot | only
        from: {namespace: shop, podSelector: {matchLabels: {app: checkout}}}
        to: {namespace: shop, podSelector: {matchLabels: {app: payments}}}
        ports: [8443/TCP]       # default: every port
        scope: any              # existing (default) | any: every pod that could be created
        family: IPv4            # default: every family the cluster uses

Meaning, over every pair of a source and a different destination end (a pod never counts as
reaching itself) and every listed port:

* ``can``: every pair may connect on every listed port (without ``ports``: on at least one);
* ``cannot``: no pair may connect on any listed port;
* ``only``: no end that ``from`` does not name (other pods, new pods with ``scope: any``,
  outside addresses) may connect to ``to`` on a listed port.

A failed assertion carries a concrete counterexample: the two ends, the family and the ports
(and, for existing pods, the reference verdict's reason on the first port).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from policyctl.policy.diagnostics import Diagnostic, Severity
from policyctl.manifests.fields import FieldReader, Site
from policyctl.policy.model import Family, LabelSelector, Provenance
from policyctl.policy.cluster import Cluster
from policyctl.manifests.selectors_parsing import read_label_selector
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection, DecidedBy
from policyctl.manifests.yamlsource import Document, read_documents

from .ends import End, EndSpec, Meeting, complement, meetings, resolve
from .portsets import ALL, PortSet, parse_ports
from .relation import Relation, connectivity


class Expect(str, enum.Enum):
    CAN = "can"
    CANNOT = "cannot"
    ONLY = "only"


class Scope(str, enum.Enum):
    EXISTING = "existing"
    ANY = "any"


@dataclass(frozen=True, slots=True)
class Assertion:
    name: str
    expect: Expect
    source: EndSpec
    destination: EndSpec
    ports: PortSet = ALL
    ports_given: bool = False
    scope: Scope = Scope.EXISTING
    families: tuple[Family, ...] = ()
    provenance: Provenance = field(default=Provenance("<unknown>", 1))

    def __str__(self) -> str:
        ports = f" on {self.ports}" if self.ports_given else ""
        return f"{self.name}: {self.source} {self.expect.value} reach {self.destination}{ports}"


@dataclass(frozen=True, slots=True)
class Counterexample:
    """Why an assertion failed, concretely: ``ports`` are the offending ports between
    ``source`` and ``destination``, ``denied`` for an unmet ``can``, allowed for ``cannot`` and
    ``only``; ``reason`` is the reference verdict's note on the first of them."""

    source: str
    destination: str
    family: Family
    ports: PortSet
    reason: str = ""
    denied: bool = False

    def __str__(self) -> str:
        verb = "denied" if self.denied else "allowed"
        text = f"{self.source} -> {self.destination} ({self.family.value}): {verb} on {self.ports}"
        return text + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True, slots=True)
class AssertionResult:
    assertion: Assertion
    passed: bool
    counterexample: Counterexample | None = None

    def to_diagnostic(self) -> Diagnostic:
        message = f'assertion "{self.assertion.name}" ({self.assertion.expect.value}) '
        message += "holds" if self.passed else f"fails: {self.counterexample}"
        return Diagnostic(
            self.assertion.provenance.file,
            self.assertion.provenance.line,
            Severity.INFO if self.passed else Severity.ERROR,
            "assertion-failed" if not self.passed else "assertion-passed",
            message,
            field=f"assertions[{self.assertion.provenance.document}]",
            object=self.assertion.name,
        )


# loading ------------------------------------------------------------------------------------

_ASSERTION_FIELDS = frozenset({"name", "expect", "from", "to", "ports", "scope", "family"})
_END_FIELDS = frozenset({"namespace", "namespaceSelector", "podSelector", "workload", "pod", "cidr", "internet"})


def _read_end(reader: FieldReader, value: object, path: tuple[str | int, ...]) -> EndSpec | None:
    if isinstance(value, str):
        text = value.strip()
        if text == "internet":
            return EndSpec(internet=True, text=text)
        try:
            return EndSpec(cidr=ipaddress.ip_network(text, strict=False), text=text)
        except ValueError:
            pass
        if text.count("/") == 1:
            return EndSpec(pod=text, text=text)
        if text.count("/") == 2:
            return EndSpec(workload=text, text=text)
        reader.error(
            path, "invalid-end", f'"{text}": expected internet, a CIDR, NAMESPACE/POD, NAMESPACE/KIND/NAME or a map'
        )
        return None
    raw = reader.mapping(value, path, known=_END_FIELDS)
    if raw is None:
        return None
    values: dict[str, object] = {}
    for key in ("namespace", "workload", "pod"):
        if key in raw:
            values[key] = reader.string(raw[key], (*path, key))
    for key, name in (("namespaceSelector", "namespace_selector"), ("podSelector", "pod_selector")):
        if key in raw:
            values[name] = read_label_selector(reader, raw[key], (*path, key))
            if values[name] is None:
                return None
    if "cidr" in raw:
        try:
            values["cidr"] = ipaddress.ip_network(str(raw["cidr"]), strict=False)
        except ValueError as error:
            reader.error((*path, "cidr"), "invalid-cidr", str(error))
            return None
    if raw.get("internet") is True:
        values["internet"] = True
    if (values.get("cidr") or values.get("internet")) and len(values) > 1:
        reader.error(
            path, "invalid-end", "cidr and internet stand alone: outside addresses have no namespace or labels"
        )
        return None
    text = ", ".join(f"{k}={_show(v)}" for k, v in sorted(values.items()))
    return EndSpec(text=f"{{{text}}}" if text else "<any pod>", **values)  # type: ignore[arg-type]


def _show(value: object) -> str:
    return str(value) if not isinstance(value, LabelSelector) else f"[{value}]"


def _read_assertion(
    document: Document, value: object, position: int, base: tuple[str | int, ...]
) -> tuple[Assertion | None, list[Diagnostic]]:
    site = Site(document, base, object=f"assertion {position}")
    reader = FieldReader(site)
    raw = reader.mapping(value, (), known=_ASSERTION_FIELDS)
    if raw is None:
        return None, reader.diagnostics
    name = reader.string(raw.get("name", f"assertion {position + 1}"), ("name",)) or f"assertion {position + 1}"
    site = Site(document, base, object=f"assertion {name}")
    reader = FieldReader(site)
    expect_text = raw.get("expect")
    try:
        expect = Expect(str(expect_text))
    except ValueError:
        reader.error(("expect",), "invalid-expect", f"expect must be can, cannot or only, got {expect_text!r}")
        expect = None
    ends: list[EndSpec | None] = []
    for key in ("from", "to"):
        if key not in raw:
            reader.error((key,), "missing-field", f"{key} is required")
            ends.append(None)
        else:
            ends.append(_read_end(reader, raw[key], (key,)))
    ports = ALL
    given = "ports" in raw
    if given:
        items = reader.sequence(raw["ports"], ("ports",)) or []
        ports = PortSet()
        for i, item in enumerate(items):
            try:
                ports = ports | parse_ports(str(item))
            except ValueError as error:
                reader.error(("ports", i), "invalid-port", str(error))
    try:
        scope = Scope(str(raw.get("scope", "existing")))
    except ValueError:
        reader.error(("scope",), "invalid-scope", f"scope must be existing or any, got {raw.get('scope')!r}")
        scope = Scope.EXISTING
    families: tuple[Family, ...] = ()
    if "family" in raw:
        chosen = next((f for f in Family if f.value.lower() == str(raw["family"]).lower()), None)
        if chosen is None:
            reader.error(("family",), "invalid-family", f"family must be IPv4 or IPv6, got {raw['family']!r}")
        else:
            families = (chosen,)
    source, destination = ends
    if reader.failed or expect is None or source is None or destination is None:
        return None, reader.diagnostics
    provenance = Provenance(document.source, document.line_of(base), position)
    return Assertion(name, expect, source, destination, ports, given, scope, families, provenance), reader.diagnostics


def load_assertions(path: str) -> tuple[list[Assertion], list[Diagnostic]]:
    """Assertions from a YAML file: a list, or a map with an ``assertions`` list. Every problem
    is a diagnostic with file, line and field; unusable entries are left out."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        return [], [Diagnostic(path, 0, Severity.ERROR, "unreadable-file", str(error))]
    documents, diagnostics = read_documents(text, source=path)
    assertions: list[Assertion] = []
    for document in documents:
        value = document.value
        base: tuple[str | int, ...] = ()
        if isinstance(value, Mapping) and "assertions" in value:
            value, base = value["assertions"], ("assertions",)
        if value is None:
            continue
        if not isinstance(value, list):
            line = document.line_of(base)
            diagnostics.append(
                Diagnostic(
                    path, line, Severity.ERROR, "invalid-type", "expected a list of assertions", field="assertions"
                )
            )
            continue
        for position, item in enumerate(value):
            found, problems = _read_assertion(document, item, position, (*base, position))
            diagnostics.extend(problems)
            if found is not None:
                assertions.append(found)
    return assertions, diagnostics


# checking -----------------------------------------------------------------------------------


def _reason(relation: Relation, meeting: Meeting, family: Family, ports: PortSet) -> str:
    """The reference verdict's note on the first offending port, for existing pods."""
    first = ports.first()
    if meeting.pods is None or first is None:
        return ""
    verdict = evaluate(relation.cluster, Connection(meeting.pods[0], meeting.pods[1], first[0], first[1], family))
    notes = [
        h.note
        for h in (verdict.egress, verdict.ingress)
        if h.note and (h.allowed is not verdict.allowed or not verdict.allowed)
    ]
    if verdict.allowed:
        by_policy = [h.note for h in (verdict.ingress, verdict.egress) if h.decided_by is DecidedBy.NETWORK_POLICY]
        notes = by_policy or notes
    return "; ".join(notes[:1])


def _violation(assertion: Assertion, meeting: Meeting) -> PortSet:
    if assertion.expect is Expect.CAN:
        if not assertion.ports_given:
            return ALL if not meeting.ports else PortSet()
        return assertion.ports - meeting.ports
    return assertion.ports & meeting.ports


def _check(relation: Relation, assertion: Assertion) -> AssertionResult:
    any_pod = assertion.scope is Scope.ANY
    for family in assertion.families or relation.families:
        destinations = resolve(relation, assertion.destination, family, any_pod=any_pod)
        if assertion.expect is Expect.ONLY:
            sources: tuple[End, ...] = complement(relation, assertion.source, family, any_pod=any_pod)
        else:
            sources = resolve(relation, assertion.source, family, any_pod=any_pod)
        for source in sources:
            for destination in destinations:
                for meeting in meetings(relation, source, destination, family):
                    bad = _violation(assertion, meeting)
                    if bad:
                        reason = _reason(relation, meeting, family, bad)
                        denied = assertion.expect is Expect.CAN
                        example = Counterexample(meeting.source, meeting.destination, family, bad, reason, denied)
                        return AssertionResult(assertion, False, example)
    return AssertionResult(assertion, True)


def check_assertions(
    cluster: Cluster, assertions: list[Assertion], *, relation: Relation | None = None
) -> list[AssertionResult]:
    """Each assertion proved (``passed``) or refuted with a counterexample, in input order."""
    relation = relation or connectivity(cluster)
    return [_check(relation, a) for a in assertions]
