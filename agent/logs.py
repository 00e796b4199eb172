"""JSON log lines with stable keys, one object per line, for ``jq`` and log pipelines.

Keys (documented in docs/agent.md; never renamed, only added to):

* always: ``ts`` (RFC 3339, UTC, milliseconds), ``level`` (``debug`` .. ``error``), ``msg``,
  ``logger``, ``node`` (the node this agent enforces for);
* when the line is about one: ``pod`` (``namespace/name``), ``policy`` (``namespace/name``),
  ``direction`` (``ingress``/``egress``), ``sync_id`` (counts syncs since start; every line a
  sync writes carries it), ``resource`` (a watched resource);
* anything else a line has to say is under its own key (``duration_seconds``,
  ``transaction_id``, ``elements_added``, ...), ``error`` for a failure's text, and
  ``traceback`` for an exception nobody foresaw (a bug to report).

Context is passed with ``extra={"fields": {...}}``; the formatter never raises on odd values
(they are rendered with ``str``). Keys are written in a fixed order: the fixed keys first, the
rest sorted.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Mapping
from typing import Any, TextIO

FIXED_KEYS = ("ts", "level", "msg", "logger", "node")
CONTEXT_KEYS = ("pod", "policy", "direction", "sync_id", "resource")
LOGGER = "policyctl"


class JsonFormatter(logging.Formatter):
    """Formats records as one JSON object per line with the keys above."""

    def __init__(self, *, node: str) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, tz=datetime.timezone.utc)
        line: dict[str, Any] = {
            "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            "logger": record.name,
            "node": self.node,
        }
        fields: Mapping[str, Any] = getattr(record, "fields", None) or {}
        for key in CONTEXT_KEYS:
            if key in fields and fields[key] is not None:
                line[key] = fields[key]
        for key in sorted(k for k in fields if k not in CONTEXT_KEYS and k not in FIXED_KEYS):
            line[key] = fields[key]
        if record.exc_info and record.exc_info[1] is not None:
            line.setdefault("error", str(record.exc_info[1]))
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(*, node: str, level: str = "info", stream: TextIO | None = None, name: str = LOGGER) -> logging.Logger:
    """The ``policyctl`` logger (the agent's and the reflectors' lines), writing JSON lines to
    ``stream`` (stderr by default). Replaces any handler an earlier call installed, so it is
    safe to call again; ``name`` picks another logger (tests keep theirs apart)."""
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(node=node))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger
