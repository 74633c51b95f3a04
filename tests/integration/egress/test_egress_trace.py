"""The egress serves Admit and Revoke in the caller's trace (the spawner
sends its execution's W3C trace context): the JSON log lines of those calls
name the trace, and a call without one names none. End to end: an
execution's trace, sent to the spawner, is the one the egress logs."""

from __future__ import annotations

import json
import secrets
import time

import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.egress.v1 import egress_pb2 as pb
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.spawner.server import start
from tests.integration.conftest import SECRET, assert_nothing_left, make_settings
from tests.integration.egress.conftest import PROXY_PORT
from tests.integration.helpers import collect, request

pytestmark = pytest.mark.integration

# An address of the documentation range: admitted, never used.
ADDRESS = "192.0.2.7"


def traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def log_line(container, message: str, execution_id: str) -> dict:
    """The egress's JSON log line of ``message`` for ``execution_id``."""
    deadline = time.monotonic() + 10
    while True:
        for raw in container.logs(stdout=False, stderr=True).decode(errors="replace").splitlines():
            if not raw.startswith("{"):
                continue
            entry = json.loads(raw)
            if entry.get("message") == message and entry.get("execution_id") == execution_id:
                return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"no {message!r} line for {execution_id}")
        time.sleep(0.2)


def test_admit_and_revoke_log_the_callers_trace(mesh):
    egress = mesh.egresses[0]
    execution_id = f"trace-{secrets.token_hex(4)}"
    admit_trace, admit_parent = traceparent()
    revoke_trace, revoke_parent = traceparent()

    egress.stub.Admit(
        pb.AdmitRequest(execution_id=execution_id, address=ADDRESS),
        metadata=[("traceparent", admit_parent)],
        timeout=10,
    )
    revoked = egress.stub.Revoke(
        pb.RevokeRequest(execution_id=execution_id), metadata=[("traceparent", revoke_parent)], timeout=10
    )
    assert revoked.was_admitted

    admitted = log_line(egress.container, "admitted", execution_id)
    assert admitted["trace_id"] == admit_trace and admitted["address"] == ADDRESS
    assert len(admitted["span_id"]) == 16
    revoked_line = log_line(egress.container, "revoked", execution_id)
    assert revoked_line["trace_id"] == revoke_trace and revoked_line["was_admitted"] is True


def test_a_call_without_a_trace_logs_none(mesh):
    egress = mesh.egresses[0]
    execution_id = f"untraced-{secrets.token_hex(4)}"
    egress.stub.Admit(pb.AdmitRequest(execution_id=execution_id, address=ADDRESS), timeout=10)
    egress.stub.Revoke(pb.RevokeRequest(execution_id=execution_id), timeout=10)
    assert "trace_id" not in log_line(egress.container, "admitted", execution_id)
    assert "trace_id" not in log_line(egress.container, "revoked", execution_id)


@pytest.fixture
def spawner(mesh, docker_api, tmp_path):
    """A spawner whose sandboxes with a network reach the suite's first egress."""
    name = f"trace-{secrets.token_hex(4)}"
    root = tmp_path / "workspaces"
    root.mkdir()
    egress = mesh.egresses[0]
    running = start(
        make_settings(
            name,
            root,
            egress_container=egress.container.id,
            egress_proxy_port=PROXY_PORT,
            egress_secret=mesh.secret,
            egress_grpc=egress.grpc_target,
        )
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    yield spawner_pb2_grpc.SpawnerStub(grpc.intercept_channel(channel, ClientAuthInterceptor(SECRET.encode())))
    channel.close()
    running.stop(grace_seconds=5)
    assert running.spawner.cleanup_failures == 0
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)


def test_an_executions_trace_reaches_the_egress_through_the_spawner(mesh, spawner):
    trace_id, parent = traceparent()
    execute = request({"main.py": "print('traced')"}, network=True)
    outcome = collect(spawner.Execute(execute, metadata=[("traceparent", parent)], timeout=120))
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.stderr
    container = mesh.egresses[0].container
    assert log_line(container, "admitted", execute.execution_id)["trace_id"] == trace_id
    assert log_line(container, "revoked", execute.execution_id)["trace_id"] == trace_id
