"""The hub's log lines: one JSON object per line for log collectors, or text for a terminal.

``exchange-hub serve --log-format json|text`` (default: text when standard error is a terminal,
JSON otherwise). Every JSON line has ``time`` (RFC 3339, UTC), ``level``, ``logger``, ``event``
and ``message``; call lines (``event: "rpc"``, from :mod:`exchange.hub.observer`) add ``method``,
``agency``, ``status``, ``duration_ms``, ``request_id`` and, for a refusal, ``reason``. A
traceback goes in ``exception`` as one string, so it stays one line.

The hub never holds plaintext or item keys; its log lines carry no alert ids, item ids, message
texts or payload bytes either (a test greps a hub's log for marker strings published in every
field of an alert).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO


class LogFormat(StrEnum):
    """The two forms of ``--log-format``."""

    JSON = "json"
    TEXT = "text"


def default_log_format(stream: TextIO) -> LogFormat:
    """``text`` on a terminal, ``json`` for everything else (a file, a pipe, a collector)."""
    isatty = getattr(stream, "isatty", None)
    return LogFormat.TEXT if isatty is not None and isatty() else LogFormat.JSON


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or "log",
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=True, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = " ".join(f"{key}={value}" for key, value in _fields(record).items())
        if not extra:
            return text
        head, newline, rest = text.partition("\n")  # keep a traceback below the first line
        return f"{head} {extra}{newline}{rest}"


def configure_logging(log_format: LogFormat | str, *, stream: TextIO | None = None) -> None:
    """Send every log record of the process at INFO and above to ``stream`` (standard error)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    json_lines = LogFormat(log_format) is LogFormat.JSON
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Neither format shows a record's process, thread or source line: skip gathering them
    # for every record (the logging module's documented switches; a call logs one line each).
    logging.logProcesses = False
    logging.logThreads = False
    logging.logMultiprocessing = False
