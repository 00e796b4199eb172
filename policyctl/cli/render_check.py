"""``policyctl check`` findings in the formats CI systems read: text, JSON, SARIF 2.1.0, JUnit
XML and GitHub workflow commands.

Each builder is a pure function of the diagnostics (already sorted and mapped back to their
files): the same findings give byte-identical output. What each format needs:

* SARIF: one run of tool ``policyctl``, a ``reportingDescriptor`` per code seen (lint rules
  with their summary and help), ``level`` error/warning/note, a physical location with a
  1-based ``startLine`` (omitted when the line is unknown), the policy as a logical location.
  ``github/codeql-action/upload-sarif`` reads it.
* JUnit: a ``testsuite`` per file, a ``testcase`` per finding, ``failure`` for findings at
  or above the fail level; a file without findings is one passing testcase, so a clean run
  still shows what was checked (GitLab's merge-request widget reads it).
* GitHub: ``::warning file=F,line=L,col=C,title=T::message`` lines, escaped as the runner
  expects (``%``, CR, LF in messages; also ``:`` and ``,`` in properties).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence

from policyctl.manifests.triage import Skipped
from policyctl.policy.diagnostics import Diagnostic, Severity
from policyctl.verifier.lint_context import LintRule

SCHEMA_VERSION = 1
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://github.com/policyctl/policyctl"
RULES_URI = f"{INFORMATION_URI}/blob/main/docs/lint.md"
"""Every code has a section there: a lint rule its own (``#CODE``), input errors one together."""
SEVERITY_ORDER = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}
_SARIF_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_GITHUB_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def at_or_above(diagnostic: Diagnostic, level: Severity) -> bool:
    return SEVERITY_ORDER[diagnostic.severity] >= SEVERITY_ORDER[level]


def summary(diagnostics: Sequence[Diagnostic]) -> dict[str, int]:
    counts = Counter(d.severity for d in diagnostics)
    return {s.value: counts.get(s, 0) for s in (Severity.ERROR, Severity.WARNING, Severity.INFO)}


def _summary_line(diagnostics: Sequence[Diagnostic], files: int) -> str:
    counts = summary(diagnostics)
    checked = f"{files} file{'s' if files != 1 else ''} checked"
    return f"{checked}: {counts['error']} errors, {counts['warning']} warnings, {counts['info']} info"


def to_text(diagnostics: Sequence[Diagnostic], *, files: int) -> str:
    """``file:line: severity: field: message (object) [code]``, the hint indented below."""
    lines = []
    for diagnostic in diagnostics:
        lines.append(str(diagnostic))
        if diagnostic.hint:
            lines.append(f"    hint: {diagnostic.hint}")
    lines.append(_summary_line(diagnostics, files))
    return "\n".join(lines) + "\n"


def _finding(diagnostic: Diagnostic) -> dict[str, object]:
    return {
        "file": diagnostic.file,
        "line": diagnostic.line,
        "column": diagnostic.column,
        "severity": diagnostic.severity.value,
        "code": diagnostic.code,
        "message": diagnostic.message,
        "field": diagnostic.field,
        "object": diagnostic.object,
        "hint": diagnostic.hint,
    }


def to_json(
    diagnostics: Sequence[Diagnostic],
    *,
    files: Sequence[str],
    skipped: Mapping[str, int],
    skipped_files: Sequence[Skipped] = (),
) -> str:
    """``skipped_kinds`` counts the objects read and not understood, per kind (never silently
    ignored), as in every other command's JSON; ``skipped_files`` lists the files (or documents)
    read and deliberately not taken as objects, with why (CI workflows, Helm values, ...)."""
    document: dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "files": sorted(files),
        "findings": [_finding(d) for d in diagnostics],
        "summary": summary(diagnostics),
    }
    if skipped:
        document["skipped_kinds"] = dict(sorted(skipped.items()))
    if skipped_files:
        document["skipped_files"] = [{"file": n.source, "line": n.line, "reason": n.reason} for n in skipped_files]
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _descriptor(code: str, rules: Mapping[str, LintRule], sample: Diagnostic) -> dict[str, object]:
    rule = rules.get(code)
    short = rule.summary if rule else code.replace("-", " ")
    full = rule.help if rule else f"Reported while reading and validating manifests, e.g.: {sample.message}"
    return {
        "id": code,
        "name": "".join(part.capitalize() for part in code.split("-")),
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "help": {"text": full},
        "helpUri": f"{RULES_URI}#{code if rule else 'input-errors'}",
        "defaultConfiguration": {"level": _SARIF_LEVELS[rule.severity if rule else sample.severity]},
    }


