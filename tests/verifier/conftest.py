"""The CLI runner fixture of tests/cli, for the verifier's command tests."""

from tests.cli.conftest import run  # noqa: F401
