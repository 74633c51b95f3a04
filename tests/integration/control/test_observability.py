"""Control's metrics and the trace of one execution, with a real spawner:
after an execution through control its /metrics shows the admission, the
queue wait, the database's transactions and a refusal by reason; a W3C
traceparent the client sends is in control's and the spawner's log lines
about that execution (the spawner's only from the metadata of control's
call)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import secrets
import time
import urllib.request

import grpc
import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate

from sandbox.control.v1 import control_pb2_grpc
from sandbox_mesh.client import Client
from services.common.logs import JsonFormatter
from services.common.tracing import TraceLogFilter
from services.control.server import start as start_control
from tests.integration.control.conftest import TENANT_KEYS, control_channel, control_settings
from tests.integration.control.helpers import request, run

pytestmark = pytest.mark.integration

TRACE_ID = secrets.token_hex(16)
TRACEPARENT = f"00-{TRACE_ID}-{secrets.token_hex(8)}-01"
CONTROL_LOGGER = "services.control.relay"
SPAWNER_LOGGER = "services.spawner.spawner"


def _samples(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


@contextlib.contextmanager
def _json_lines():
    """Reads the JSON lines every services.* logger wrote so far, as a
    service's own set-up writes them (services/common/serve.py)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TraceLogFilter())
    logger = logging.getLogger("services")
    saved_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)


def _traced(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line.get("trace_id") == TRACE_ID]


@pytest.fixture
def control(control_spawner, tmp_path):
    running = start_control(control_settings(control_spawner.port, tmp_path, f"sqlite:///{tmp_path}/control.db"))
    yield running
    running.stop(grace_seconds=5)


def test_metrics_move_with_an_execution_and_refusals(control):
    assert control.metrics_port
    with control_channel(control.port, "tenant-a") as channel:
        result = run(control_pb2_grpc.ControlStub(channel), request({"main.py": "print('counted')"}))
        assert result.stdout == b"counted\n"
        with pytest.raises(grpc.RpcError) as invalid:
            run(control_pb2_grpc.ControlStub(channel), request({"main.py": "print(1)"}, execution_id="no spaces"))
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with control_channel(control.port, "tenant-c") as channel, pytest.raises(grpc.RpcError) as quota:
        run(control_pb2_grpc.ControlStub(channel), request({"main.py": "print(1)"}, timeout_ms=6000))
    assert quota.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    samples = _samples(control.metrics_port)
    assert samples["sandbox_control_admissions_total"] == 1
    assert samples['sandbox_control_refusals_total{reason="invalid_argument"}'] == 1
    assert samples['sandbox_control_refusals_total{reason="quota_exceeded:daily_cpu_seconds"}'] == 1
    assert samples['sandbox_control_queue_wait_seconds_count{outcome="slot"}'] == 1
    assert samples['sandbox_control_db_transaction_seconds_count{kind="write"}'] >= 3  # admit, claim, finalize
    assert samples['sandbox_control_db_transaction_seconds_count{kind="read"}'] >= 1
    assert samples.get('sandbox_control_in_flight{tenant="tenant-a"}', 0) == 0  # over by now
    assert samples.get('sandbox_control_relay_errors_total{kind="control"}', 0) == 0


def test_the_clients_trace_is_in_control_and_spawner_log_lines(control):
    execution_id = f"traced-{secrets.token_hex(4)}"
    with _json_lines() as read, Client(f"127.0.0.1:{control.port}", "tenant-a", TENANT_KEYS["tenant-a"]) as client:
        token = otel_context.attach(propagate.extract({"traceparent": TRACEPARENT}))
        try:
            result = client.run({"main.py": "print('traced')"}, execution_id=execution_id)
        finally:
            otel_context.detach(token)
        assert result.stdout == b"traced\n"
        untraced = client.run({"main.py": "print('untraced')"})
        # The spawner writes its line as the execution ends, maybe just after the result.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and SPAWNER_LOGGER not in {line["logger"] for line in _traced(read())}:
            time.sleep(0.05)
        lines = read()
    traced = _traced(lines)
    by_logger = {line["logger"] for line in traced}
    assert {CONTROL_LOGGER, SPAWNER_LOGGER} <= by_logger, lines
    control_line = next(line for line in traced if line["logger"] == CONTROL_LOGGER)
    assert control_line["execution_id"] == execution_id and "finished" in control_line["message"]
    # The next execution, without a trace, names none.
    other = [line for line in lines if line.get("execution_id") == untraced.execution.execution_id]
    assert other and all("trace_id" not in line for line in other)
