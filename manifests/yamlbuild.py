"""Plain values built straight from libyaml's event stream, without recursion.

Two builders read the events of one document:

* :func:`fast_document`, for the documents nearly every manifest consists of (no anchors,
  aliases, tags, merge keys, duplicate or non-string keys, over-long numbers, nesting within
  the limit). It keeps no positions at all and raises :class:`Bail` at the first thing it
  does not handle, which costs nothing when it never happens.
* :class:`Recorder`, for everything else: the line of every mapping key and sequence item,
  the raw text of every scalar, anchors and aliases (bounded by
  :attr:`~manifests.inputlimits.InputLimits.max_alias_nodes`), merge keys as go-yaml v2 applies
  them, and a diagnostic with its line and field for every problem. It also gives the lines
  of a fast-read document when a diagnostic first needs them, by reading its text again.

Both use explicit stacks, so nesting costs heap, never Python's recursion limit; libyaml's
parser is itself iterative and stops at 1,000 levels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from yaml import (
    AliasEvent,
    DocumentEndEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from policyctl.policy.diagnostics import Diagnostic, Severity, format_path
from policyctl.manifests.inputlimits import InputLimits
from policyctl.manifests.scalars import Scalar, looks_numeric, resolve_plain



class Mark(Protocol):
    """A position in the text, as libyaml's parser (``yaml._yaml.Mark``) and PyYAML's
    (``yaml.error.Mark``) both give it."""

    @property
    def line(self) -> int: ...

    @property
    def index(self) -> int: ...


def start_of(event: Event) -> Mark:
    """Where ``event`` starts; the parser marks every event (the stubs allow None)."""
    if event.start_mark is None:
        raise ValueError(f"{event!r} has no position")
    return event.start_mark


def end_of(event: Event) -> Mark:
    """Where ``event`` ends (see :func:`start_of`)."""
    if event.end_mark is None:
        raise ValueError(f"{event!r} has no position")
    return event.end_mark


Path = tuple[str | int, ...]
LineAt = Callable[[Mark], int]

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TEXT_TAGS = frozenset({_STR_TAG, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"})
_NO_KEY = object()
_MERGE = object()
_SKIP = object()
_SEQUENCE_MERGE_HINT = "a merge key (<<) needs a mapping or a list of mappings"


class Bail(Exception):
    """The fast builder met something only the :class:`Recorder` handles."""


class StopFile(Exception):
    """A limit was crossed; the rest of the file is not read (the diagnostic says where)."""


_SHOWN_PATH_PARTS = 16


def field_name(path: Path) -> str:
    """A diagnostic's field: the path (its middle left out when it is very deep), or
    ``(document)`` for the document as a whole."""
    if len(path) > _SHOWN_PATH_PARTS:
        path = (*path[:8], f"…{len(path) - 12} more…", *path[-4:])
    return format_path(path) or "(document)"


def fast_document(
    get: Callable[[], object], limits: InputLimits, typed: dict[str, object]
) -> tuple[object, int, int]:
    """The value of the document whose events ``get`` returns next (after its start event),
    the index of its first node and the index where it ends; :class:`Bail` when the document
    needs the :class:`Recorder`. ``typed`` caches :func:`resolve_plain` across documents
    (keys, protocols and label values repeat)."""
    max_depth, max_digits = limits.max_depth, limits.max_number_digits
    scalar_event, mapping_start, sequence_start = ScalarEvent, MappingStartEvent, SequenceStartEvent
    mapping_end, sequence_end, document_end = MappingEndEvent, SequenceEndEvent, DocumentEndEvent
    no_key, resolve, cached = _NO_KEY, resolve_plain, typed.get
    event = get()
    root_index = event.start_mark.index  # type: ignore[attr-defined]
    stack: list[tuple[object, bool]] = []
    push, pop = stack.append, stack.pop
    depth = 0
    container: dict[Any, Any] | list[Any] | None = None
    is_map = False
    key: object = no_key
    root: object = None
    while True:
        kind = event.__class__
        if kind is scalar_event:
            if event.tag is not None or event.anchor is not None:  # type: ignore[attr-defined]
                raise Bail
            text = event.value  # type: ignore[attr-defined]
            if event.style:  # type: ignore[attr-defined]
                value: object = text
            else:
                value = cached(text, no_key)
                if value is no_key:
                    if len(text) > max_digits:
                        raise Bail
                    value = typed[text] = resolve(text)
            if is_map:
                if key is no_key:
                    if value.__class__ is not str or value in container or value == "<<":  # type: ignore[operator]
                        raise Bail
                    key = value
                else:
                    container[key] = value  # type: ignore[index,call-overload]
                    key = no_key
            elif container is not None:
                container.append(value)  # type: ignore[union-attr]
            else:
                root = value
        elif kind is mapping_start or kind is sequence_start:
            if event.tag is not None or event.anchor is not None or depth >= max_depth:  # type: ignore[attr-defined]
                raise Bail
            new: dict[Any, Any] | list[Any] = {} if kind is mapping_start else []
            if is_map:
                if key is no_key:
                    raise Bail
                container[key] = new  # type: ignore[index,call-overload]
            elif container is not None:
                container.append(new)  # type: ignore[union-attr]
            else:
                root = new
            push((container, is_map))
            depth += 1
            container, is_map, key = new, kind is mapping_start, no_key
        elif kind is mapping_end or kind is sequence_end:
            container, is_map = pop()  # type: ignore[assignment]
            depth -= 1
            key = no_key
        elif kind is document_end:
            return root, root_index, event.end_mark.index  # type: ignore[attr-defined]
        else:
            raise Bail
        event = get()


def fast_lines(get: Callable[[], object], line_at: LineAt, typed: dict[str, object]) -> dict[Path, int]:
    """The line of every mapping key and sequence item (and the root) of a document that
    :func:`fast_document` read without bailing, whose events ``get`` returns again; the same
    lines the :class:`Recorder` gives, at a third of its cost."""
    scalar_event, mapping_start, sequence_start = ScalarEvent, MappingStartEvent, SequenceStartEvent
    mapping_end, sequence_end, document_end = MappingEndEvent, SequenceEndEvent, DocumentEndEvent
    no_key, resolve, cached = _NO_KEY, resolve_plain, typed.get
    lines: dict[Path, int] = {}
    stack: list[tuple[Path | None, bool, int]] = []
    path: Path | None = None
    is_map = False
    key: object = no_key
    count = 0
    while True:
        event = get()
        kind = event.__class__
        if kind is scalar_event:
            if is_map:
                if key is no_key:
                    text = event.value  # type: ignore[attr-defined]
                    key = text if event.style else cached(text, no_key)  # type: ignore[attr-defined]
                    if key is no_key:
                        key = typed[text] = resolve(text)
                    lines[(*path, key)] = line_at(event.start_mark)  # type: ignore[attr-defined,arg-type,misc]
                else:
                    key = no_key
            elif path is not None:
                lines[(*path, count)] = line_at(event.start_mark)  # type: ignore[attr-defined]
                count += 1
            else:
                lines[()] = line_at(event.start_mark)  # type: ignore[attr-defined]
        elif kind is mapping_start or kind is sequence_start:
            if is_map:
                child: Path = (*path, key)  # type: ignore[arg-type,misc]
                key = no_key
            elif path is not None:
                child = (*path, count)
                lines[child] = line_at(event.start_mark)  # type: ignore[attr-defined]
                count += 1
            else:
                child = ()
                lines[()] = line_at(event.start_mark)  # type: ignore[attr-defined]
            stack.append((path, is_map, count))
            path, is_map, count = child, kind is mapping_start, 0
        elif kind is mapping_end or kind is sequence_end:
            path, is_map, count = stack.pop()
            key = no_key
        elif kind is document_end:
            return lines


def skip_document(get: Callable[[], object]) -> int:
    """Consume the rest of a document's events; the index where it ends."""
    while True:
        event = get()
        if event.__class__ is DocumentEndEvent:
            return end_of(event).index


