"""``policyctl diff OLD NEW``: what a change to the manifests opens and closes, exactly.

OLD and NEW are manifest paths (files or directories) or ``REV:PATH`` git revisions of a path
in the repository of the current directory (``main:deploy/policies``). A revision is read with
``git archive`` into a temporary directory here, at the edge; the verifier only ever sees two
clusters.

Nothing a user types reaches git as an option: a revision must look like one (no leading
``-``, no whitespace or control characters), is resolved to an object id with ``git rev-parse
--verify --end-of-options``, and only that id and the path (after ``--``) are given to ``git
archive``; a path that leaves the repository is refused.

Exit status: 0 no flow changed, 1 flows changed (like ``diff``), 2 invalid input.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import click

from policyctl.cli.inputs import EXIT_NO, EXIT_OK, emit_document, fail, load_cluster, namespace_option, output_option

if TYPE_CHECKING:
    import tarfile

    from policyctl.verifier.semdiff import FlowChange, FlowDiff

SCHEMA_VERSION = 1


_REVISION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./~^@{}+-]*")
"""What a revision may look like: branch and tag names, object ids, ``HEAD~2``, ``main^``,
``HEAD@{1}``; never a leading ``-`` (git would read an option)."""
_OBJECT_ID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


def _git(*args: str, cwd: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=120)


def _tree_of(spec: str, revision: str, root: str) -> str:
    """The object id of ``revision``'s tree, resolved without letting git read it as an option."""
    if not _REVISION.fullmatch(revision) or ".." in revision:
        raise fail(f"{spec}: {revision!r} is not a revision (expected a branch, tag, commit id or HEAD~N)")
    found = _git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{tree}}", cwd=root)
    tree = found.stdout.decode(errors="replace").strip()
    if found.returncode != 0 or not _OBJECT_ID.fullmatch(tree):
        raise fail(f"{spec}: unknown revision {revision!r}")
    return tree


def _regular(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Plain files and directories inside the archive only (no links, no paths leaving it)."""
    for member in tar.getmembers():
        parts = member.name.split("/")
        if (member.isfile() or member.isdir()) and not member.name.startswith("/") and ".." not in parts:
            yield member


@contextmanager
def revision_path(spec: str) -> Iterator[str]:
    """A local path for ``spec``: itself when it exists, else ``REV:PATH`` extracted from git."""
    if os.path.exists(spec) or ":" not in spec:
        yield spec
        return
    revision, _, path = spec.partition(":")
    if any(ord(c) < 32 or c == "\x7f" for c in path):
        raise fail(f"{spec}: the path holds a control character")
    top = _git("rev-parse", "--show-toplevel", cwd=os.getcwd())
    if top.returncode != 0:
        raise fail(f"{spec}: not a path, and not in a git repository: {top.stderr.decode().strip()}")
    root = top.stdout.decode().strip()
    tree = _tree_of(spec, revision, root)
    prefix = os.path.relpath(os.path.join(os.getcwd(), path or "."), root)
    if prefix == os.pardir or prefix.startswith(os.pardir + os.sep):
        raise fail(f"{spec}: {path!r} is outside the repository {root}")
    prefix = "" if prefix == "." else prefix
    archive = _git("archive", "--format=tar", tree, "--", *([prefix] if prefix else []), cwd=root)
    if archive.returncode != 0:
        raise fail(f"{spec}: {archive.stderr.decode(errors='replace').strip()}")
    import tarfile

    with tempfile.TemporaryDirectory(prefix="policyctl-diff-") as directory:
        target = os.path.join(directory, "tree.tar")
        with open(target, "wb") as handle:
            handle.write(archive.stdout)
        with tarfile.open(target) as tar:
            tar.extractall(directory, members=_regular(tar))
        os.remove(target)
        yield os.path.join(directory, prefix) if prefix else directory


def _change(change: FlowChange) -> dict[str, Any]:
    return {
        "from": change.source,
        "to": change.destination,
        "family": change.family.value,
        "ports": [{"protocol": p.value, "first": low, "last": high} for p, low, high in change.ports.ranges()],
        "example": {"from": change.example[0], "to": change.example[1]},
        **({"from_pods": list(change.source_pods)} if change.source_pods else {}),
        **({"to_pods": list(change.destination_pods)} if change.destination_pods else {}),
    }


def diff_document(found: FlowDiff) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "added": [_change(c) for c in found.added],
        "removed": [_change(c) for c in found.removed],
        "pods_added": list(found.pods_added),
        "pods_removed": list(found.pods_removed),
    }


def diff_text(found: FlowDiff) -> str:
    if found.empty:
        return "no flow changed\n"
    lines = []
    for sign, title, changes in (("+", "added", found.added), ("-", "removed", found.removed)):
        if changes:
            lines.append(f"flows {title}:")
            for c in changes:
                example = f"  (e.g. {c.example[0]} -> {c.example[1]})" if c.example != (c.source, c.destination) else ""
                lines.append(f"{sign} {c.source} -> {c.destination} {c.family.value}: {c.ports}{example}")
    for title, pods in (("pods only in NEW", found.pods_added), ("pods only in OLD", found.pods_removed)):
        if pods:
            lines.append(f"{title}: {', '.join(pods)}")
    return "\n".join(lines) + "\n"


@click.command()
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@namespace_option
@output_option(("text", "json", "yaml"))
def diff(old: str, new: str, namespace: str, output: str) -> None:
    """Flows NEW allows that OLD did not (added) and the reverse (removed), exactly: every
    pod pair, port, protocol and family, and outside addresses, grouped by workload.

    \b
    OLD/NEW: a manifest file or directory, or REV:PATH for a git revision of a path.

    \b
    Examples:
      policyctl diff HEAD:examples/webshop examples/webshop     # what the uncommitted edits change
      policyctl diff examples/webshop examples/webshop -o json

    Exit status: 0 nothing changed, 1 flows changed, 2 invalid input.
    """
    from policyctl.verifier.semdiff import semantic_diff

    with ExitStack() as stack:
        old_path = stack.enter_context(revision_path(old))
        new_path = stack.enter_context(revision_path(new))
        found = semantic_diff(
            load_cluster([old_path], namespace=namespace), load_cluster([new_path], namespace=namespace)
        )
    if output == "text":
        click.echo(diff_text(found), nl=False)
    else:
        emit_document(diff_document(found), output)
    raise click.exceptions.Exit(EXIT_OK if found.empty else EXIT_NO)
