"""``policyctl verify``: exhaustive proofs about a policy set, each answer with a witness.

Subcommands: ``assert`` (an assertions file, see docs/verifier.md), ``equivalent`` (two policy
sets over the same pods), ``redundant`` (policies and rules that change nothing, empty and
unsatisfiable selectors), ``coverage`` (pods no policy isolates) and ``path`` (lateral
movement through a chain of allowed connections).

Exit status: 0 the property holds (or nothing found), 1 it fails (with a counterexample), 2
invalid input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from policyctl.cli.completion import complete_endpoint, namespace_names
from policyctl.cli.inputs import (
    EXIT_INPUT,
    EXIT_NO,
    EXIT_OK,
    emit_document,
    fail,
    family_option,
    filename_option,
    input_errors,
    load_cluster,
    namespace_option,
    parse_family,
    print_diagnostics,
)
from policyctl.policy.suggest import bare_names_in_unknown_namespace
from policyctl.policy.diagnostics import Diagnostic, has_errors
from policyctl.policy.model import Family, Pod

if TYPE_CHECKING:
    from policyctl.verifier.queries import Finding

SCHEMA_VERSION = 1


def _exit(ok: bool) -> click.exceptions.Exit:
    return click.exceptions.Exit(EXIT_OK if ok else EXIT_NO)


def _diagnostics_document(diagnostics: Sequence[Diagnostic]) -> dict[str, object]:
    return {
        "schema_version": SCHEMA_VERSION,
        "findings": [
            {
                "file": d.file,
                "line": d.line,
                "severity": d.severity.value,
                "code": d.code,
                "message": d.message,
                "field": d.field,
                "object": d.object,
            }
            for d in diagnostics
        ],
    }


def _show(diagnostics: Sequence[Diagnostic], output: str) -> None:
    if output == "text":
        for diagnostic in diagnostics:
            click.echo(str(diagnostic))
    else:
        emit_document(_diagnostics_document(diagnostics), output)


_output = click.option("-o", "--output", type=click.Choice(["text", "json", "yaml"]), default="text", show_default=True)


@click.group()
def verify() -> None:
    """Prove properties of all traffic (every pod, port, protocol, family and outside
    address; optionally every pod that could be created), with counterexamples."""


@verify.command("assert")
@click.argument("assertion_files", nargs=-1, required=True, metavar="FILE...")
@filename_option
@namespace_option
@_output
def assert_command(assertion_files: tuple[str, ...], filenames: tuple[str, ...], namespace: str, output: str) -> None:
    """Check the assertions in FILE (can / cannot / only reach). Exit 1 when one fails."""
    from policyctl.verifier.assertions import check_assertions, load_assertions

    cluster = load_cluster(filenames, namespace=namespace)
    loaded, problems = [], []
    for path in assertion_files:
        found, diagnostics = load_assertions(path)
        loaded.extend(found)
        problems.extend(diagnostics)
    print_diagnostics(problems)
    if has_errors(problems):
        raise click.exceptions.Exit(EXIT_INPUT)
    results = check_assertions(cluster, loaded)
    _show([r.to_diagnostic() for r in results], output)
    raise _exit(all(r.passed for r in results))


@verify.command()
@click.option("--old", "first", multiple=True, required=True, metavar="PATH", help="The first policy set (manifests).")
@click.option(
    "--new", "second", multiple=True, required=True, metavar="PATH", help="The second policy set (manifests)."
)
@namespace_option
def equivalent(first: tuple[str, ...], second: tuple[str, ...], namespace: str) -> None:
    """Whether two manifest sets allow exactly the same flows; else a flow each allows alone."""
    from policyctl.verifier.comparison import describe
    from policyctl.verifier.queries import compare

    a = load_cluster(first, namespace=namespace)
    b = load_cluster(second, namespace=namespace)
    found = compare(a, b)
    if found.equivalent:
        click.echo("equivalent: both allow exactly the same flows")
    if found.only_first is not None:
        click.echo(f"only OLD allows: {describe(found.only_first)}")
    if found.only_second is not None:
        click.echo(f"only NEW allows: {describe(found.only_second)}")
    raise _exit(found.equivalent)


@verify.command()
@filename_option
@namespace_option
@_output
def redundant(filenames: tuple[str, ...], namespace: str, output: str) -> None:
    """Policies and rules whose removal changes no flow, selectors that select nothing."""
    from policyctl.verifier.queries import empty_selectors, redundancies
    from policyctl.verifier.relation import connectivity

    cluster = load_cluster(filenames, namespace=namespace)
    relation = connectivity(cluster)
    findings: list[Finding] = [
        *redundancies(cluster, relation=relation),
        *empty_selectors(cluster, index=relation.index),
    ]
    diagnostics = sorted(f.to_diagnostic() for f in findings)
    _show(diagnostics, output)
    raise _exit(not diagnostics)


@verify.command()
@filename_option
@namespace_option
@_output
def coverage(filenames: tuple[str, ...], namespace: str, output: str) -> None:
    """Pods that no policy isolates for ingress or egress. Exit 1 when there are any."""
    from policyctl.verifier.queries import uncovered_pods

    cluster = load_cluster(filenames, namespace=namespace)
    diagnostics = sorted(f.to_diagnostic() for f in uncovered_pods(cluster))
    _show(diagnostics, output)
    raise _exit(not diagnostics)


@verify.command()
@click.argument("source", shell_complete=complete_endpoint)
@click.argument("destination", shell_complete=complete_endpoint)
@filename_option
@namespace_option
@family_option
@click.option(
    "--ports",
    "port_text",
    default=None,
    metavar="PORTS",
    help="Hops only on these ports, e.g. 22/TCP or 1000-2000/UDP.",
)
def path(
    source: str, destination: str, filenames: tuple[str, ...], namespace: str, family: str | None, port_text: str | None
) -> None:
    """Whether SOURCE can reach DESTINATION through a chain of allowed connections (lateral
    movement), and the shortest such chain. Exit 0 when it can, 1 when it cannot."""
    from policyctl.policy.endpoints import resolve_endpoint
    from policyctl.verifier.paths import lateral_path
    from policyctl.verifier.portsets import ALL, parse_ports
    from policyctl.verifier.relation import connectivity

    cluster = load_cluster(filenames, namespace=namespace)
    if click.get_current_context().get_parameter_source("namespace") is not click.core.ParameterSource.DEFAULT:
        unknown = bare_names_in_unknown_namespace((source, destination), namespace, namespace_names(cluster))
        if unknown is not None:
            raise fail(unknown)
    with input_errors():
        ends = [resolve_endpoint(text, cluster, namespace=namespace).endpoint for text in (source, destination)]
    if not all(isinstance(e, Pod) for e in ends):
        raise fail("path: SOURCE and DESTINATION must be pods or workloads")
    try:
        ports = parse_ports(port_text) if port_text else ALL
    except ValueError as error:
        raise fail(str(error)) from None
    chosen = parse_family(family) or Family.IPV4
    hops = lateral_path(connectivity(cluster), ends[0], ends[1], family=chosen, ports=ports)  # type: ignore[arg-type]
    if hops is None:
        click.echo(f"{source} cannot reach {destination} ({chosen.value}), directly or through other pods")
        raise _exit(False)
    click.echo(f"{source} can reach {destination} in {len(hops)} hop{'s' if len(hops) > 1 else ''} ({chosen.value}):")
    for number, hop in enumerate(hops, start=1):
        click.echo(f"  {number}. {hop}")
    raise _exit(True)
