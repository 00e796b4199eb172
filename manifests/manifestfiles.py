"""Manifest files and standard input read into text, within limits, whatever they hold.

A path may name anything: a directory (walked as a repository, :mod:`manifests.walk`),
a file of any size or encoding, a device that never ends (``/dev/zero``), a FIFO. Reading
stops at :attr:`~manifests.inputlimits.InputLimits.max_file_bytes` and at the first NUL byte
(YAML allows none, and binary files have them early), so neither memory nor time depends on
what the path turns out to be. Every problem is a diagnostic with a real line of the file
(line 1 when the file cannot be opened at all) and the field ``(file)``.

Encodings are those YAML and kubectl's go-yaml reader take: UTF-8 (with or without a byte
order mark) and UTF-16 with a byte order mark.
"""

from __future__ import annotations

import codecs
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from policyctl.policy.diagnostics import Diagnostic
from policyctl.manifests.inputlimits import MIB, InputLimits
from policyctl.manifests.helm import render_chart
from policyctl.manifests.triage import Skipped, triage
from policyctl.manifests.walk import named_file_note, unreadable, walk
from policyctl.manifests.yamlsource import Document, read_documents

STDIN_SOURCE = "<stdin>"
_CHUNK = MIB
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _problem(source: str, message: str, *, line: int = 1) -> Diagnostic:
    return unreadable(source, message, line=line)


def _size_text(size: int) -> str:
    return f"{size // MIB:,} MiB" if size % MIB == 0 else f"{size:,} bytes"


def read_bytes(stream: BinaryIO, *, source: str, limits: InputLimits) -> tuple[bytes | None, Diagnostic | None]:
    """At most ``max_file_bytes`` bytes of ``stream``, stopping at a NUL byte (binary data)
    unless the text is UTF-16, whose ASCII characters are half NUL bytes."""
    chunks: list[bytes] = []
    size = 0
    newlines = 0
    utf16 = False
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        if size == 0:
            utf16 = chunk.startswith(_UTF16_BOMS)
        nul = -1 if utf16 else chunk.find(b"\0")
        if nul >= 0:
            line = newlines + chunk.count(b"\n", 0, nul) + 1
            message = f"binary data (a NUL byte at byte {size + nul:,}), not YAML or JSON"
            return None, _problem(source, message, line=line)
        size += len(chunk)
        if size > limits.max_file_bytes:
            return None, _problem(
                source,
                f"larger than {_size_text(limits.max_file_bytes)} (--max-file-size, POLICYCTL_MAX_FILE_SIZE)",
            )
        newlines += chunk.count(b"\n")
        chunks.append(chunk)
    return b"".join(chunks), None


def decode(data: bytes, *, source: str) -> tuple[str | None, Diagnostic | None]:
    """UTF-8 (a byte order mark is dropped) or UTF-16 with a byte order mark."""
    encoding = "utf-16" if data.startswith(_UTF16_BOMS) else "utf-8-sig"
    try:
        return data.decode(encoding), None
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1 if encoding != "utf-16" else 1
        name = "UTF-16" if encoding == "utf-16" else "UTF-8"
        return None, _problem(source, f"not {name} text ({error.reason} at byte {error.start:,})", line=line)


def read_path(path: str, *, limits: InputLimits) -> tuple[str | None, Diagnostic | None]:
    """The text of the file at ``path``, or why it cannot be had."""
    try:
        with open(path, "rb") as stream:
            data, problem = read_bytes(stream, source=path, limits=limits)
    except FileNotFoundError:
        return None, _problem(path, "no such file or directory")
    except OSError as error:
        return None, _problem(path, error.strerror or str(error))
    if data is None:
        return None, problem
    return decode(data, source=path)


def read_stdin(stdin: TextIO | None, *, limits: InputLimits) -> tuple[str | None, Diagnostic | None]:
    """Standard input (or ``stdin``), as bytes when it has a binary buffer."""
    stream = stdin if stdin is not None else sys.stdin
    buffer = getattr(stream, "buffer", None)
    try:
        if buffer is not None:
            data, problem = read_bytes(buffer, source=STDIN_SOURCE, limits=limits)
            return (None, problem) if data is None else decode(data, source=STDIN_SOURCE)
        text = stream.read(limits.max_file_bytes + 1)
    except OSError as error:
        return None, _problem(STDIN_SOURCE, error.strerror or str(error))
    except UnicodeDecodeError as error:
        return None, _problem(STDIN_SOURCE, f"not UTF-8 text ({error.reason})")
    if len(text) > limits.max_file_bytes:
        return None, _problem(
            STDIN_SOURCE, f"larger than {_size_text(limits.max_file_bytes)} (--max-file-size, POLICYCTL_MAX_FILE_SIZE)"
        )
    return text, None


@dataclass(frozen=True)
class Sources:
    """What reading the given paths produced: the files read (``<stdin>`` for ``-``), the
    documents that are Kubernetes objects, every diagnostic, and a note for everything read
    and deliberately not taken as an object (:mod:`manifests.triage`, :mod:`manifests.walk`)."""

    files: tuple[str, ...] = ()
    documents: tuple[Document, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    skipped: tuple[Skipped, ...] = ()


def read_inputs(
    paths: Sequence[str],
    *,
    stdin: TextIO | None = None,
    limits: InputLimits,
    excluded: Callable[[str], bool] | None = None,
) -> Sources:
    """Every manifest of ``paths``: files, directories walked as a repository (Helm charts
    rendered, Kustomize files skipped, :mod:`manifests.walk`) and ``-``; in each file, the
    documents that are not Kubernetes objects are skipped with a note (:mod:`manifests.triage`)."""
    files: list[str] = []
    charts: list[str] = []
    documents: list[Document] = []
    diagnostics: list[Diagnostic] = []
    skipped: list[Skipped] = []
    for path in paths:
        if path != "-" and os.path.isdir(path):
            found = walk(path, excluded=excluded)
            files.extend(found.files)
            charts.extend(found.charts)
            skipped.extend(found.skipped)
            diagnostics.extend(found.problems)
        elif path == "-":
            files.append(STDIN_SOURCE)
        elif (note := named_file_note(path)) is not None:
            skipped.append(note)
        else:
            files.append(path)
    texts: list[tuple[str, str | None, Diagnostic | None]] = []
    for source in files:
        if source == STDIN_SOURCE:
            texts.append((source, *read_stdin(stdin, limits=limits)))
        else:
            texts.append((source, *read_path(source, limits=limits)))
    for chart in charts:
        rendered = render_chart(chart, limits=limits)
        if rendered.skipped is not None:
            skipped.append(rendered.skipped)
        elif rendered.problem is not None or rendered.text is not None:
            files.append(rendered.source)
            texts.append((rendered.source, rendered.text, rendered.problem))
    for source, text, problem in texts:
        if problem is not None:
            diagnostics.append(problem)
            continue
        read, found_diagnostics = read_documents(text or "", source=source, limits=limits)
        kept, kept_diagnostics, notes = triage(text or "", read, found_diagnostics)
        documents.extend(kept)
        diagnostics.extend(kept_diagnostics)
        skipped.extend(notes)
    return Sources(tuple(files), tuple(documents), tuple(diagnostics), tuple(sorted(skipped)))

