"""``policyctl check``: validation, lint and assertions over manifests, for CI and pre-commit.

One run reads the manifests (files, directories, ``-``), reports what the API server would
refuse (errors), lints what it would accept but a reader likely did not mean (warnings and
info, :mod:`verifier.lint`), and checks ``--assert`` files (who must and must not reach whom).
Findings in Helm output are moved back to the chart's template file and line through the
``# Source:`` comments, so ``helm template ... | policyctl check -f -`` annotates the chart.

Exit status: 2 when the input cannot be used (unreadable, malformed, refused by validation,
bad assertion files; the report is still printed), else 1 when a finding is at or above
``--fail-level``, else 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from policyctl import __version__
from policyctl.cli.inputs import (
    EXIT_INPUT,
    EXIT_NO,
    EXIT_OK,
    cluster_options,
    input_limits,
    live_requested,
    load_cluster,
    namespace_option,
    report_skipped,
    skipped_kinds,
)
from policyctl.cli.render_check import at_or_above, to_github, to_json, to_junit, to_sarif, to_text
from policyctl.policy.suggest import did_you_mean
from policyctl.cli.checkconfig import CheckConfig, find_config, read_config
from policyctl.cli.skipnotes import report_skipped_files
from policyctl.manifests.triage import Skipped
from policyctl.manifests.loader import load_documents
from policyctl.manifests.manifestfiles import read_inputs
from policyctl.manifests.yamlsource import Document
from policyctl.policy.diagnostics import Diagnostic, Severity, has_errors
from policyctl.policy.cluster import Cluster
from policyctl.verifier.assertions import check_assertions, load_assertions
from policyctl.verifier.lint import RULES, lint
from policyctl.verifier.lint_sources import Manifests, through_source_comments
from policyctl.verifier.relation import Relation, connectivity

FORMATS = ("text", "json", "sarif", "junit", "github")


def assertion_findings(cluster: Cluster, paths: Sequence[str]) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """(problems with the assertion files themselves, failed assertions); one relation serves
    every file."""
    problems: list[Diagnostic] = []
    failed: list[Diagnostic] = []
    relation: Relation | None = None
    for path in paths:
        assertions, found = load_assertions(path)
        problems.extend(found)
        if has_errors(found):
            continue
        relation = relation or connectivity(cluster)
        failed.extend(
            r.to_diagnostic() for r in check_assertions(cluster, assertions, relation=relation) if not r.passed
        )
    return problems, failed


def render(
    diagnostics: Sequence[Diagnostic],
    *,
    output: str,
    files: Sequence[str],
    fail_level: Severity,
    skipped_files: Sequence[Skipped] = (),
) -> str:
    if output == "json":
        return to_json(diagnostics, files=files, skipped=skipped_kinds(), skipped_files=skipped_files)
    if output == "sarif":
        return to_sarif(diagnostics, rules=RULES, version=__version__)
    if output == "junit":
        return to_junit(diagnostics, files=files, fail_level=fail_level)
    if output == "github":
        return to_github(diagnostics, files=len(files))
    return to_text(diagnostics, files=len(files))


@click.command()
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    metavar="PATH",
    help="Manifest file, directory (recursively, *.yaml/*.yml/*.json) or '-' for stdin. "
    "Repeatable; PATH arguments are the same (pre-commit passes files that way).",
)
@namespace_option
@cluster_options
@click.option(
    "--assert",
    "assertion_files",
    multiple=True,
    metavar="FILE",
    help="Assertions to check (who must / must not reach whom). Repeatable.",
)
@click.option("-o", "--output", type=click.Choice(FORMATS), default="text", show_default=True, help="Report format.")
@click.option(
    "--fail-level",
    type=click.Choice([s.value for s in Severity]),
    default=Severity.WARNING.value,
    show_default=True,
    help="Exit 1 when a finding is at this severity or above.",
)
@click.option("--skip", multiple=True, metavar="CODE", help="Lint rule to leave out (its code). Repeatable.")
@click.option(
    "--min-severity",
    type=click.Choice([s.value for s in Severity]),
    default=None,
    help="Show findings at this severity or above. Default: warning in text output, info otherwise.",
)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="Configuration (skipped rules, severities, excluded paths). Default: .policyctl.yaml in the first "
    "directory checked.",
)
@click.option("-v", "--verbose", is_flag=True, help="List every file skipped as not a Kubernetes object.")
def check(
    paths: tuple[str, ...],
    filenames: tuple[str, ...],
    namespace: str,
    assertion_files: tuple[str, ...],
    output: str,
    fail_level: str,
    skip: tuple[str, ...],
    min_severity: str | None,
    config_file: str | None,
    verbose: bool,
) -> None:
    """Validate and lint NetworkPolicies (and check assertions) for CI.

    \b
    Examples:
      policyctl check -f examples/webshop
      policyctl check -f examples/webshop --assert examples/assertions/webshop.yaml -o sarif > policyctl.sarif
      policyctl gen --scale tiny | policyctl check -f - -o github
      policyctl check --context prod -A          # the policies live in a cluster

    Rendered charts and overlays are piped in with -f - (from helm template, kubectl
    kustomize).

    Exit status: 0 no finding at or above --fail-level, 1 findings, 2 unusable input
    (the report is printed in every case).
    """
    sources = (*filenames, *paths)
    unknown = sorted(set(skip) - set(RULES))
    if unknown:
        raise click.BadParameter(
            f"unknown lint rule {', '.join(unknown)}{did_you_mean(unknown[0], RULES)} (docs/lint.md lists them)",
            param_hint="--skip",
        )
    config, config_problems = _config(config_file, sources)
    if has_errors(config_problems):
        report = render(config_problems, output=output, files=[config.source], fail_level=Severity(fail_level))
        click.echo(report, nl=False)
        raise click.exceptions.Exit(EXIT_INPUT)
    skip = (*skip, *sorted(config.skip))
    if not sources and live_requested():
        files: list[str] = []
        skipped_files: Sequence[Skipped] = ()
        documents: list[Document] = []
        diagnostics: list[Diagnostic] = []
        cluster = load_cluster((), namespace=namespace)
        diagnostics.extend(lint(cluster, None, skip=skip))
    elif not sources:
        raise click.UsageError(
            "give at least one manifest: -f PATH (or PATH arguments, '-' for stdin), "
            "or a cluster with --kubeconfig/--context/-A"
        )
    else:
        read = read_inputs(sources, limits=input_limits(), excluded=config.excluded)
        files, documents, diagnostics = list(read.files), list(read.documents), list(read.diagnostics)
        skipped_files = read.skipped
        report_skipped_files(read.skipped, verbose=verbose)
        loaded = load_documents(documents, default_namespace=namespace)
        cluster = loaded.cluster
        report_skipped(loaded.skipped)
        diagnostics.extend(loaded.diagnostics)
        diagnostics.extend(lint(cluster, Manifests.index(documents, default_namespace=namespace), skip=skip))
    bad_input = has_errors(diagnostics)
    diagnostics = config.reweigh(diagnostics) + config_problems
    if assertion_files:
        problems, failed = assertion_findings(cluster, assertion_files)
        bad_input = bad_input or has_errors(problems)
        diagnostics.extend(problems + failed)
    level = Severity(fail_level)
    found = through_source_comments(diagnostics, documents)
    shown = shown_at(found, min_severity=min_severity, output=output)
    report = render(shown, output=output, files=sorted(set(files)), fail_level=level, skipped_files=skipped_files)
    click.echo(report, nl=False)
    if bad_input:
        raise click.exceptions.Exit(EXIT_INPUT)
    raise click.exceptions.Exit(EXIT_NO if any(at_or_above(d, level) for d in found) else EXIT_OK)


def _config(explicit: str | None, sources: Sequence[str]) -> tuple[CheckConfig, list[Diagnostic]]:
    path = explicit or find_config(sources)
    return read_config(path, rules=sorted(RULES)) if path else (CheckConfig(), [])


def shown_at(diagnostics: Sequence[Diagnostic], *, min_severity: str | None, output: str) -> list[Diagnostic]:
    """The findings at ``--min-severity`` or above (info is hidden in text output unless asked
    for: the defaults it reports are noise to most readers); says on stderr how many were hidden."""
    level = Severity(min_severity) if min_severity else (Severity.WARNING if output == "text" else Severity.INFO)
    shown = [d for d in diagnostics if at_or_above(d, level)]
    hidden = len(diagnostics) - len(shown)
    if hidden:
        lower = "info" if level is Severity.WARNING else "warning"
        click.echo(f"note: {hidden} finding(s) below {level.value} not shown (--min-severity {lower})", err=True)
    return shown
