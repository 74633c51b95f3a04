"""A real spawner's `finished` log line: one JSON object with the execution's
id and tenant as fields and its status and error code as enum names."""

from __future__ import annotations

import io
import json
import logging
import secrets
import time

import grpc
import pytest

from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.common.logs import JsonFormatter
from services.spawner.server import start
from tests.integration.conftest import SECRET, assert_nothing_left, make_settings
from tests.integration.helpers import execute, request

pytestmark = pytest.mark.integration

SPAWNER_LOGGER = "services.spawner.spawner"


def _finished_entries(stream: io.StringIO, execution_id: str) -> list[dict]:
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [e for e in entries if e.get("execution_id") == execution_id and "finished" in e["message"]]


def test_finished_line_names_status_and_carries_the_execution(docker_api, tmp_path):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(SPAWNER_LOGGER)
    saved_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    name = f"test-logs-{secrets.token_hex(4)}"
    running = start(make_settings(name, tmp_path))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = spawner_pb2_grpc.SpawnerStub(grpc.intercept_channel(channel, ClientAuthInterceptor(SECRET.encode())))
            req = request({"main.py": "print('logged')"}, tenant="tenant-logs")
            outcome = execute(stub, req)
        assert outcome.result is not None and outcome.stdout == b"logged\n"
        deadline = time.monotonic() + 10  # the line may follow the result event
        while not _finished_entries(stream, req.execution_id) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        running.stop(grace_seconds=5)
        logger.removeHandler(handler)
        logger.setLevel(saved_level)
    assert_nothing_left(docker_api, name, tmp_path, running.spawner.cgroups)
    (entry,) = _finished_entries(stream, req.execution_id)
    assert entry["tenant"] == "tenant-logs"
    assert entry["status"] == "EXECUTION_STATUS_COMPLETED"
    assert entry["error_code"] == "ERROR_CODE_UNSPECIFIED"
    assert entry["level"] == "INFO" and entry["logger"] == SPAWNER_LOGGER
    assert "EXECUTION_STATUS_COMPLETED" in entry["message"]
