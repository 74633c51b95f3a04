"""The one logging set-up of the three services: one JSON object per line
(time, level, logger, message, and whatever fields a call site passes with
`extra=`, such as execution_id, tenant, status, error_code), or, with
LOG_FORMAT=text, a human line for local runs.

Call sites pass enum values as names (`common.ExecutionStatus.Name(x)`),
never numbers: a log line is read by people and by queries that should not
need the proto to make sense of it."""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import IO, Any

LOG_FORMAT_ENV = "LOG_FORMAT"
JSON_FORMAT = "json"
TEXT_FORMAT = "text"
TEXT_LINE = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _iso_utc(created: float) -> str:
    return datetime.datetime.fromtimestamp(created, datetime.UTC).isoformat(timespec="milliseconds")


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call site passed with `extra=`."""
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (json.dumps escapes newlines
    in messages and tracebacks)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            entry.setdefault(key, value)  # the four fields above are not overridden
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The human line, with any extra fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__(TEXT_LINE)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = extra_fields(record)
        if not fields:
            return line
        head, sep, tail = line.partition("\n")  # fields stay on the message's line
        return head + " " + " ".join(f"{k}={v}" for k, v in fields.items()) + sep + tail


def formatter_for(log_format: str | None) -> logging.Formatter:
    """JSON unless LOG_FORMAT says text."""
    if (log_format or JSON_FORMAT).strip().lower() == TEXT_FORMAT:
        return TextFormatter()
    return JsonFormatter()


def setup_logging(
    level: int = logging.INFO, stream: IO[str] | None = None, filters: Sequence[logging.Filter] = ()
) -> None:
    """Replaces the root logger's handlers with one writing to `stream`
    (stderr by default) in the format LOG_FORMAT names (JSON by default).
    `filters` add fields to every record (services/common/tracing.py: the
    trace id)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter_for(os.environ.get(LOG_FORMAT_ENV)))
    for log_filter in filters:
        handler.addFilter(log_filter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