@dataclass(slots=True)
class _Anchor:
    value: object
    size: int
    lines: list[tuple[Path, int]]
    scalars: list[tuple[Path, Scalar]]


@dataclass(slots=True)
class _Frame:
    """An open mapping or sequence. ``role``: ``value`` (placed in its parent), ``merge`` (the
    value of a ``<<`` key, merged when it ends) or ``discard`` (a mapping key that is not a
    scalar). ``path`` is None where nothing is recorded (inside merges and discarded keys)."""

    container: dict[Any, Any] | list[Any]
    path: Path | None
    role: str
    anchor: str | None
    line: int
    key: object = _NO_KEY
    key_line: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    count_mark: int = 0
    lines_mark: int = 0
    scalars_mark: int = 0


class Recorder:
    """Builds one document with its positions and every diagnostic (see the module doc)."""

    def __init__(self, *, source: str, limits: InputLimits, line_at: LineAt) -> None:
        self.source = source
        self.limits = limits
        self.line_at = line_at
        self.lines: dict[Path, int] = {}
        self.scalars: dict[Path, Scalar] = {}
        self.defects: list[Path] = []
        self.diagnostics: list[Diagnostic] = []
        self.root: object = None
        self.root_index = 0
        self.stopped = False
        self._last: Path = ()
        self._stack: list[_Frame] = []
        self._anchors: dict[str, _Anchor] = {}
        self._building: set[str] = set()
        self._count = 0
        self._aliased = 0

    def current_path(self) -> Path:
        """Where the reading is: the innermost open container and its pending key, or the
        last value read when every container is closed."""
        for frame in reversed(self._stack):
            if frame.path is not None:
                pending = frame.key if isinstance(frame.key, str) else None
                return frame.path if pending is None else (*frame.path, pending)
        return self._last

    def run(self, get: Callable[[], object]) -> object:
        """Read events up to the document's end; the document's value."""
        while True:
            event = get()
            kind = event.__class__
            if kind is ScalarEvent:
                self._scalar(event)  # type: ignore[arg-type]
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                self._start(event, {} if kind is MappingStartEvent else [])  # type: ignore[arg-type]
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                self._end(event)  # type: ignore[arg-type]
            elif kind is AliasEvent:
                self._alias(event)  # type: ignore[arg-type]
            elif kind is DocumentEndEvent:
                return self.root

    def _error(self, mark: Mark, code: str, message: str, path: Path, *, severity: Severity = Severity.ERROR) -> None:
        self.diagnostics.append(
            Diagnostic(self.source, self.line_at(mark), severity, code, message, field=field_name(path))
        )

    def _where(self) -> Path:
        return self.current_path()

    # -- scalars and keys -------------------------------------------------------------

    def _typed(self, event: ScalarEvent) -> object:
        text = event.value
        tag = event.tag
        if tag is not None:
            if tag == "!" or tag in _TEXT_TAGS or not tag.startswith("tag:yaml.org,2002:"):
                return text
            return resolve_plain(text) if text else None
        if event.style:
            return text
        if len(text) > self.limits.max_number_digits and looks_numeric(text):
            self._error(
                start_of(event), "number-too-long",
                f"a number of {len(text):,} characters; at most {self.limits.max_number_digits:,} are read "
                "(--max-number-digits, POLICYCTL_MAX_NUMBER_DIGITS)", self._where(),
            )  # fmt: skip
            return text
        return resolve_plain(text)

    def _scalar(self, event: ScalarEvent) -> None:
        self._count += 1
        frame = self._stack[-1] if self._stack else None
        if frame is not None and frame.container.__class__ is dict and frame.key is _NO_KEY:
            self._key(frame, event)
            return
        value = self._typed(event)
        scalar = Scalar(event.value, not event.style and event.tag is None, self.line_at(start_of(event)))
        path = self._place(value, start_of(event))
        if path is not None:
            self.scalars[path] = scalar
            self._last = path
        if event.anchor is not None:
            entries: list[tuple[Path, Scalar]] = [((), scalar)] if path is not None else []
            self._anchors[event.anchor] = _Anchor(value, 1, [], entries)

    def _key(self, frame: _Frame, event: ScalarEvent) -> None:
        line = self.line_at(start_of(event))
        if event.tag == _MERGE_TAG or (event.value == "<<" and not event.style and event.tag is None):
            frame.key, frame.key_line = _MERGE, line
            return
        value = self._typed(event)
        if isinstance(value, bool):
            text = "true" if value else "false"
            self._error(
                start_of(event), "yaml-boolean-key",
                f"key {event.value} is read by YAML 1.1 as the boolean {text} and becomes the key "
                f'"{text}"; quote it ("{event.value}") to keep it',
                (*(frame.path or ()), text), severity=Severity.WARNING,
            )  # fmt: skip
            key = text
        elif isinstance(value, str):
            key = value
        else:
            key = event.value if value is not None else "null"
        if event.anchor is not None:
            self._anchors[event.anchor] = _Anchor(key, 1, [], [])
        self._set_key(frame, key, line)

    def _set_key(self, frame: _Frame, key: str, line: int) -> None:
        if key in frame.seen and frame.path is not None:
            self._error_at_line(
                line, "duplicate-key", f'key "{key}" already defined at line {frame.seen[key]}', (*frame.path, key)
            )
            self.defects.append(frame.path)
        frame.seen[key] = line
        frame.key, frame.key_line = key, line
        if frame.path is not None:
            self.lines[(*frame.path, key)] = line

    def _error_at_line(self, line: int, code: str, message: str, path: Path) -> None:
        self.diagnostics.append(Diagnostic(self.source, line, Severity.ERROR, code, message, field=field_name(path)))

    # -- placing values ---------------------------------------------------------------

    def _place(self, value: object, mark: Mark) -> Path | None:
        """Put a finished value where it belongs; the path it is recorded at (None when it is
        merged, dropped or inside an unrecorded container)."""
        if not self._stack:
            self.root, self.root_index = value, mark.index
            self.lines[()] = self.line_at(mark)
            return ()
        frame = self._stack[-1]
        if frame.role == "discard":
            return None
        if frame.container.__class__ is dict:
            key, frame.key = frame.key, _NO_KEY
            if key is _MERGE:
                self._merge(frame, value, mark)
                return None
            if key is _SKIP or key is _NO_KEY:
                return None
            frame.container[key] = value
            return None if frame.path is None else (*frame.path, key)  # type: ignore[arg-type]
        items: list[Any] = frame.container  # type: ignore[assignment]
        items.append(value)
        if frame.path is None:
            return None
        path = (*frame.path, len(items) - 1)
        self.lines[path] = self.line_at(mark)
        return path

    def _merge(self, frame: _Frame, value: object, mark: Mark) -> None:
        """``<<: *anchor`` or ``<<: [*a, *b]`` as go-yaml v2 does it: in the mapping's order,
        so later keys override; in a list, earlier mappings take precedence."""
        target: dict[Any, Any] = frame.container  # type: ignore[assignment]
        sources = list(reversed(value)) if isinstance(value, list) else [value]
        for source in sources:
            if not isinstance(source, dict):
                self._error(mark, "invalid-merge", _SEQUENCE_MERGE_HINT, frame.path or ())
                continue
            target.update(source)
            if frame.path is not None:
                for key in source:
                    self.lines[(*frame.path, key)] = frame.key_line

    # -- containers and aliases ---------------------------------------------------------

    def _start(
        self, event: MappingStartEvent | SequenceStartEvent, container: dict[Any, Any] | list[Any]
    ) -> None:
        self._count += 1
        line = self.line_at(start_of(event))
        if len(self._stack) >= self.limits.max_depth:
            self._error(
                start_of(event), "yaml-too-deep",
                f"maps and lists nested more than {self.limits.max_depth} deep "
                "(--max-depth, POLICYCTL_MAX_DEPTH); the rest of the file is not read", self._where(),
            )  # fmt: skip
            raise StopFile
        parent = self._stack[-1] if self._stack else None
        role, path = "value", self._child_path(parent, line)
        if parent is not None and parent.role == "discard":
            role, path = "discard", None
        elif parent is not None and parent.container.__class__ is dict:
            if parent.key is _NO_KEY:
                self._error(start_of(event), "invalid-key", "a mapping key must be a scalar", parent.path or ())
                parent.key = _SKIP
                role, path = "discard", None
            elif parent.key is _MERGE:
                role, path = "merge", None
        anchor = event.anchor
        if anchor is not None:
            self._building.add(anchor)
        if parent is None:
            self.root_index = start_of(event).index
        if role == "value":
            self._attach(parent, container, line)
        self._stack.append(_Frame(
            container, path, role, anchor, line, count_mark=self._count,
            lines_mark=len(self.lines), scalars_mark=len(self.scalars),
        ))  # fmt: skip

    def _child_path(self, parent: _Frame | None, line: int) -> Path | None:
        if parent is None:
            return ()
        if parent.path is None:
            return None
        if parent.container.__class__ is dict:
            return (*parent.path, parent.key) if isinstance(parent.key, str) else None
        return (*parent.path, len(parent.container))

    def _attach(self, parent: _Frame | None, container: dict[Any, Any] | list[Any], line: int) -> None:
        """A new container goes into its parent at once, so its own children are recorded
        under the right path."""
        if parent is None:
            self.root = container
            self.lines[()] = line
            return
        if parent.container.__class__ is dict:
            key, parent.key = parent.key, _NO_KEY
            if isinstance(key, str):
                parent.container[key] = container
            return
        items: list[Any] = parent.container  # type: ignore[assignment]
        items.append(container)
        if parent.path is not None:
            self.lines[(*parent.path, len(items) - 1)] = line

    def _end(self, event: MappingEndEvent | SequenceEndEvent) -> None:
        frame = self._stack.pop()
        if frame.anchor is not None:
            self._building.discard(frame.anchor)
            prefix = len(frame.path) if frame.path is not None else 0
            self._anchors[frame.anchor] = _Anchor(
                frame.container,
                self._count - frame.count_mark + 1,
                [(p[prefix:], n) for p, n in islice(self.lines.items(), frame.lines_mark, None)],
                [(p[prefix:], s) for p, s in islice(self.scalars.items(), frame.scalars_mark, None)],
            )
        if frame.role == "merge":
            parent = self._stack[-1]
            parent.key = _NO_KEY
            self._merge(parent, frame.container, start_of(event))

    def _alias(self, event: AliasEvent) -> None:
        name = event.anchor or ""
        anchor = self._anchors.get(name)
        frame = self._stack[-1] if self._stack else None
        if name in self._building or anchor is None:
            recursive = name in self._building
            self._error(
                start_of(event),
                "yaml-recursive-alias" if recursive else "yaml-undefined-alias",
                "an alias refers to the node that contains it" if recursive else f'alias "*{name}" has no anchor',
                self._where(),
            )
            if frame is not None and frame.container.__class__ is dict and frame.key is _NO_KEY:
                frame.key = _SKIP
            else:
                self._place(None, start_of(event))
            return
        self._count += anchor.size
        self._aliased += anchor.size
        if self._aliased > self.limits.max_alias_nodes:
            self._error(
                start_of(event), "yaml-too-large",
                f"aliases expand to more than {self.limits.max_alias_nodes:,} values; the rest of the file is not read",
                self._where(),
            )  # fmt: skip
            raise StopFile
        if frame is not None and frame.container.__class__ is dict and frame.key is _NO_KEY:
            if isinstance(anchor.value, str):
                self._set_key(frame, anchor.value, self.line_at(start_of(event)))
            else:
                self._error(start_of(event), "invalid-key", "a mapping key must be a scalar", frame.path or ())
                frame.key = _SKIP
            return
        merging = frame is not None and frame.container.__class__ is dict and frame.key is _MERGE
        path = self._place(anchor.value, start_of(event))
        if merging and frame is not None and frame.path is not None:
            path = frame.path
            for relative, line in anchor.lines:
                if relative:
                    self.lines[(*path, *relative)] = line
            return
        if path is None:
            return
        for relative, line in anchor.lines:
            if relative:
                self.lines[(*path, *relative)] = line
        for relative, scalar in anchor.scalars:
            self.scalars[(*path, *relative)] = scalar

