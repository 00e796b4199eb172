"""A directory walked as kube-linter walks a repository: manifests, Helm charts, Kustomize files.

Every ``.yaml``/``.yml``/``.json`` file is a candidate manifest (whether it holds objects is
decided per document, :mod:`manifests.triage`), except:

* a directory with a ``Chart.yaml`` is a Helm chart: its templates are Go templates, not YAML,
  and its ``values.yaml`` configures them, so nothing under it is read as a manifest; the chart
  is rendered with ``helm template`` instead (:mod:`manifests.helm`);
* a ``kustomization.yaml`` (``.yml``, ``Kustomization``) is an instruction to ``kubectl
  kustomize``, and the files it names as patches (``patches[].path``,
  ``patchesStrategicMerge``, ``patchesJson6902[].path``) are partial objects, meaningful only
  once merged: both are skipped with a note. The resources it names are ordinary manifests and
  are read where they lie.

Sorted order, a diagnostic for each directory that cannot be listed and each manifest name
that is not a regular file (a FIFO would block reading for ever): nothing is skipped in
silence.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from policyctl.manifests.triage import Skipped
from policyctl.manifests.yamlsource import read_documents
from policyctl.policy.diagnostics import Diagnostic, Severity

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
CHART_FILE = "Chart.yaml"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
FILE_FIELD = "(file)"
_KUSTOMIZATION_BYTES = 1 << 20
_RENDER_HINT = "check the overlay as rendered: kubectl kustomize DIR | policyctl check -f -"


@dataclass(frozen=True)
class Walk:
    """What a directory holds: manifest files to read, Helm charts to render, what was
    skipped and why, and the paths that could not be walked."""

    files: tuple[str, ...] = ()
    charts: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    problems: tuple[Diagnostic, ...] = ()


def unreadable(source: str, message: str, *, line: int = 1) -> Diagnostic:
    return Diagnostic(source, line, Severity.ERROR, "unreadable-file", message, field=FILE_FIELD)


def _patch_paths(kustomization: str) -> list[str]:
    """The files a kustomization names as patches, relative to its directory (inline patches
    and unreadable kustomizations name none)."""
    try:
        with open(kustomization, "rb") as stream:
            text = stream.read(_KUSTOMIZATION_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return []
    documents, _ = read_documents(text, source=kustomization)
    found: list[str] = []
    for document in documents:
        value = document.value
        if not isinstance(value, Mapping):
            continue
        for key in ("patches", "patchesJson6902", "patchesStrategicMerge"):
            entries = value.get(key)
            for entry in entries if isinstance(entries, list) else []:
                path = entry.get("path") if isinstance(entry, Mapping) else entry
                if isinstance(path, str) and path and "\n" not in path:
                    found.append(path)
    return found


def chart_of(path: str) -> str | None:
    """The Helm chart directory ``path`` lies in (the nearest directory above it with a
    ``Chart.yaml``), or ``None``."""
    current = os.path.dirname(os.path.abspath(path))
    while True:
        if os.path.isfile(os.path.join(current, CHART_FILE)):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def named_file_note(path: str) -> Skipped | None:
    """Why a file named on the command line (pre-commit passes every changed ``*.yaml``) is
    not read as manifests: it belongs to a Helm chart, or a kustomization beside it names it
    as a patch. ``None`` when it is to be read."""
    chart = chart_of(path)
    if chart is not None:
        shown = os.path.relpath(chart) if not os.path.isabs(path) else chart
        return Skipped(path, 1, f"part of the Helm chart {shown}, not a manifest: skipped (check the chart as "
                                f"rendered: helm template NAME {shown} | policyctl check -f -)")  # fmt: skip
    directory = os.path.dirname(path) or "."
    for name in KUSTOMIZATION_FILES:
        kustomization = os.path.join(directory, name)
        if os.path.isfile(kustomization) and any(
            os.path.normpath(os.path.join(directory, patch)) == os.path.normpath(path)
            for patch in _patch_paths(kustomization)
        ):
            note = f"a Kustomize patch named by {kustomization}, not an object: skipped ({_RENDER_HINT})"
            return Skipped(path, 1, note)
    return None


def walk(directory: str, *, excluded: Callable[[str], bool] | None = None) -> Walk:
    """The manifest files under ``directory`` in sorted order, its Helm charts, and a note
    for each file skipped (Kustomize files and patches, paths ``excluded`` by the caller)."""
    files: list[str] = []
    charts: list[str] = []
    skipped: list[Skipped] = []
    problems: list[Diagnostic] = []
    patches: dict[str, str] = {}

    def cannot_list(error: OSError) -> None:
        problems.append(unreadable(error.filename or directory, error.strerror or str(error)))

    for root, dirs, names in os.walk(directory, onerror=cannot_list):
        dirs.sort()
        if excluded is not None:
            for name in [d for d in dirs if excluded(os.path.join(root, d))]:
                dirs.remove(name)
                skipped.append(Skipped(os.path.join(root, name), 1, "excluded by the configuration: not read"))
        if CHART_FILE in names:
            charts.append(root)
            dirs.clear()
            continue
        for name in sorted(names):
            if name in KUSTOMIZATION_FILES:
                kustomization = os.path.join(root, name)
                note = f"a Kustomization, not a cluster object: skipped ({_RENDER_HINT})"
                skipped.append(Skipped(kustomization, 1, note))
                for patch in _patch_paths(kustomization):
                    patches[os.path.normpath(os.path.join(root, patch))] = kustomization
        for name in sorted(names):
            path = os.path.join(root, name)
            if name in KUSTOMIZATION_FILES or not name.endswith(MANIFEST_SUFFIXES):
                continue
            if excluded is not None and excluded(path):
                skipped.append(Skipped(path, 1, "excluded by the configuration: not read"))
            elif os.path.normpath(path) in patches:
                by = patches[os.path.normpath(path)]
                note = f"a Kustomize patch named by {by}, not an object: skipped ({_RENDER_HINT})"
                skipped.append(Skipped(path, 1, note))
            elif os.path.isfile(path):
                files.append(path)
            else:
                problems.append(unreadable(path, "not a regular file (a FIFO, device or broken link is not read)"))
    return Walk(tuple(files), tuple(charts), tuple(skipped), tuple(problems))
