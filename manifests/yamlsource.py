"""YAML and JSON manifests read into plain values that remember where every node was.

Values are built from libyaml's event stream (:mod:`manifests.yamlbuild`), not by PyYAML's
constructor, for four reasons:

* every mapping key and sequence item has its 1-based line, so a diagnostic can point at
  ``spec.ingress[0].from[1]`` inside the file (:meth:`Document.line_of`);
* duplicate keys are reported (the API server rejects duplicate fields under strict field
  validation; PyYAML silently keeps the last one);
* unquoted scalars are typed as ``kubectl`` types them (:mod:`manifests.scalars`), and the raw
  text of each scalar is kept so that a type error can say which value to quote;
* speed and safety: the C parser's events are turned into values by one iterative loop, and
  the positions of a document are recorded only when something first asks for them (most
  documents of a large cluster are never asked), by reading that document's text again.

Invariants: a source never raises on bad input; malformed YAML becomes a ``yaml-syntax``
diagnostic with its line (a real line of the file, counted in ``\\n`` as editors count them)
and the field being read, and the documents read before the error are still returned. Every
input is bounded by :class:`~manifests.inputlimits.InputLimits`. Timestamps stay strings (their
raw text); JSON has no timestamp type.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import yaml

from policyctl.policy.diagnostics import Diagnostic, Severity
from policyctl.manifests.inputlimits import DEFAULT_LIMITS, InputLimits
from policyctl.manifests.scalars import Scalar, resolve_plain
from policyctl.manifests.yamlbuild import (
    Bail,
    LineAt,
    Path,
    Recorder,
    StopFile,
    fast_document,
    fast_lines,
    field_name,
    skip_document,
    start_of,
)

__all__ = ["Document", "Path", "Scalar", "read_documents", "resolve_plain"]

try:
    _Parser: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Parser = yaml.SafeLoader

_SOURCE_COMMENT_RE = re.compile(r"^[ \t]*#[ \t]*Source:[ \t]*(\S.*?)[ \t]*$", re.MULTILINE)
_JSON_SURROGATE_PAIR_RE = re.compile(
    r"(?<!\\)((?:\\\\)*)\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE
)
# What YAML 1.1 allows in a stream (libyaml's reader refuses the rest).
_FORBIDDEN_CHARACTER_RE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Line breaks libyaml counts that editors do not: a CR alone, NEL, LS, PS.
_ODD_BREAK_RE = re.compile("\r(?!\n)|[\x85\u2028\u2029]")


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


class _Lines:
    """Lines as editors count them, from libyaml's marks. libyaml also breaks lines at a lone
    CR, NEL, LS and PS; in a text that has any of those, lines are counted from the mark's
    character index instead. Every line is clamped to the file's last line."""

    def __init__(self, text: str) -> None:
        self.last = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        self._newlines: list[int] | None = None
        if _ODD_BREAK_RE.search(text):
            self._newlines = [m.start() for m in re.finditer("\n", text)]

    def at(self, line0: int, index: int) -> int:
        """1-based line of a mark (libyaml's 0-based line and character index)."""
        line = line0 + 1 if self._newlines is None else bisect_right(self._newlines, index - 1) + 1
        return min(max(line, 1), self.last)

    def of_index(self, text: str, index: int) -> int:
        return min(text.count("\n", 0, index) + 1, self.last)


@dataclass(frozen=True, slots=True)
class _Slice:
    """Where a document's text is, to read it again for its positions."""

    text: str
    start: int
    end: int
    line0: int
    source: str
    limits: InputLimits
    lines: _Lines

    def line_at(self) -> LineAt:
        start, line0, lines = self.start, self.line0, self.lines
        return lambda mark: lines.at(mark.line + line0, mark.index + start)

    def lines_only(self) -> dict[Path, int]:
        """The lines of a document the fast reader read, by reading it again as fast."""
        parser = _Parser(self.text[self.start : self.end])
        try:
            parser.get_event()
            parser.get_event()
            return fast_lines(parser.get_event, self.line_at(), {})
        finally:
            parser.dispose()

    def record(self, *, stop: int | None = None) -> Recorder:
        """Read the document again with every position; a partial recorder when the text
        ends early, is malformed or crosses a limit (:attr:`Recorder.stopped`; its
        :meth:`~Recorder.current_path` says where)."""
        recorder = Recorder(source=self.source, limits=self.limits, line_at=self.line_at())
        parser = _Parser(self.text[self.start : self.end if stop is None else stop])
        try:
            parser.get_event()
            if isinstance(parser.get_event(), yaml.DocumentStartEvent):
                recorder.run(parser.get_event)
        except yaml.YAMLError:
            pass
        except StopFile:
            recorder.stopped = True
        finally:
            parser.dispose()
        return recorder


