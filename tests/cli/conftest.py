"""Running the CLI in-process, with stdout and stderr apart, and the bundled example's path."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from policyctl.cli.main import main

REPO = Path(__file__).resolve().parents[2]
WEBSHOP = REPO / "examples" / "webshop"


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch):
    """``run(*args, input=None)`` -> click Result; NO_COLOR unset so tests see what a pipe gets."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)

    return invoke


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)
