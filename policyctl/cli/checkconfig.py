"""``.policyctl.yaml``: what ``policyctl check`` leaves out or weighs differently in a repository.

Kept beside the manifests, as kube-linter's ``.kube-linter.yaml`` and Regal's
``.regal/config.yaml`` are, so CI, pre-commit and a person at a terminal check the same way::

    skip: [defaulted-policy-types]      # lint rules left out (as --skip)
    severity:                           # a lint rule's severity: error, warning or info
      unknown-namespace-label: error
    exclude:                            # paths not read, relative to this file's directory
      - legacy/
      - "vendor/*.yaml"

It is found in the first directory checked, or named with ``--config``. Every problem in it is
an error with its line (exit 2), unknown keys and rule names with a "did you mean".
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from policyctl.manifests.fields import FieldReader, Site
from policyctl.manifests.yamlsource import Document, read_documents
from policyctl.policy.diagnostics import Diagnostic, Severity
from policyctl.policy.suggest import did_you_mean

CONFIG_FILE = ".policyctl.yaml"
CONFIG_FIELDS = frozenset({"skip", "severity", "exclude"})
_SEVERITIES = {s.value: s for s in Severity}
_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class CheckConfig:
    """The configuration read (empty when there is none)."""

    source: str = ""
    skip: frozenset[str] = frozenset()
    severity: Mapping[str, Severity] = field(default_factory=lambda: MappingProxyType({}))
    exclude: tuple[str, ...] = ()

    def excluded(self, path: str) -> bool:
        """Whether ``path`` lies under an ``exclude`` entry: the entry itself, a directory
        above it, or a glob (``*`` crosses ``/``) over the path relative to the config."""
        if not self.exclude:
            return False
        base = os.path.dirname(os.path.abspath(self.source))
        relative = os.path.relpath(os.path.abspath(path), base).replace(os.sep, "/")
        for pattern in self.exclude:
            entry = pattern.strip("/")
            if relative == entry or relative.startswith(entry + "/") or fnmatch.fnmatchcase(relative, pattern):
                return True
        return False

    def reweigh(self, diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
        """The diagnostics with the configured severities."""
        return [replace(d, severity=self.severity[d.code]) if d.code in self.severity else d for d in diagnostics]


def find_config(paths: Sequence[str]) -> str | None:
    """``.policyctl.yaml`` in the first directory among ``paths`` that has one."""
    for path in paths:
        candidate = os.path.join(path, CONFIG_FILE)
        if path != "-" and os.path.isdir(path) and os.path.isfile(candidate):
            return candidate
    return None


def _strings(reader: FieldReader, value: object, path: tuple[str, ...]) -> list[str]:
    items = reader.strings(value, path) if value is not None else []
    return items or []


def read_config(path: str, *, rules: Sequence[str]) -> tuple[CheckConfig, list[Diagnostic]]:
    """The configuration at ``path`` and every problem in it (rule names checked against ``rules``)."""
    try:
        with open(path, "rb") as stream:
            text = stream.read(_MAX_BYTES).decode("utf-8", errors="replace")
    except OSError as error:
        problem = Diagnostic(path, 1, Severity.ERROR, "unreadable-file", error.strerror or str(error), field="(file)")
        return CheckConfig(path), [problem]
    documents, diagnostics = read_documents(text, source=path)
    present = [d for d in documents if d.value is not None]
    if not present:
        return CheckConfig(path), diagnostics
    document: Document = present[0]
    reader = FieldReader(Site(document, (), "configuration"))
    raw = reader.mapping(document.value, (), known=CONFIG_FIELDS)
    if raw is None:
        return CheckConfig(path), diagnostics + reader.diagnostics
    skip = _strings(reader, raw.get("skip"), ("skip",))
    for i, code in enumerate(skip):
        if code not in rules:
            reader.error(("skip", i), "unknown-rule", f'unknown lint rule "{code}"{did_you_mean(code, rules)}')
    severity: dict[str, Severity] = {}
    written = reader.mapping(raw.get("severity") or {}, ("severity",))
    for code, level in (written or {}).items():
        if code not in rules:
            reader.error(("severity", code), "unknown-rule", f'unknown lint rule "{code}"{did_you_mean(code, rules)}')
        elif level not in _SEVERITIES:
            suggestion = did_you_mean(str(level), _SEVERITIES)
            reader.error(("severity", code), "invalid-severity",
                         f'"{level}": supported values: "error", "warning", "info"{suggestion}')  # fmt: skip
        else:
            severity[code] = _SEVERITIES[str(level)]
    exclude = _strings(reader, raw.get("exclude"), ("exclude",))
    config = CheckConfig(path, frozenset(skip), MappingProxyType(severity), tuple(e for e in exclude if e))
    return config, diagnostics + reader.diagnostics