class _Positions:
    """The lines and scalars of a fast-read document, each recorded on first use: lines by a
    second fast pass (rules' provenance asks for them), scalars by the full recorder (only a
    type error asks for them). The root's line is known from the start."""

    __slots__ = ("_lines", "_scalars", "_slice", "root_line")

    def __init__(self, root_line: int, where: _Slice) -> None:
        self.root_line = root_line
        self._slice = where
        self._lines: dict[Path, int] | None = None
        self._scalars: dict[Path, Scalar] | None = None

    def lines(self) -> dict[Path, int]:
        if self._lines is None:
            self._lines = {**self._slice.lines_only(), (): self.root_line}
        return self._lines

    def scalars(self) -> dict[Path, Scalar]:
        if self._scalars is None:
            self._scalars = self._slice.record().scalars
        return self._scalars


class _LinesView(Mapping[Path, int]):
    __slots__ = ("_positions",)

    def __init__(self, positions: _Positions) -> None:
        self._positions = positions

    def __getitem__(self, path: Path) -> int:
        return self._positions.root_line if path == () else self._positions.lines()[path]

    def __contains__(self, path: object) -> bool:
        return path == () or path in self._positions.lines()

    def __iter__(self) -> Iterator[Path]:
        return iter(self._positions.lines())

    def __len__(self) -> int:
        return len(self._positions.lines())


class _RootOnly(Mapping[Path, int]):
    """The lines of a document that is one scalar (or empty): its root's."""

    __slots__ = ("_line",)

    def __init__(self, line: int) -> None:
        self._line = line

    def __getitem__(self, path: Path) -> int:
        if path != ():
            raise KeyError(path)
        return self._line

    def __iter__(self) -> Iterator[Path]:
        return iter(((),))

    def __len__(self) -> int:
        return 1


_NO_SCALARS: Mapping[Path, Scalar] = MappingProxyType({})


class _ScalarsView(Mapping[Path, Scalar]):
    __slots__ = ("_positions",)

    def __init__(self, positions: _Positions) -> None:
        self._positions = positions

    def __getitem__(self, path: Path) -> Scalar:
        return self._positions.scalars()[path]

    def __iter__(self) -> Iterator[Path]:
        return iter(self._positions.scalars())

    def __len__(self) -> int:
        return len(self._positions.scalars())


def _source_comment(text: str, start: int, end: int) -> str | None:
    """The last ``# Source: path`` comment Helm writes above a document, between the previous
    document's end and this document's first node (character indexes)."""
    found = None
    for match in _SOURCE_COMMENT_RE.finditer(text, start, end):
        found = match.group(1)
    return found


