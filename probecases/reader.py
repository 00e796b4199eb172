"""Reading probe-case files: YAML as PyYAML reads it, with the line of every path, and a
field reader that collects diagnostics instead of stopping at the first problem.

The spec's own files write the namespace ``y`` unquoted (``ns: y``, ``namespace_labels:
{y: ...}``). kubectl's go-yaml v2 would read that as the boolean true (``manifests.yamlsource``
does, as it must for manifests); PyYAML's safe loader, which wrote those files, reads a string.
So case files are read with ``yaml.SafeLoader`` into the same :class:`Document` the loader
takes, and policies inside a case are validated on the values PyYAML gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import yaml

from policyctl.policy.diagnostics import Diagnostic, InputError, Severity, format_path
from policyctl.policy.model import Labels, Provenance
from policyctl.manifests.yamlsource import Document

PathT = tuple[str | int, ...]


def read_case_documents(text: str, *, source: str) -> list[Document]:
    """The YAML documents of a case file as PyYAML's safe loader reads them, each with the line
    of every path; malformed YAML raises :class:`InputError` with the line."""
    loader = yaml.SafeLoader(text)
    documents: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            lines: dict[PathT, int] = {}
            _record_lines(node, (), lines)
            value = loader.construct_document(node)
            documents.append(Document(source, len(documents), value, lines=lines))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(error, "problem", None) or str(error)
        raise InputError(
            [Diagnostic(source, line, Severity.ERROR, "yaml-syntax", f"malformed YAML: {problem}")]
        ) from None
    finally:
        loader.dispose()
    return documents


def _record_lines(node: yaml.Node, path: PathT, lines: dict[PathT, int]) -> None:
    """Line of every mapping entry (its key) and sequence item, as ``Document.lines`` holds."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        keys = yaml.SafeLoader("")
        for key_node, value_node in node.value:
            try:
                key = keys.construct_object(key_node, deep=True)
            except yaml.YAMLError:
                continue
            if isinstance(key, (str, int)):
                lines[(*path, key)] = key_node.start_mark.line + 1
                _record_lines(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _record_lines(item, (*path, index), lines)


class CaseReader:
    """Typed access to one document's fields; every problem becomes a diagnostic with the
    file, the line and the field path, and a usable default is returned so reading goes on."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.source = document.source
        self.diagnostics: list[Diagnostic] = []

    def error(self, path: PathT, message: str, *, code: str = "invalid-probe-case") -> None:
        self.diagnostics.append(
            Diagnostic(
                self.source,
                self.document.line_of(path),
                Severity.ERROR,
                code,
                message,
                field=format_path(path),
            )
        )

    def provenance(self, path: PathT) -> Provenance:
        return Provenance(self.source, self.document.line_of(path), self.document.index)

    def mapping(self, value: Any, path: PathT, *, keys: Sequence[str] | None = None) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(path, f"must be a mapping, not {kind_of(value)}")
            return {}
        for key in value:
            if not isinstance(key, str):
                self.error(path, f"keys must be strings, not {kind_of(key)} {key!r}")
            elif keys is not None and key not in keys:
                self.error((*path, key), f"unknown field; expected one of: {', '.join(keys)}")
        return {k: v for k, v in value.items() if isinstance(k, str)}

    def sequence(self, value: Any, path: PathT) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"must be a list, not {kind_of(value)}")
            return []
        return value

    def string(self, value: Any, path: PathT) -> str | None:
        if not isinstance(value, str) or not value:
            self.error(path, f"must be a non-empty string, not {kind_of(value)}")
            return None
        return value

    def labels(self, value: Any, path: PathT) -> Labels:
        result: dict[str, str] = {}
        for key, label in self.mapping(value, path).items():
            if isinstance(label, str):
                result[key] = label
            else:
                self.error((*path, key), f"label values must be strings, not {kind_of(label)}")
        return Labels(result)

    def pod_key(self, value: Any, path: PathT) -> str | None:
        if isinstance(value, str) and value.count("/") == 1 and all(value.split("/")):
            return value
        self.error(path, f"pods are named namespace/name, not {value!r}")
        return None

    def enum(self, value: Any, path: PathT, kind: type[Enum], default: Any) -> Any:
        if value is None:
            return default
        try:
            return kind(value)
        except ValueError:
            allowed = " | ".join(m.value for m in kind)
            self.error(path, f"must be one of {allowed}, not {value!r}")
            return default


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
