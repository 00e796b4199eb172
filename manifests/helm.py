"""A Helm chart directory read as the objects it renders to, with ``helm template``.

A chart's templates are Go templates (``{{ .Values.x }}``), not YAML, so they are never parsed
as manifests; what a cluster would receive is ``helm template``'s output, rendered with the
chart's default values; findings in it point to the chart's template files (the ``# Source:``
comments Helm writes, with the chart's directory for its name). When no ``helm`` is installed
the chart is skipped with a note that says how to check it by hand; a chart that does not
render is an error on its ``Chart.yaml``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from policyctl.manifests.inputlimits import InputLimits
from policyctl.manifests.triage import Skipped
from policyctl.manifests.walk import CHART_FILE, unreadable
from policyctl.policy.diagnostics import Diagnostic

HELM_TIMEOUT_SECONDS = 120
#: Helm names each rendered document's template as ``# Source: <chart name>/templates/x.yaml``;
#: the chart name is replaced by the chart's directory, so findings point to files that exist.
_SOURCE = re.compile(r"^# Source: [^/\n]+/(.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Rendered:
    """The output of rendering one chart: text with its source name, or why there is none."""

    source: str
    text: str | None = None
    skipped: Skipped | None = None
    problem: Diagnostic | None = None


def rendered_source(chart: str) -> str:
    return f"{os.path.join(chart, CHART_FILE)} (helm template)"


def render_chart(chart: str, *, limits: InputLimits) -> Rendered:
    """``helm template <directory name> <chart>``, bounded in time and size."""
    chart_file = os.path.join(chart, CHART_FILE)
    helm = shutil.which("helm")
    if helm is None:
        release = os.path.basename(os.path.abspath(chart)) or "release"
        note = (
            "a Helm chart, not rendered because helm is not installed: its templates are not read; "
            f"check it with: helm template {release} {chart} | policyctl check -f -"
        )
        return Rendered(chart_file, skipped=Skipped(chart_file, 1, note))
    release = os.path.basename(os.path.abspath(chart)) or "release"
    try:
        done = subprocess.run(
            [helm, "template", release, chart],
            capture_output=True,
            timeout=HELM_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return Rendered(chart_file, problem=unreadable(chart_file, f"helm template did not finish: {error}"))
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        message = f"helm template failed: {detail[-1] if detail else f'exit status {done.returncode}'}"
        return Rendered(chart_file, problem=unreadable(chart_file, message))
    if len(done.stdout) > limits.max_file_bytes:
        too_large = unreadable(chart_file, "helm template output is larger than --max-file-size")
        return Rendered(chart_file, problem=too_large)
    text = done.stdout.decode("utf-8", errors="replace")
    return Rendered(rendered_source(chart), text=_SOURCE.sub(lambda m: f"# Source: {os.path.join(chart, m[1])}", text))
