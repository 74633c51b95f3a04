"""The services' log lines (services/common/logs.py): one JSON object a
line with the call site's fields, exceptions as a string, enum names."""

from __future__ import annotations

import io
import json
import logging

import pytest

from sandbox.common.v1 import execution_pb2 as common
from services.common import logs
from services.control.executions.fields import execution_fields
from services.control.executions.models import FAILED, Verdict


def _record(message: str = "hello %s", args: tuple = ("world",), **extra) -> logging.LogRecord:
    logger = logging.getLogger("test.logs")
    return logger.makeRecord("test.logs", logging.WARNING, __file__, 1, message, args, None, extra=extra)


def test_one_json_object_with_the_standard_fields():
    line = logs.JsonFormatter().format(_record())
    entry = json.loads(line)
    assert entry["message"] == "hello world"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "test.logs"
    assert entry["time"].endswith("+00:00") and "T" in entry["time"]
    assert "\n" not in line


def test_extra_fields_are_fields_and_cannot_replace_the_standard_ones():
    record = _record(execution_id="e-1", tenant="acme", status="EXECUTION_STATUS_COMPLETED", level="forged")
    entry = json.loads(logs.JsonFormatter().format(record))
    assert entry["execution_id"] == "e-1"
    assert entry["tenant"] == "acme"
    assert entry["status"] == "EXECUTION_STATUS_COMPLETED"
    assert entry["level"] == "WARNING"


def test_a_multiline_message_and_an_exception_stay_on_one_line():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("test.logs.exc")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            logger.exception("failed\nhere", extra={"tenant": "acme"})
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["message"] == "failed\nhere"
    assert "ValueError: bad" in entry["exception"]
    assert entry["tenant"] == "acme"


def test_values_json_cannot_encode_are_strings():
    entry = json.loads(logs.JsonFormatter().format(_record(path=object())))
    assert isinstance(entry["path"], str)


@pytest.mark.parametrize(
    ("setting", "kind"),
    [
        (None, logs.JsonFormatter),
        ("json", logs.JsonFormatter),
        ("text", logs.TextFormatter),
        (" TEXT ", logs.TextFormatter),
    ],
)
def test_log_format_picks_the_formatter(setting, kind):
    assert type(logs.formatter_for(setting)) is kind


def test_text_format_appends_the_fields_to_the_message_line():
    line = logs.TextFormatter().format(_record(tenant="acme"))
    assert line.endswith("test.logs: hello world tenant=acme")


def test_setup_logging_replaces_the_root_handlers(monkeypatch):
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    monkeypatch.delenv(logs.LOG_FORMAT_ENV, raising=False)
    stream = io.StringIO()
    try:
        logs.setup_logging(stream=stream)
        logging.getLogger("test.logs.setup").info("up", extra={"execution_id": "e-2"})
        assert len(root.handlers) == 1
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "up" and entry["execution_id"] == "e-2"


def test_control_fields_name_the_status_and_error_code():
    verdict = Verdict(status=FAILED, error_code="SPAWNER_UNAVAILABLE", error_message="gone")
    fields = execution_fields("e-3", "acme", verdict)
    assert fields == {
        "execution_id": "e-3",
        "tenant": "acme",
        "status": "EXECUTION_STATUS_FAILED",
        "error_code": "ERROR_CODE_SPAWNER_UNAVAILABLE",
    }
    assert common.ExecutionStatus.Value(fields["status"]) == common.EXECUTION_STATUS_FAILED
    assert execution_fields("e-3", "acme") == {"execution_id": "e-3", "tenant": "acme"}
