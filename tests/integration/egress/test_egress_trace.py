"""The egress serves Admit and Revoke in the caller's trace (the spawner
sends its execution's W3C trace context): the JSON log lines of those calls
name the trace, and a call without one names none."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from sandbox.egress.v1 import egress_pb2 as pb

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
