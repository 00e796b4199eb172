"""``policyctl probe``: run a probe case on one engine (``../shared/spec/probe-cases.md``).

Engines are a small registry of ``module:factory`` names, imported only when chosen, so the
model engine runs on any machine and an engine that cannot run here (its module is missing, or
it raises :class:`~policyctl.probecases.engines.EngineUnavailable`, e.g. the lab without root)
exits 2 with the reason instead of a traceback.
"""

from __future__ import annotations

import importlib

import click

from policyctl.cli.inputs import emit_document, fail, input_errors, output_option
from policyctl.probecases.engines import Engine, EngineUnavailable

ENGINES: dict[str, str] = {
    "model": "policyctl.probecases.runner:ModelEngine",
    "compiled": "policyctl.compiler.engine:CompiledEngine",
    "lab": "policyctl.lab.engine:LabEngine",
}
"""Engine name -> ``module:factory``; the factory takes no arguments and returns an Engine."""


def make_engine(name: str) -> Engine:
    """The engine called ``name``; :class:`EngineUnavailable` says why it cannot run here."""
    module_name, _, factory_name = ENGINES[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise EngineUnavailable(f"the {name} engine is not part of this installation") from error
        raise
    factory = getattr(module, factory_name, None)
    if factory is None:
        raise EngineUnavailable(f"the {name} engine is not part of this installation")
    return factory()


@click.command()
@click.argument("case_file", metavar="CASE.yaml", type=click.Path(dir_okay=False))
@click.option(
    "--engine",
    type=click.Choice(sorted(ENGINES)),
    default="model",
    show_default=True,
    help="model: the reference semantics. compiled: the nftables ruleset the compiler emits "
    "for each node, evaluated rule by rule. lab: real packets between network namespaces "
    "(needs root, nftables and iproute2).",
)
@output_option(("table", "json"), versioned=False)
def probe(case_file: str, engine: str, output: str) -> None:
    """Run the probe case CASE.yaml on an engine and compare with its expected truth tables.

    After each step of the case every probe asks, for every ordered pair of pods, whether a
    new connection on the probe's port, protocol and family is allowed. The JSON output is
    the probe-case spec's: addresses, observed tables, mismatches, passed.

    Exit status: 0 every expected cell matched, 1 mismatches, 2 invalid case file or an
    engine that cannot run here (the reason is printed).
    """
    from policyctl.cli.render_probe import render_probe_result
    from policyctl.probecases.cases import load_probe_case
    from policyctl.probecases.runner import run_case

    with input_errors():
        case = load_probe_case(case_file)
    try:
        chosen = make_engine(engine)
    except EngineUnavailable as error:
        raise fail(f"engine {engine} cannot run here: {error}") from None
    try:
        result = run_case(case, chosen)
    except EngineUnavailable as error:
        raise fail(f"engine {engine} cannot run here: {error}") from None
    if output == "json":
        emit_document(result.to_json(), "json")
    else:
        render_probe_result(result)
    raise click.exceptions.Exit(result.exit_code)

