"""Reading the examples out of every command's ``--help``: the lines of each ``Example:`` or
``Examples:`` block, in order, as a user would copy them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
from click.testing import CliRunner

from policyctl.cli.main import main

_HEADER = re.compile(r"^\s*Examples?:\s*$")


def command_paths(group: click.Command = main, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and group, the top level first, as the words after ``policyctl``."""
    yield path
    if isinstance(group, click.Group):
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            yield from command_paths(command, (*path, name))


def help_text(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="policyctl", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def examples(text: str) -> list[str]:
    """The example lines of a help text: indented lines under an ``Examples:`` header, up to
    the first blank or less indented line."""
    found: list[str] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not _HEADER.match(line):
            continue
        indent = len(line) - len(line.lstrip())
        for body in lines[index + 1:]:
            if not body.strip() or len(body) - len(body.lstrip()) <= indent:
                break
            found.append(body.strip())
    return found


def stray_commands(text: str) -> list[str]:
    """Lines of the description (before ``Options:``, whose help is wrapped prose) that read as
    a command to copy, outside any examples block: so no example escapes being run."""
    inside = set(examples(text))
    description = text.split("\nOptions:", 1)[0]
    return [line.strip() for line in description.splitlines()
            if line.strip().startswith("policyctl ") and line.strip() not in inside]  # fmt: skip
