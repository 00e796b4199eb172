"""Notes on stderr for what reading manifests skipped on purpose (:mod:`manifests.triage`).

Never silently ignored, never noisy: one line counts the files that are not Kubernetes objects
(CI workflows, compose files, Helm values, Kustomize files and patches) and says ``-v`` lists
them; a Helm chart that could not be rendered is always named, with how to check it.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from policyctl.manifests.triage import Skipped

_HELM = "a Helm chart"


def report_skipped_files(skipped: Sequence[Skipped], *, verbose: bool = False, listing: str = "-v") -> None:
    """Every note with ``verbose``; otherwise the Helm charts and one summary line."""
    if not skipped:
        return
    if verbose:
        for note in skipped:
            click.echo(str(note), err=True)
        return
    for note in skipped:
        if note.reason.startswith(_HELM):
            click.echo(str(note), err=True)
    others = {note.source for note in skipped if not note.reason.startswith(_HELM)}
    if others:
        click.echo(
            f"note: skipped {len(others)} file(s) that are not Kubernetes objects (CI, compose, Helm values, "
            f"Kustomize files and patches; {listing} lists them)",
            err=True,
        )
