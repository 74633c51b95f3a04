"""Control's metrics: the label of each refusal, executions in flight by
tenant read at each scrape, queue waits by outcome, and the one timer every
database transaction passes through."""

from __future__ import annotations

import types
import urllib.request

import pytest
from sqlmodel import select

from services.common.contract.errors import InvalidArgument
from services.control.db import Database
from services.control.errors import AlreadyExists, NotFound, QuotaExceeded, RuntimeUnavailable
from services.control.executions.models import ExecutionRow
from services.control.metrics import ControlMetrics, refusal_reason
from services.control.slots import MESH_SLOTS


@pytest.mark.parametrize(
    "exc, reason",
    [
        (QuotaExceeded("t", "tenant:t/executions_in_flight", "full"), "quota_exceeded:executions_in_flight"),
        (QuotaExceeded("t", "tenant:t/daily_cpu_seconds", "spent"), "quota_exceeded:daily_cpu_seconds"),
        (QuotaExceeded("t", "tenant:t/slot_share", "held"), "quota_exceeded:slot_share"),
        (QuotaExceeded("t", MESH_SLOTS, "busy"), "quota_exceeded:slots"),
        (InvalidArgument("execution_id", "bad"), "invalid_argument"),
        (AlreadyExists("twice"), "already_exists"),
        (RuntimeUnavailable("gvisor", []), "runtime_unavailable"),
        (NotFound("gone"), None),
        (RuntimeError("the database broke"), None),
    ],
)
def test_refusal_reasons(exc, reason):
    assert refusal_reason(exc) == reason


def test_refusals_waits_and_in_flight():
    metrics = ControlMetrics()
    live = [types.SimpleNamespace(tenant=t) for t in ("tenant-a", "tenant-b", "tenant-a")]
    metrics.watch_in_flight(lambda: live)
    metrics.refused(QuotaExceeded("t", "tenant:t/executions_in_flight", "full"))
    metrics.refused(RuntimeError("not a refusal"))
    metrics.waited(0.2, got_slot=True)
    metrics.waited(30.0, got_slot=False)
    value = metrics.registry.get_sample_value
    assert value("sandbox_control_refusals_total", {"reason": "quota_exceeded:executions_in_flight"}) == 1
    assert value("sandbox_control_in_flight", {"tenant": "tenant-a"}) == 2
    assert value("sandbox_control_in_flight", {"tenant": "tenant-b"}) == 1
    assert value("sandbox_control_queue_wait_seconds_count", {"outcome": "slot"}) == 1
    assert value("sandbox_control_queue_wait_seconds_sum", {"outcome": "deadline"}) == 30.0
    live.clear()
    assert value("sandbox_control_in_flight", {"tenant": "tenant-a"}) is None


def test_every_transaction_is_timed(tmp_path):
    timed: list[tuple[str, float]] = []
    database = Database(f"sqlite:///{tmp_path}/control.db", on_transaction=lambda kind, s: timed.append((kind, s)))
    database.migrate()
    try:
        with database.read() as session:
            session.exec(select(ExecutionRow)).all()
        with pytest.raises(ZeroDivisionError), database.write():
            1 / 0  # noqa: B018 - a transaction that fails is timed too
    finally:
        database.dispose()
    assert [kind for kind, _ in timed] == ["read", "write"]
    assert all(seconds >= 0 for _, seconds in timed)


def test_served_over_http():
    metrics = ControlMetrics()
    metrics.admitted()
    port = metrics.serve("127.0.0.1:0")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        metrics.stop()
    assert "sandbox_control_admissions_total 1.0" in body
