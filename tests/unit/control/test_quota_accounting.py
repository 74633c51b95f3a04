"""The pure quota arithmetic: admission checks, artifact storage, which
output files fit, slot time, the fair share's cap."""

import json

import pytest

from services.control.config import QuotaLimits
from services.control.errors import QuotaExceeded
from services.control.executions.models import COMPLETED, FAILED, StoredFile, Verdict
from services.control.quotas import accounting
from services.control.quotas.models import Stored, TenantQuota

LIMITS = QuotaLimits(
    max_in_flight=2,
    daily_cpu_seconds=10.0,
    daily_slot_seconds=20.0,
    max_stored_executions=5,
    max_stored_output_bytes=100,
    max_stored_artifacts=2,
    max_stored_artifact_bytes=50,
)


def quota(**values) -> TenantQuota:
    return TenantQuota(tenant="t", day="2026-01-01", **values)


def refused(call) -> str:
    with pytest.raises(QuotaExceeded) as exceeded:
        call()
    return exceeded.value.subject


def test_admission_within_every_limit():
    accounting.check_admission("t", LIMITS, quota(cpu_seconds_debited=5.0, slot_seconds_debited=15.0), 1, 5.0)


def test_admission_names_the_limit_it_passes():
    assert refused(lambda: accounting.check_admission("t", LIMITS, quota(), 2, 1.0)) == "tenant:t/executions_in_flight"
    assert refused(lambda: accounting.check_admission("t", LIMITS, quota(stored_executions=5), 0, 1.0)) == (
        "tenant:t/stored_executions"
    )
    assert refused(lambda: accounting.check_admission("t", LIMITS, quota(cpu_seconds_debited=9.5), 0, 1.0)) == (
        "tenant:t/daily_cpu_seconds"
    )
    # CPU barely used, the wall-clock slot budget spent: refused all the same.
    sleepy = quota(cpu_seconds_debited=0.1, slot_seconds_debited=19.5)
    assert refused(lambda: accounting.check_admission("t", LIMITS, sleepy, 0, 1.0)) == "tenant:t/daily_slot_seconds"


def test_a_budget_spent_exactly_is_not_refused_by_rounding():
    accounting.check_admission("t", LIMITS, quota(cpu_seconds_debited=0.1 + 0.2, slot_seconds_debited=0.3), 0, 9.7)


def test_artifact_storage():
    stored = Stored(artifacts=1, artifact_bytes=40)
    accounting.check_artifact_storage("t", LIMITS, stored, artifacts=1)
    accounting.check_artifact_storage("t", LIMITS, stored, artifact_bytes=10)
    accounting.check_artifact_storage("t", LIMITS, Stored(artifacts=9, artifact_bytes=90), artifact_bytes=-5)
    assert refused(lambda: accounting.check_artifact_storage("t", LIMITS, Stored(artifacts=2), artifacts=1)) == (
        "tenant:t/stored_artifacts"
    )
    assert refused(lambda: accounting.check_artifact_storage("t", LIMITS, stored, artifact_bytes=11)) == (
        "tenant:t/stored_artifact_bytes"
    )


def test_fit_outputs_keeps_what_fits_in_order():
    files = [StoredFile("a", 60, "x"), StoredFile("b", 50, "y"), StoredFile("c", 30, "z"), StoredFile("d", 0, "e")]
    kept, dropped = accounting.fit_outputs(files, 100)
    assert [f.path for f in kept] == ["a", "c", "d"] and [f.path for f in dropped] == ["b"]
    kept, dropped = accounting.fit_outputs(files, -10)  # already over (a lowered limit)
    assert kept == [] and len(dropped) == 4
    assert accounting.fit_outputs([], 0) == ([], [])


def test_dropped_outputs_are_named_and_fail_a_completed_run():
    verdict = Verdict(COMPLETED, exit_code=0, dropped_json=json.dumps(["big.bin (over the 10485760-byte cap)"]))
    changed = accounting.with_dropped_outputs(verdict, [StoredFile("out.csv", 70, "x")], 90, 100)
    assert (changed.status, changed.error_code, changed.exit_code) == (FAILED, "OUTPUT_LIMIT", 0)
    assert "1 output files dropped" in changed.error_message and "90 of 100" in changed.error_message
    assert json.loads(changed.dropped_json) == [
        "big.bin (over the 10485760-byte cap)",
        "out.csv (over the tenant's stored output bytes quota)",
    ]
    timed_out = Verdict(FAILED, "TIMEOUT", "killed at 1000 ms")
    changed = accounting.with_dropped_outputs(timed_out, [StoredFile("x", 1, "y")], 100, 100)
    assert (changed.status, changed.error_code, changed.error_message) == (FAILED, "TIMEOUT", "killed at 1000 ms")
    assert accounting.with_dropped_outputs(verdict, [], 0, 100) is verdict


def test_slot_seconds_used():
    assert accounting.slot_seconds_used(1_000, True, 7_500) == 6.5
    assert accounting.slot_seconds_used(0, True, 7_500) == 0.0  # never took a slot
    assert accounting.slot_seconds_used(1_000, False, 7_500) == 0.0  # no spawner was ever called
    assert accounting.slot_seconds_used(9_000, True, 7_500) == 0.0  # a clock step backwards


@pytest.mark.parametrize(
    "slots, share, cap",
    [(4, 0.5, 2), (3, 0.5, 1), (1, 0.5, 1), (0, 0.5, 1), (10, 0.3, 3), (4, 1.0, 4), (8, 0.25, 2)],
)
def test_slot_cap(slots, share, cap):
    assert accounting.slot_cap(slots, share) == cap
