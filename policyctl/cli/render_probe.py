"""Human output of ``policyctl probe``: one truth table per probe, mismatches marked.

A cell is ``✔`` (allowed) or ``✘`` (denied) as observed; a cell that differs from the case's
expectation is shown as ``✔!``/``✘!`` (and in red on a colour terminal), so the table stays
readable without colour.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from policyctl.cli.inputs import console
from policyctl.probecases.runner import CaseResult, ProbeOutcome


def render_probe_result(result: CaseResult) -> None:
    out = console()
    out.print(f"case: {result.case.name}")
    out.print(f"engine: {result.engine}")
    for index, step in enumerate(result.steps):
        for outcome in step:
            out.print(_title(outcome, step=index))
            out.print(_table(outcome))
    mismatches = sum(len(o.mismatches) for step in result.steps for o in step)
    if result.passed:
        out.print("passed: every expected cell matched")
    else:
        out.print(f"FAILED: {mismatches} mismatch(es), marked '!' (rows: from, columns: to)")


def _title(outcome: ProbeOutcome, *, step: int) -> str:
    probe = outcome.probe.probe
    via = " via service" if probe.via_service else ""
    return f"step {step}: {probe.port}/{probe.protocol.value} {probe.family.value}{via} ({outcome.observation.method})"


def _table(outcome: ProbeOutcome) -> Table:
    observed = outcome.observation.allowed
    pods = sorted(observed)
    wrong = {(m.source, m.destination) for m in outcome.mismatches}
    table = Table()
    table.add_column("from \\ to")
    for pod in pods:
        table.add_column(pod, justify="center")
    for source in pods:
        cells: list[Text | str] = [source]
        for destination in pods:
            allowed = observed[source].get(destination)
            mark = "?" if allowed is None else ("✔" if allowed else "✘")
            if (source, destination) in wrong:
                cells.append(Text(mark + "!", style="bold red"))
            else:
                cells.append(mark)
        table.add_row(*cells)
    return table
