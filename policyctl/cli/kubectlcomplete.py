"""``kubectl_complete-policyctl``: Tab completion of ``kubectl policyctl ...``.

kubectl (1.26 and later) completes a plugin's arguments by running ``kubectl_complete-NAME``
from PATH with the words typed after the plugin's name, the one being completed last (empty
after a space), and reads Cobra's answer: one candidate per line, then ``:DIRECTIVE``. The
candidates are policyctl's own (:mod:`policyctl.cli.completion`, through click), so
``kubectl policyctl explain -f k8s/ shop/<Tab>`` offers the same pods as ``policyctl``; where
click would leave a path to the shell, the directive asks kubectl's shell for file completion.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from click.shell_completion import ShellComplete

from policyctl.cli.main import main as policyctl

DEFAULT = 0
"""Cobra's ShellCompDirectiveDefault: the shell may complete file names."""
NO_FILE_COMPLETION = 4
"""Cobra's ShellCompDirectiveNoFileComp: only the candidates given."""


def answer(words: Sequence[str]) -> str:
    """Cobra's completion answer for the words after ``kubectl policyctl`` (the last is being
    completed)."""
    *args, incomplete = list(words) or [""]
    completer = ShellComplete(policyctl, {}, "kubectl policyctl", "_POLICYCTL_COMPLETE")
    items = completer.get_completions(args, incomplete)
    lines = [item.value + (f"\t{item.help}" if item.help else "") for item in items if item.type == "plain"]
    paths = any(item.type in ("file", "dir") for item in items)
    return "\n".join([*lines, f":{DEFAULT if paths else NO_FILE_COMPLETION}"]) + "\n"


def main() -> None:
    sys.stdout.write(answer(sys.argv[1:]))


if __name__ == "__main__":
    main()
