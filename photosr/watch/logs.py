"""Log formats for the daemon: one line per event, `key=value` for people and grep, JSON for collectors.

The daemon logs through the `photosr.watch` logger with the event's fields in `extra={"fields": {...}}`;
the CLI picks the formatter. Library code never prints.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

LOGGER_NAME = "photosr.watch"


def _value(value: Any) -> str:
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    # Quote anything a `key=value` splitter would trip on; json quoting escapes newlines too.
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class KeyValueFormatter(logging.Formatter):
    """`2026-01-02T03:04:05.678Z INFO file status=ok input=a.jpg output=a.jpg seconds=0.120`."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        parts = [_timestamp(record), record.levelname, record.getMessage()]
        parts += [f"{key}={_value(value)}" for key, value in fields.items() if value is not None]
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, event, and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        data = {"time": _timestamp(record), "level": record.levelname, "event": record.getMessage()}
        data.update({key: value for key, value in fields.items() if value is not None})
        return json.dumps(data, ensure_ascii=False, default=str)


__all__ = ["LOGGER_NAME", "JsonFormatter", "KeyValueFormatter"]
