"""A command group that imports a command's module only when that command runs.

``policyctl --version``, ``--help`` of one command and shell completion are paid for on every
kubectl-plugin call and every Tab: importing every command (rich, networkx, the compiler, the
Kubernetes client) would cost them most of a second. The group knows its commands by name and
``module:attribute``; :meth:`LazyGroup.get_command` imports the one asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

from policyctl.cli.failures import GuardedGroup


class LazyGroup(GuardedGroup):
    """``lazy``: command name -> ``"package.module:attribute"`` of a click command."""

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Click's own, with "did you mean" among every command, imported or not."""
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as error:
            raise click.exceptions.NoSuchCommand(
                error.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        """Command names without their help, which would import every command, then options."""
        from click.shell_completion import CompletionItem

        names = [CompletionItem(name) for name in self.list_commands(ctx) if name.startswith(incomplete)]
        return names + click.Command.shell_complete(self, ctx, incomplete)
