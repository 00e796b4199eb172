"""The ``policyctl`` command group: options common to all commands and the list of commands.

Each command lives in its own module and is listed in :data:`COMMANDS` as ``module:command``;
adding a command is one line there, and its module is imported only when the command runs
(:mod:`policyctl.cli.lazygroup`), so ``--version`` and shell completion stay fast. The group's
options bound what reading input may cost (:func:`~policyctl.cli.inputs.input_limit_options`),
and the group ends every command with a defined exit code, whatever happens
(:mod:`policyctl.cli.failures`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from policyctl import __version__
from policyctl.cli.inputs import input_limit_options, keep_input_limits
from policyctl.cli.lazygroup import LazyGroup

COMMANDS = {
    "explain": "policyctl.cli.explain:explain",
    "matrix": "policyctl.cli.matrix:matrix",
    "probe": "policyctl.cli.probe:probe",
    "enforce": "policyctl.cli.enforce:enforce",
    "stats": "policyctl.cli.stats:stats",
    "lab": "policyctl.cli.lab:lab",
    "compile": "policyctl.cli.compile:compile_command",
    "graph": "policyctl.cli.graph:graph",
    "agent": "policyctl.cli.agent:agent",
    "check": "policyctl.cli.check:check",
    "gen": "policyctl.cli.gen:gen",
    "diff": "policyctl.cli.diff:diff",
    "verify": "policyctl.cli.verify:verify",
    "convert": "policyctl.cli.convert:convert",
    "drops": "policyctl.cli.drops:drops",
    "status": "policyctl.cli.status:status",
}
"""Command name -> ``module:attribute``; a module is imported only when its command is used."""


class PolicyctlGroup(LazyGroup):
    """The top-level group, named as it was invoked: run as the kubectl plugin
    (``kubectl-policyctl``, found by kubectl on PATH), its usage lines and errors say
    ``kubectl policyctl``, what the user typed, and completion keeps its one variable."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        invoked = os.path.basename(sys.argv[0]) if sys.argv else ""
        if kwargs.get("prog_name") is None and len(args) < 2 and invoked.startswith("kubectl-"):
            kwargs["prog_name"] = "kubectl " + invoked.removeprefix("kubectl-")
        kwargs.setdefault("complete_var", "_POLICYCTL_COMPLETE")
        return super().main(*args, **kwargs)


@click.group(
    cls=PolicyctlGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", prog_name="policyctl")
@input_limit_options
@click.pass_context
def main(ctx: click.Context, **limits: int) -> None:
    """policyctl: exact Kubernetes NetworkPolicy verdicts, explanations and enforcement.

    \b
    Examples:
      policyctl explain -f examples/webshop shop/frontend shop/payments --port 8443/TCP
      policyctl matrix -f examples/webshop --port 8080/TCP
      policyctl matrix -f examples/webshop --port http    # each pod's own port named http
      policyctl check -f examples/webshop          # exit 1: the example's planted mistake

    Exit status: 0 success, 1 the answer is no (denied with explain --exit-code, probe
    mismatches), 2 invalid input or usage, 3 an internal error (a bug: please report it),
    130 interrupted (Ctrl-C).
    """
    keep_input_limits(ctx, **limits)