class _Reader:
    """One text's documents; see :func:`read_documents`."""

    def __init__(self, text: str, *, source: str, limits: InputLimits) -> None:
        self.text = text
        self.source = source
        self.limits = limits
        self.lines = _Lines(text)
        self.documents: list[Document] = []
        self.diagnostics: list[Diagnostic] = []
        self._typed: dict[str, object] = {}

    def error(self, line: int, code: str, message: str, path: Path = (), *, column: int = 0) -> None:
        self.diagnostics.append(
            Diagnostic(self.source, line, Severity.ERROR, code, message, field=field_name(path), column=column)
        )

    def slice(self, start: int, end: int, line0: int) -> _Slice:
        """The text from the start of the line of ``start`` (libyaml's 0-based ``line0``), so
        that a document's indentation is kept."""
        start = self.text.rfind("\n", 0, start) + 1
        return _Slice(self.text, start, end, line0, self.source, self.limits, self.lines)

    def read(self) -> None:
        forbidden = _FORBIDDEN_CHARACTER_RE.search(self.text)
        if forbidden is not None:
            self._forbidden(forbidden.start())
            return
        parser = _Parser(self.text)
        previous_end = 0
        document_start, document_line = 0, 0
        try:
            parser.get_event()
            while True:
                event = parser.get_event()
                if not isinstance(event, yaml.DocumentStartEvent):
                    break
                document_start, document_line = start_of(event).index, start_of(event).line
                if len(self.documents) >= self.limits.max_documents:
                    self.error(
                        self.lines.at(document_line, document_start), "too-many-documents",
                        f"more than {self.limits.max_documents:,} YAML documents in one file "
                        "(--max-documents, POLICYCTL_MAX_DOCUMENTS); the rest of the file is not read",
                    )  # fmt: skip
                    return
                previous_end = self._document(parser, document_start, document_line, previous_end)
        except StopFile:
            return
        except yaml.YAMLError as error:
            self._syntax(error, document_start, document_line)
        finally:
            parser.dispose()

    def _document(self, parser: yaml.CSafeLoader, start: int, line0: int, previous_end: int) -> int:
        """Read one document (its start event consumed); the index where it ends."""
        index = len(self.documents)
        try:
            value, root_index, end = fast_document(parser.get_event, self.limits, self._typed)
        except Bail:
            end = skip_document(parser.get_event)
            self._recorded(self.slice(start, end, line0), index, previous_end)
            return end
        where = self.slice(start, end, line0)
        root_line = self.lines.at(where.line0 + self.text.count("\n", where.start, root_index), root_index)
        comment = _source_comment(self.text, previous_end, root_index) if value is not None else None
        if isinstance(value, (dict, list)):
            positions = _Positions(root_line, where)
            lines: Mapping[Path, int] = _LinesView(positions)
            scalars: Mapping[Path, Scalar] = _ScalarsView(positions)
        else:
            lines, scalars = _RootOnly(root_line), _NO_SCALARS
        self.documents.append(Document(self.source, index, value, comment, lines, scalars))
        return end

    def _recorded(self, where: _Slice, index: int, previous_end: int) -> None:
        recorder = where.record()
        self.diagnostics.extend(recorder.diagnostics)
        if recorder.stopped:
            raise StopFile
        root_index = where.start + recorder.root_index
        recorder.lines.setdefault((), self.lines.at(where.line0, where.start))
        comment = _source_comment(self.text, previous_end, root_index) if recorder.root is not None else None
        self.documents.append(Document(
            self.source, index, recorder.root, source_comment=comment,
            lines=recorder.lines, scalars=recorder.scalars, defects=tuple(recorder.defects),
        ))  # fmt: skip

    def _syntax(self, error: yaml.YAMLError, document_start: int, document_line: int) -> None:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        if mark is not None:
            line, column, index = self.lines.at(mark.line, mark.index), mark.column + 1, mark.index
        else:
            line, column, index = self.lines.last, 0, len(self.text)
        where = self.slice(document_start, len(self.text), document_line)
        path = where.record(stop=max(index, where.start)).current_path()
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context = getattr(error, "context", None)
        message = f"malformed YAML: {problem}" + (f" ({context})" if context else "")
        self.error(line, "yaml-syntax", message, path, column=column)

    def _forbidden(self, index: int) -> None:
        """A character YAML does not allow (a control character, a NUL byte): the line and the
        field where it is, found by reading the text up to it."""
        start = self.text.rfind("\n---", 0, index)
        where = self.slice(0 if start < 0 else start + 1, len(self.text), 0)
        path = where.record(stop=index).current_path()
        self.error(
            self.lines.of_index(self.text, index), "yaml-syntax",
            f"malformed YAML: character U+{ord(self.text[index]):04X} is not allowed in YAML (binary data?)", path,
        )


def read_documents(
    text: str, *, source: str, limits: InputLimits = DEFAULT_LIMITS
) -> tuple[list[Document], list[Diagnostic]]:
    """Every document of a YAML or JSON text, with the diagnostics found while reading.

    Empty documents (``---`` with nothing after it) are kept with value ``None`` so that
    document indexes match the file."""
    reader = _Reader(_join_json_surrogates(text), source=source, limits=limits)
    reader.read()
    return reader.documents, reader.diagnostics
