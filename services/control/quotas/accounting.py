"""Quota arithmetic, free of the database: what admission checks, which
storage writes fit, which output files a finalize keeps, the slot time it
settles, a tenant's share of the mesh's slots. The ledger (ledger.py) and
the stores call these inside their transactions."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence

from services.control.config import QuotaLimits
from services.control.errors import QuotaExceeded
from services.control.executions.models import COMPLETED, FAILED, StoredFile, Verdict
from services.control.quotas.models import Stored, TenantQuota

# Slack in the budget checks, so a budget spent exactly is not refused by
# float rounding.
BUDGET_EPSILON = 1e-9
MS_PER_SECOND = 1000
# How a dropped output file is named in `dropped_output_files`.
DROPPED_OVER_STORAGE = "{path} (over the tenant's stored output bytes quota)"


def slot_cap(mesh_slots: int, share: float) -> int:
    """The most slots one tenant may hold at once: max(1, floor(slots x share))."""
    return max(1, math.floor(mesh_slots * share + BUDGET_EPSILON))


def _subject(tenant: str, name: str) -> str:
    return f"tenant:{tenant}/{name}"


def _check_budget(tenant: str, name: str, unit: str, debited: float, budget: float, debit: float) -> None:
    if debited + debit > budget + BUDGET_EPSILON:
        left = max(0.0, budget - debited)
        raise QuotaExceeded(
            tenant,
            _subject(tenant, name),
            f"{left:.1f} of {budget:.1f} {unit} left today (UTC); the requested timeout needs {debit:.1f}",
        )


def check_admission(tenant: str, limits: QuotaLimits, quota: TenantQuota, in_flight: int, debit: float) -> None:
    """Raises QuotaExceeded when one more execution, pre-debited `debit`
    seconds of CPU and of slot time, would pass a limit."""
    if in_flight >= limits.max_in_flight:
        raise QuotaExceeded(
            tenant,
            _subject(tenant, "executions_in_flight"),
            f"{in_flight} of {limits.max_in_flight} executions in flight; wait for one to finish",
        )
    if quota.stored_executions >= limits.max_stored_executions:
        raise QuotaExceeded(
            tenant,
            _subject(tenant, "stored_executions"),
            f"{quota.stored_executions} of {limits.max_stored_executions} execution records stored; "
            "older ones are deleted when their retention period ends",
        )
    _check_budget(
        tenant, "daily_cpu_seconds", "CPU seconds", quota.cpu_seconds_debited, limits.daily_cpu_seconds, debit
    )
    _check_budget(
        tenant, "daily_slot_seconds", "slot seconds", quota.slot_seconds_debited, limits.daily_slot_seconds, debit
    )


def check_artifact_storage(
    tenant: str, limits: QuotaLimits, stored: Stored, *, artifacts: int = 0, artifact_bytes: int = 0
) -> None:
    """Raises QuotaExceeded when adding `artifacts` and `artifact_bytes`
    (either may be negative or zero: only growth is checked) passes a limit."""
    if artifacts > 0 and stored.artifacts + artifacts > limits.max_stored_artifacts:
        raise QuotaExceeded(
            tenant,
            _subject(tenant, "stored_artifacts"),
            f"{stored.artifacts} of {limits.max_stored_artifacts} artifacts stored",
        )
    if artifact_bytes > 0 and stored.artifact_bytes + artifact_bytes > limits.max_stored_artifact_bytes:
        raise QuotaExceeded(
            tenant,
            _subject(tenant, "stored_artifact_bytes"),
            f"{stored.artifact_bytes} of {limits.max_stored_artifact_bytes} bytes of artifact files stored; "
            f"this write needs {artifact_bytes} more",
        )


def fit_outputs(files: Sequence[StoredFile], room: int) -> tuple[list[StoredFile], list[StoredFile]]:
    """(kept, dropped): in the given order, each file that still fits in
    `room` bytes is kept, each that does not is dropped."""
    kept, dropped = [], []
    for stored in files:
        if stored.size <= room:
            kept.append(stored)
            room -= stored.size
        else:
            dropped.append(stored)
    return kept, dropped


def with_dropped_outputs(verdict: Verdict, dropped: Sequence[StoredFile], stored_bytes: int, limit: int) -> Verdict:
    """The verdict once `dropped` were not stored for the storage quota: they
    are named in the dropped list and, like files the spawner drops over its
    caps, turn a completed execution into OUTPUT_LIMIT."""
    if not dropped:
        return verdict
    names = json.loads(verdict.dropped_json or "[]")
    names += [DROPPED_OVER_STORAGE.format(path=f.path) for f in dropped]
    changed = dataclasses.replace(verdict, dropped_json=json.dumps(names))
    if verdict.status != COMPLETED:
        return changed
    message = f"{len(dropped)} output files dropped: the tenant stores {stored_bytes} of {limit} bytes of output files"
    return dataclasses.replace(changed, status=FAILED, error_code="OUTPUT_LIMIT", error_message=message)


def slot_seconds_used(slot_at_ms: int, on_spawner: bool, now_ms: int) -> float:
    """Slot time an execution used: from taking its slot to its verdict, if a
    spawner was ever called for it; none when it never left the queue."""
    if not slot_at_ms or not on_spawner:
        return 0.0
    return max(0, now_ms - slot_at_ms) / MS_PER_SECOND