def _result(diagnostic: Diagnostic, index: int) -> dict[str, object]:
    physical: dict[str, object] = {"artifactLocation": {"uri": diagnostic.file}}
    if diagnostic.line >= 1:
        region: dict[str, int] = {"startLine": diagnostic.line}
        if diagnostic.column >= 1:
            region["startColumn"] = diagnostic.column
        physical["region"] = region
    location: dict[str, object] = {"physicalLocation": physical}
    if diagnostic.object:
        location["logicalLocations"] = [{"fullyQualifiedName": diagnostic.object, "kind": "object"}]
    text = diagnostic.message + (f" ({diagnostic.field})" if diagnostic.field else "")
    if diagnostic.hint:
        text += f". Fix: {diagnostic.hint}"
    return {
        "ruleId": diagnostic.code,
        "ruleIndex": index,
        "level": _SARIF_LEVELS[diagnostic.severity],
        "message": {"text": text},
        "locations": [location],
        "properties": {"field": diagnostic.field, "hint": diagnostic.hint},
    }


def to_sarif(diagnostics: Sequence[Diagnostic], *, rules: Mapping[str, LintRule], version: str) -> str:
    samples: dict[str, Diagnostic] = {}
    for diagnostic in diagnostics:
        samples.setdefault(diagnostic.code, diagnostic)
    codes = sorted(samples)
    index = {code: i for i, code in enumerate(codes)}
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "policyctl",
                        "version": version,
                        "informationUri": INFORMATION_URI,
                        "rules": [_descriptor(c, rules, samples[c]) for c in codes],
                    }
                },
                "results": [_result(d, index[d.code]) for d in diagnostics],
            }
        ],
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def to_junit(diagnostics: Sequence[Diagnostic], *, files: Sequence[str], fail_level: Severity) -> str:
    by_file: dict[str, list[Diagnostic]] = {f: [] for f in files}
    for diagnostic in diagnostics:
        by_file.setdefault(diagnostic.file, []).append(diagnostic)
    failing = [d for d in diagnostics if at_or_above(d, fail_level)]
    root = ET.Element("testsuites", name="policyctl check")
    root.set("tests", str(sum(max(1, len(found)) for found in by_file.values())))
    root.set("failures", str(len(failing)))
    for file in sorted(by_file):
        found = by_file[file]
        suite = ET.SubElement(root, "testsuite", name=file)
        suite.set("tests", str(max(1, len(found))))
        suite.set("failures", str(sum(1 for d in found if at_or_above(d, fail_level))))
        suite.set("errors", "0")
        if not found:
            ET.SubElement(suite, "testcase", name="no findings", classname=file)
        for diagnostic in found:
            name = f"{diagnostic.code} line {diagnostic.line}" + (f" {diagnostic.field}" if diagnostic.field else "")
            case = ET.SubElement(suite, "testcase", name=name, classname=file)
            body = str(diagnostic) + (f"\nhint: {diagnostic.hint}" if diagnostic.hint else "")
            if at_or_above(diagnostic, fail_level):
                failure = ET.SubElement(case, "failure", message=diagnostic.message, type=diagnostic.severity.value)
                failure.text = body
            else:
                ET.SubElement(case, "system-out").text = body
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _is_file(name: str) -> bool:
    """Whether an annotation can point at ``name``: standard input (``<stdin>``) is no file of
    the repository, so its line goes into the message instead of ``file=``."""
    return bool(name) and not (name.startswith("<") and name.endswith(">"))


def to_github(diagnostics: Sequence[Diagnostic], *, files: int) -> str:
    lines = []
    for diagnostic in diagnostics:
        properties = []
        where = ""
        if _is_file(diagnostic.file):
            properties.append(f"file={_escape_property(diagnostic.file)}")
            if diagnostic.line >= 1:
                properties.append(f"line={diagnostic.line}")
            if diagnostic.column >= 1:
                properties.append(f"col={diagnostic.column}")
        elif diagnostic.line >= 1:
            where = f"{diagnostic.file} line {diagnostic.line}: "
        properties.append(f"title={_escape_property(f'policyctl {diagnostic.code}')}")
        text = where + diagnostic.message + (f" ({diagnostic.field})" if diagnostic.field else "")
        if diagnostic.hint:
            text += f"\nFix: {diagnostic.hint}"
        lines.append(f"::{_GITHUB_LEVELS[diagnostic.severity]} {','.join(properties)}::{_escape_data(text)}")
    lines.append(_summary_line(diagnostics, files))
    return "\n".join(lines) + "\n"
