"""Agent log lines are one JSON object each, with the documented keys in a fixed order."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest

from policyctl.agent.logs import configure


@pytest.fixture
def lines() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    return configure(node="node-1", level="debug", stream=stream, name=f"policyctl.test.{uuid.uuid4().hex}"), stream


def _read(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_has_the_fixed_keys_first(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    logger.info("ruleset applied", extra={"fields": {"sync_id": 3, "transaction_id": "abc", "elements": 7}})
    (line,) = _read(stream)
    assert list(line)[:5] == ["ts", "level", "msg", "logger", "node"]
    assert line["level"] == "info" and line["msg"] == "ruleset applied" and line["node"] == "node-1"
    assert line["sync_id"] == 3 and line["transaction_id"] == "abc" and line["elements"] == 7
    assert str(line["ts"]).endswith("Z")


def test_context_keys_come_before_the_rest_and_absent_ones_are_left_out(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = lines
    logger.info("policy now isolates pod", extra={"fields": {
        "zeta": 1, "direction": "ingress", "pod": "x/a", "policy": "x/deny", "sync_id": 1, "resource": None,
    }})
    (line,) = _read(stream)
    assert list(line)[5:] == ["pod", "policy", "direction", "sync_id", "zeta"]


def test_an_exception_becomes_the_error_key(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    try:
        raise OSError("netlink: permission denied")
    except OSError:
        logger.exception("sync failed")
    (line,) = _read(stream)
    assert line["level"] == "error" and line["error"] == "netlink: permission denied"


def test_odd_values_are_rendered_as_text(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    logger.warning(
        "odd", extra={"fields": {"value": object.__new__(type("Thing", (), {"__str__": lambda s: "thing"}))}}
    )
    assert _read(stream)[0]["value"] == "thing"
