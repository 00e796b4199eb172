"""Which documents of a file are Kubernetes objects, decided as kube-linter and conftest decide it.

A repository holds YAML and JSON of every kind: CI workflows, compose files, Helm values,
mkdocs configurations, tool output such as a JSON array of connections. A document is read as
a Kubernetes object when it is a map with ``apiVersion`` or ``kind`` (the two fields every
object has, ``TypeMeta``); anything else is skipped with a note, never an error. A file whose
documents do not parse, or parse with errors to something else while its text names
``apiVersion:`` or ``kind:``, is kept, so a broken manifest is reported with its line, not skipped.

Kustomize's own files (``kustomize.config.k8s.io`` ``Kustomization`` and ``Component``) carry
``apiVersion`` and ``kind`` but are instructions to ``kubectl kustomize``, never objects of a
cluster: they are skipped with a note that says how to check the rendered overlay.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from policyctl.manifests.yamlsource import Document
from policyctl.policy.diagnostics import Diagnostic, has_errors

KUSTOMIZE_GROUP = "kustomize.config.k8s.io"
#: Reading stopped at an input limit (:mod:`manifests.inputlimits`): what the rest holds is unknown,
#: so the file is reported, never skipped as "not an object".
READ_LIMIT_CODES = frozenset({"too-many-documents", "number-too-long", "yaml-too-deep", "yaml-too-large"})
_TYPE_META = re.compile(r"""^\s*(?:-\s+)?["']?(?:apiVersion|kind)["']?\s*:""", re.MULTILINE)


@dataclass(frozen=True, slots=True, order=True)
class Skipped:
    """A file, or a document of one, that was read and deliberately not taken as an object."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: note: {self.reason}"


def looks_like_object(value: object) -> bool:
    """A map with ``apiVersion`` or ``kind``: what kube-linter takes for a Kubernetes object."""
    return isinstance(value, Mapping) and ("apiVersion" in value or "kind" in value)


def _what(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a map without apiVersion or kind"
    return "a scalar"


def _kustomize_kind(value: object) -> str | None:
    if not isinstance(value, Mapping):
        return None
    api_version, kind = value.get("apiVersion"), value.get("kind")
    if isinstance(api_version, str) and api_version.split("/")[0] == KUSTOMIZE_GROUP and isinstance(kind, str):
        return kind
    return None


def _reason(value: object) -> str | None:
    """Why a document is not read as an object, or ``None`` when it is one."""
    kustomize = _kustomize_kind(value)
    if kustomize is not None:
        return (
            f"a Kustomize {kustomize}, not a cluster object: skipped (check the overlay as rendered: "
            "kubectl kustomize DIR | policyctl check -f -)"
        )
    if looks_like_object(value):
        return None
    return f"not a Kubernetes object ({_what(value)}): skipped"


def _span(documents: Sequence[Document], position: int) -> range:
    start = documents[position].line_of(())
    end = documents[position + 1].line_of(()) if position + 1 < len(documents) else 1 << 62
    return range(start, end)


def triage(
    text: str, documents: Sequence[Document], diagnostics: Sequence[Diagnostic]
) -> tuple[list[Document], list[Diagnostic], list[Skipped]]:
    """The object documents of one file, the reading diagnostics that concern them, and a
    note for each document (or the whole file) that is not an object.

    A file with no object among its documents is skipped as one note, its reading
    diagnostics dropped (a workflow's ``on:`` key is no concern of ours), unless it has errors
    and either nothing in it parses, reading stopped at a limit, or its text names
    ``apiVersion``/``kind``: then it may be a broken manifest and is reported as one."""
    present = [d for d in documents if d.value is not None]
    objects = [d for d in present if _reason(d.value) is None]
    if not objects:
        cut_short = any(d.code in READ_LIMIT_CODES for d in diagnostics)
        broken = has_errors(diagnostics) and (not present or cut_short or _TYPE_META.search(text) is not None)
        if broken or not present and not diagnostics:
            return [], list(diagnostics), []
        first = present[0] if present else None
        reason = _reason(first.value) if first is not None else None
        line = first.line_of(()) if first is not None else 1
        reason = reason or "not YAML or JSON with apiVersion or kind: skipped"
        return [], [], [Skipped(_source(documents, diagnostics), line, reason)]
    skipped: list[Skipped] = []
    spans: list[range] = []
    for position, document in enumerate(documents):
        reason = None if document.value is None else _reason(document.value)
        if reason is not None:
            skipped.append(Skipped(document.source, document.line_of(()), reason))
            spans.append(_span(documents, position))
    kept = [d for d in diagnostics if not any(d.line in span for span in spans)]
    return objects, kept, skipped


def _source(documents: Sequence[Document], diagnostics: Sequence[Diagnostic]) -> str:
    if documents:
        return documents[0].source
    return diagnostics[0].file if diagnostics else ""
