"""``policyctl agent`` refuses settings it cannot use, naming each flag, with exit status 2."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from policyctl.cli.main import main


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param([], {}, "--node (or the NODE_NAME variable", id="no-node-name"),
        pytest.param(["--node", "n1", "--min-interval", "10", "--max-interval", "5"], {},
                     "--max-interval (5.0) must not be shorter", id="max-below-min"),
        pytest.param(["--metrics-port", "9000", "--health-port", "9000"], {"NODE_NAME": "n1"},
                     "--metrics-port and --health-port must differ", id="same-ports"),
        pytest.param(["--node", "n1", "--kubeconfig", "/nonexistent/kubeconfig"], {},
                     "/nonexistent/kubeconfig: kubeconfig file not found", id="missing-kubeconfig"),
        pytest.param(
            ["--node", "n1", "--stale-after", "0"], {}, "--stale-after must be positive", id="no-staleness-bound"
        ),
        pytest.param(["--node", "n1", "--health-address", "localhost"], {},
                     "--health-address must be an IP address (got 'localhost')", id="health-address-a-name"),
        pytest.param(["--node", "n1", "--metrics-address", "$(HOST_IP)"], {},
                     "--metrics-address must be an IP address", id="metrics-address-unexpanded"),
        pytest.param(["--node", "n1", "--http-connections", "0"], {}, "--http-connections must be at least 1",
                     id="no-connections"),
        pytest.param(["--node", "n1", "--http-timeout", "0"], {}, "--http-timeout must be positive", id="no-timeout"),
    ],
)
def test_unusable_settings_exit_2_with_a_message(args: list[str], env: dict[str, str], message: str) -> None:
    result = CliRunner().invoke(main, ["agent", *args], env={"NODE_NAME": "", **env})
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_every_problem_is_reported_at_once() -> None:
    result = CliRunner().invoke(main, ["agent", "--retry-interval", "-1", "--page-size", "0"], env={"NODE_NAME": ""})
    assert result.exit_code == 2
    for flag in ("--node", "--retry-interval", "--page-size"):
        assert flag in result.output
