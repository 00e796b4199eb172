"""The ``policyctl`` command group: options common to all commands and the list of commands.

Each command lives in its own module and is listed in :data:`COMMANDS` as ``module:command``;
adding a command is one line there. The group's options bound what reading input may cost
(:func:`~policyctl.cli.inputs.input_limit_options`), and the group ends every command with a
defined exit code, whatever happens (:mod:`policyctl.cli.failures`).
"""

from __future__ import annotations

import importlib

import click

from policyctl import __version__
from policyctl.cli.failures import GuardedGroup
from policyctl.cli.inputs import input_limit_options, keep_input_limits

COMMANDS = (
    "policyctl.cli.explain:explain",
    "policyctl.cli.matrix:matrix",
    "policyctl.cli.probe:probe",
    "policyctl.cli.enforce:enforce",
    "policyctl.cli.stats:stats",
    "policyctl.cli.lab:lab",
    "policyctl.cli.compile:compile_command",
    "policyctl.cli.graph:graph",
    "policyctl.cli.agent:agent",
    "policyctl.cli.check:check",
    "policyctl.cli.gen:gen",
    "policyctl.cli.diff:diff",
    "policyctl.cli.verify:verify",
    "policyctl.cli.convert:convert",
)


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="policyctl")
@input_limit_options
@click.pass_context
def main(ctx: click.Context, **limits: int) -> None:
    """policyctl: exact Kubernetes NetworkPolicy verdicts, explanations and enforcement.

    \b
    Examples:
      policyctl explain -f examples/webshop shop/frontend shop/payments --port 8443/TCP
      policyctl matrix -f examples/webshop --port 8080/TCP
      policyctl probe tests/cases/01-and-vs-or.yaml --engine model

    Exit status: 0 success, 1 the answer is no (denied with explain --exit-code, probe
    mismatches), 2 invalid input or usage, 3 an internal error (a bug: please report it),
    130 interrupted (Ctrl-C).
    """
    keep_input_limits(ctx, **limits)


for _spec in COMMANDS:
    _module, _, _name = _spec.partition(":")
    main.add_command(getattr(importlib.import_module(_module), _name))
