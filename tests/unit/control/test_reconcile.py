"""What the reconciler does with an execution whose relay is gone, given its
spawner's answer (reconcile.decide)."""

import json

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as spb
from services.control.executions.models import FAILED
from services.control.executions.reconcile import Action, SpawnerReport, decide

KEY = "k" * 32
SPAWNER = "127.0.0.1:1"


def report(in_flight=(), ended=()) -> SpawnerReport:
    return SpawnerReport.of(
        spb.ListExecutionsResponse(
            in_flight=[spb.ExecutionInFlight(execution_id=k, tenant="t") for k in in_flight], ended=list(ended)
        )
    )


def test_never_given_to_a_spawner_is_settled_with_nothing_charged():
    action, verdict = decide(KEY, "", None)
    assert action is Action.SETTLE
    assert verdict is not None and (verdict.status, verdict.error_code, verdict.cpu_seconds) == (
        FAILED,
        "SPAWNER_UNAVAILABLE",
        0.0,
    )


def test_a_spawner_that_does_not_answer_means_wait():
    assert decide(KEY, SPAWNER, None) == (Action.WAIT, None)


def test_still_running_on_its_spawner_is_cancelled_there_first():
    assert decide(KEY, SPAWNER, report(in_flight=[KEY, "other"])) == (Action.CANCEL, None)


def test_ended_on_its_spawner_is_settled_with_the_usage_measured_there():
    usage = common.Usage(cpu_seconds=1.5, wall_ms=2000, peak_memory_bytes=10_000_000)
    ended = spb.ExecutionEnded(
        execution_id=KEY,
        tenant="t",
        status=common.EXECUTION_STATUS_CANCELLED,
        error_code=common.ERROR_CODE_CANCELLED,
        usage=usage,
    )
    action, verdict = decide(KEY, SPAWNER, report(ended=[ended]))
    assert action is Action.SETTLE and verdict is not None
    assert (verdict.status, verdict.error_code, verdict.cpu_seconds) == (FAILED, "SPAWNER_UNAVAILABLE", 1.5)
    assert verdict.usage_json is not None and json.loads(verdict.usage_json)["wall_ms"] == "2000"
    assert "ended cancelled" in verdict.error_message


def test_unknown_to_its_spawner_is_settled_and_the_pre_debit_stands():
    action, verdict = decide(KEY, SPAWNER, report(in_flight=["other"]))
    assert action is Action.SETTLE and verdict is not None
    assert (verdict.status, verdict.error_code, verdict.cpu_seconds) == (FAILED, "SPAWNER_UNAVAILABLE", None)
