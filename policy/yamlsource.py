"""YAML and JSON manifests read into plain values that remember where every node was.

Values are built from PyYAML's node graph rather than by PyYAML's constructor, for three
reasons:

* every mapping key and sequence item keeps its 1-based line, so a diagnostic can point at
  ``spec.ingress[0].from[1]`` inside the file (:meth:`Document.line_of`);
* duplicate keys are reported (the API server rejects duplicate fields under strict field
  validation; PyYAML silently keeps the last one);
* unquoted scalars are typed as ``kubectl`` types them. kubectl converts YAML to JSON with
  go-yaml v2, a YAML 1.1 reader: ``yes``/``no``/``on``/``off``/``y``/``n`` are booleans and
  ``1.0`` is a number, and the API server then rejects a boolean or number where a string
  belongs (a label value, say). The raw text of each scalar is kept so that error can say
  which value to quote.

Invariants: a source never raises on bad input; malformed YAML becomes a ``yaml-syntax``
diagnostic with its line, and the documents read before the error are still returned.
Timestamps stay strings (their raw text); JSON has no timestamp type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from policyctl.policy.diagnostics import Diagnostic, Severity, format_path

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

Path = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SOURCE_COMMENT_RE = re.compile(r"^#\s*Source:\s*(\S.*?)\s*$")
_MAX_NODES = 1_000_000
_JSON_SURROGATE_PAIR_RE = re.compile(
    r"(?<!\\)((?:\\\\)*)\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE
)

# go-yaml v2's resolve table (yaml.v2/resolve.go), which kubectl's YAML-to-JSON step uses.
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUES = frozenset({"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"})
_FALSES = frozenset({"n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"})
_SPECIAL_FLOATS = {
    ".inf": math.inf, ".Inf": math.inf, ".INF": math.inf,
    "+.inf": math.inf, "+.Inf": math.inf, "+.INF": math.inf,
    "-.inf": -math.inf, "-.Inf": -math.inf, "-.INF": -math.inf,
    ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan,
}  # fmt: skip
_GO_INT_RE = re.compile(r"^[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$")
_GO_FLOAT_RE = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


@dataclass(frozen=True, slots=True)
class Scalar:
    """A scalar as written: ``raw`` text and whether it was plain (unquoted), which is when
    YAML guesses its type from the text."""

    raw: str
    plain: bool
    line: int


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document of a source. ``value`` is plain Python (dict/list/str/int/float/
    bool/None); ``lines`` maps each path to the line of its key (mapping entries) or node
    (sequence items, the root at ``()``); ``scalars`` keeps each scalar's raw text;
    ``defects`` are the paths of mappings the reader found broken (duplicate keys), so the
    loader can refuse the object that contains them, as the API server would."""

    source: str
    index: int
    value: object
    source_comment: str | None = None
    lines: Mapping[Path, int] = field(default_factory=dict, compare=False, repr=False)
    scalars: Mapping[Path, Scalar] = field(default_factory=dict, compare=False, repr=False)
    defects: tuple[Path, ...] = field(default=(), compare=False, repr=False)

    def line_of(self, path: Path) -> int:
        """1-based line of the deepest node that exists along ``path`` (the document's first
        line when nothing does)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return 1

    def scalar_at(self, path: Path) -> Scalar | None:
        return self.scalars.get(tuple(path))

    def has_defect_under(self, path: Path) -> bool:
        size = len(path)
        return any(tuple(d[:size]) == tuple(path) for d in self.defects)


def resolve_plain(raw: str) -> object:
    """The value go-yaml v2 gives an unquoted scalar: YAML 1.1 nulls and booleans, Go integer
    syntax (``0x``, ``0o``, ``0b``, leading-zero octal, ``_`` separators), then floats."""
    if raw in _NULLS:
        return None
    if raw in _TRUES:
        return True
    if raw in _FALSES:
        return False
    if raw in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[raw]
    if raw[0] not in "0123456789+-.":
        return raw
    plain = raw.replace("_", "")
    if _GO_INT_RE.match(plain):
        sign, digits = (-1, plain[1:]) if plain[0] == "-" else (1, plain.lstrip("+"))
        if len(digits) > 1 and digits[0] == "0" and digits[1] in "0123456789":
            return sign * int(digits, 8)
        return sign * int(digits, 0)
    if _GO_FLOAT_RE.match(plain):
        return float(plain)
    return raw


class _Builder:
    """Turns one document's node graph into values, lines and scalars."""

    def __init__(self, *, source: str, index: int) -> None:
        self.source = source
        self.index = index
        self.lines: dict[Path, int] = {}
        self.scalars: dict[Path, Scalar] = {}
        self.defects: list[Path] = []
        self.diagnostics: list[Diagnostic] = []
        self._active: set[int] = set()
        self._count = 0
        self._resolver = yaml.resolver.Resolver()

    def error(self, line: int, code: str, message: str, path: Path) -> None:
        self.diagnostics.append(
            Diagnostic(self.source, line, Severity.ERROR, code, message, field=format_path(path))
        )

    def build(self, node: yaml.Node, path: Path) -> object:
        self._count += 1
        if self._count > _MAX_NODES:
            raise _TooLarge(node.start_mark.line + 1)
        if id(node) in self._active:
            self.error(node.start_mark.line + 1, "yaml-recursive-alias",
                       "an alias refers to the node that contains it", path)
            return None
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                items = []
                for i, child in enumerate(node.value):
                    self.lines[(*path, i)] = child.start_mark.line + 1
                    items.append(self.build(child, (*path, i)))
                return items
            return self._mapping(node, path)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode, path: Path) -> object:
        self.scalars[path] = Scalar(node.value, not node.style, node.start_mark.line + 1)
        return self._typed(node)

    def _typed(self, node: yaml.ScalarNode) -> object:
        plain = not node.style
        implicit_tag = self._resolver.resolve(yaml.ScalarNode, node.value, (True, False))
        if plain and node.tag == implicit_tag:
            return resolve_plain(node.value)
        if node.tag == _STR_TAG or not node.tag.startswith("tag:yaml.org,2002:"):
            return node.value
        if node.tag in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"):
            return node.value
        return resolve_plain(node.value)

    def _key(self, node: yaml.Node, path: Path) -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            self.error(node.start_mark.line + 1, "invalid-key",
                       "a mapping key must be a scalar", path)
            return None
        value = self._typed(node)
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            # kubectl turns a boolean key into "true"/"false"; say so, it is rarely meant.
            text = "true" if value else "false"
            self.diagnostics.append(Diagnostic(
                self.source, node.start_mark.line + 1, Severity.WARNING, "yaml-boolean-key",
                f"key {node.value} is read by YAML 1.1 as the boolean {text} and becomes the "
                f'key "{text}"; quote it ("{node.value}") to keep it',
            ))  # fmt: skip
            return text
        return node.value if value is not None else "null"

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, object]:
        result: dict[str, object] = {}
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or (
                isinstance(key_node, yaml.ScalarNode) and key_node.value == "<<"
                and not key_node.style
            ):
                self._merge(value_node, path, result)
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            line = key_node.start_mark.line + 1
            if key in seen:
                self.error(line, "duplicate-key",
                           f'key "{key}" already defined at line {seen[key]}', (*path, key))
                self.defects.append(path)
            seen[key] = line
            self.lines[(*path, key)] = line
            result[key] = self.build(value_node, (*path, key))
        return result

    def _merge(self, node: yaml.Node, path: Path, into: dict[str, object]) -> None:
        """``<<: *anchor`` (or a list of anchors) as go-yaml v2 does it: entries are merged
        in order, a later one overriding an earlier one."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            merged = self.build(source, path)
            if not isinstance(merged, dict):
                self.error(source.start_mark.line + 1, "invalid-merge",
                           "a merge key (<<) needs a mapping or a list of mappings", path)
                continue
            into.update(merged)


class _TooLarge(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def _source_comment(lines: list[str], start: int, end: int) -> str | None:
    """The last ``# Source: path`` comment Helm writes above a document, between the previous
    document's end and this one's first node (0-based lines, ``end`` exclusive)."""
    found = None
    for text in lines[start:end]:
        match = _SOURCE_COMMENT_RE.match(text.strip())
        if match:
            found = match.group(1)
    return found


def _syntax_diagnostic(error: yaml.YAMLError, *, source: str, text: str) -> Diagnostic:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    if mark is not None:
        line, column = mark.line + 1, mark.column + 1
    else:
        position = getattr(error, "position", 0) or 0
        line, column = text.count("\n", 0, position) + 1, 0
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None)
    message = f"malformed YAML: {problem}" + (f" ({context})" if context else "")
    return Diagnostic(source, line, Severity.ERROR, "yaml-syntax", message, column=column)


def _join_json_surrogates(text: str) -> str:
    """JSON writes a character beyond U+FFFF as two ``\\u`` escapes (a surrogate pair), which
    YAML rejects; rewrite each pair as YAML's ``\\U`` escape. Only for JSON texts, where every
    string is double-quoted, so no literal backslash text is touched."""
    if not text.lstrip().startswith(("{", "[")):
        return text

    def joined(match: re.Match[str]) -> str:
        high, low = int(match.group(2), 16), int(match.group(3), 16)
        code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        return f"{match.group(1)}\\U{code:08x}"

    return _JSON_SURROGATE_PAIR_RE.sub(joined, text)


def read_documents(text: str, *, source: str) -> tuple[list[Document], list[Diagnostic]]:
    """Every document of a YAML or JSON text, with the diagnostics found while reading.

    Empty documents (``---`` with nothing after it) are kept with value ``None`` so that
    document indexes match the file."""
    text = _join_json_surrogates(text)
    documents: list[Document] = []
    diagnostics: list[Diagnostic] = []
    lines = text.splitlines()
    previous_end = 0
    try:
        for index, root in enumerate(yaml.compose_all(text, Loader=_Loader)):
            builder = _Builder(source=source, index=index)
            start = root.start_mark.line
            builder.lines[()] = start + 1
            try:
                value = builder.build(root, ())
            except _TooLarge as too_large:
                diagnostics.append(Diagnostic(
                    source, too_large.line, Severity.ERROR, "yaml-too-large",
                    f"document expands to more than {_MAX_NODES} nodes (aliases?)",
                ))  # fmt: skip
                value = None
            documents.append(Document(
                source, index, value,
                source_comment=_source_comment(lines, previous_end, start + 1),
                lines=builder.lines, scalars=builder.scalars, defects=tuple(builder.defects),
            ))  # fmt: skip
            diagnostics.extend(builder.diagnostics)
            previous_end = max(builder.lines.values())
    except yaml.YAMLError as error:
        diagnostics.append(_syntax_diagnostic(error, source=source, text=text))
    return documents, diagnostics
