"""Typed reading of decoded manifest fields, as the API server's strict JSON decoding does it.

The API server decodes a manifest into Go structs: a field of the wrong JSON type is an error
("cannot unmarshal bool into ... of type string"), and under strict field validation (kubectl's
default) so is a field the type does not have. :class:`FieldReader` does the same checks on
the plain values of :mod:`manifests.yamlsource`, collecting every problem as a
:class:`~policy.diagnostics.Diagnostic` instead of stopping at the first.

JSON ``null`` is Go's zero value: callers treat a ``None`` field as absent before reading it.
Field paths in diagnostics are relative to the object (``spec.ingress[0]``); lines come from
the object's place in its document (:class:`Site`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from policyctl.policy.diagnostics import Diagnostic, Severity, format_path
from policyctl.policy.suggest import did_you_mean
from policyctl.manifests.yamlsource import Document, Path

INT32_MAX = 2**31 - 1
_SHOWN_CHARACTERS = 64


@dataclass(frozen=True, slots=True)
class Site:
    """Where an object sits: its document, the path of the object inside that document
    (``("items", 3)`` for a list item, ``()`` for a whole document) and its name as
    diagnostics show it (``NetworkPolicy x/deny``)."""

    document: Document
    base: Path = ()
    object: str = ""

    def line_of(self, path: Path) -> int:
        return self.document.line_of((*self.base, *path))

    def diagnostic(
        self, path: Path, code: str, message: str, *, severity: Severity = Severity.ERROR
    ) -> Diagnostic:
        return Diagnostic(
            self.document.source,
            self.line_of(path),
            severity,
            code,
            message,
            field=format_path(path) or self.whole(),
            object=self.object,
        )

    def whole(self) -> str:
        """The field of a diagnostic about the object as a whole: its place in a list
        (``items[3]``), or ``(document)``."""
        return format_path(self.base) or "(document)"


def is_mapping(value: object) -> TypeGuard[Mapping[Any, object]]:
    """``isinstance(value, Mapping)``, with the plain dict every manifest value is checked
    first (the abstract check is ten times slower, and a large cluster makes millions)."""
    return value.__class__ is dict or isinstance(value, Mapping)


def shown(text: str) -> str:
    """``text``, cut with its length when it is too long to read in a one-line message."""
    if len(text) <= _SHOWN_CHARACTERS:
        return text
    return f"{text[:_SHOWN_CHARACTERS]}… ({len(text):,} characters)"


def describe(value: object) -> str:
    """A value as Go's JSON decoder names its type in errors, with the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f'string "{shown(value)}"'
    if isinstance(value, list):
        return "a list"
    return "a map"


class FieldReader:
    """Reads one object's fields, appending a diagnostic for each problem to
    :attr:`diagnostics`. A reader method returns ``None`` when the value is unusable."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.diagnostics: list[Diagnostic] = []

    def error(self, path: Path, code: str, message: str) -> None:
        self.diagnostics.append(self.site.diagnostic(path, code, message))

    def warn(self, path: Path, code: str, message: str) -> None:
        self.diagnostics.append(
            self.site.diagnostic(path, code, message, severity=Severity.WARNING)
        )

    @property
    def failed(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.diagnostics)

    def wrong_type(self, value: object, path: Path, expected: str) -> None:
        """A type error. An unquoted YAML scalar that became a boolean or number where a
        string belongs gets the advice to quote it: the API server rejects it, and the
        author almost always meant the text."""
        scalar = self.site.document.scalar_at((*self.site.base, *path))
        if (
            expected == "string"
            and scalar is not None
            and scalar.plain
            and isinstance(value, (bool, int, float))
        ):
            self.error(
                path,
                "needs-quotes",
                f"{shown(scalar.raw)} is read by YAML as {describe(value)}, but a string is required; "
                f'quote it: "{shown(scalar.raw)}"',
            )
            return
        self.error(path, "invalid-type", f"expected {expected}, got {describe(value)}")

    def mapping(
        self, value: object, path: Path, *, known: frozenset[str] | None = None
    ) -> Mapping[str, object] | None:
        """A JSON object; with ``known``, every other key is an unknown-field error (strict
        field validation)."""
        if not is_mapping(value):
            self.wrong_type(value, path, "a map")
            return None
        if known is not None:
            for key in sorted(set(value) - known, key=str):
                self.error((*path, key), "unknown-field", f'unknown field "{key}"{did_you_mean(str(key), known)}')
        return value

    def sequence(self, value: object, path: Path) -> list[object] | None:
        if not isinstance(value, list):
            self.wrong_type(value, path, "a list")
            return None
        return value

    def string(self, value: object, path: Path) -> str | None:
        if value is None:
            return ""
        if not isinstance(value, str):
            self.wrong_type(value, path, "string")
            return None
        return value

    def strings(self, value: object, path: Path) -> list[str] | None:
        """A list of strings; a ``null`` item is Go's empty string."""
        items = self.sequence(value, path)
        if items is None:
            return None
        result = [self.string(item, (*path, i)) for i, item in enumerate(items)]
        return None if any(r is None for r in result) else [r for r in result if r is not None]

    def string_map(self, value: object, path: Path) -> dict[str, str] | None:
        """A ``map[string]string`` such as labels; a ``null`` value is the empty string."""
        items = self.mapping(value, path)
        if items is None:
            return None
        result: dict[str, str] = {}
        ok = True
        for key, item in items.items():
            text = self.string(item, (*path, key))
            if text is None:
                ok = False
            else:
                result[key] = text
        return result if ok else None

    def integer(
        self, value: object, path: Path, *, maximum: int = INT32_MAX, expected: str = "an integer"
    ) -> int | None:
        """A Go ``int32``: an integral JSON number in range (kubectl writes ``80.0`` as ``80``,
        so an integral float is accepted)."""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.wrong_type(value, path, expected)
            return None
        if not -maximum - 1 <= value <= maximum:
            self.error(path, "invalid-type", f"{value} does not fit a 32-bit integer")
            return None
        return value

    def boolean(self, value: object, path: Path) -> bool | None:
        if not isinstance(value, bool):
            self.wrong_type(value, path, "a boolean")
            return None
        return value
