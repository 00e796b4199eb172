"""The headless browser the page tests drive leaves nothing behind in the temporary directory."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.cli.browser import BINARY, Chromium

pytestmark = pytest.mark.skipif(BINARY is None, reason="chromium is not installed (Debian package chromium)")


def _chromium_leftovers() -> set[Path]:
    root = Path(tempfile.gettempdir())
    return set(root.glob("org.chromium.Chromium.*")) | set(root.glob("policyctl-chromium-*"))


def test_a_closed_browser_leaves_nothing_in_the_temporary_directory() -> None:
    before = _chromium_leftovers()
    with Chromium() as chromium:
        assert chromium.evaluate("1 + 1") == 2
    assert _chromium_leftovers() == before
