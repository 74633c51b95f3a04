"""The one way to settle an execution whose relay is gone: the watchdog's
(no heartbeat) and the reconciler's (its control process died). The relay
records its own verdicts (relay.py)."""

from __future__ import annotations

import logging

from services.control.executions.fields import execution_fields
from services.control.executions.models import ExecutionRow, Verdict
from services.control.executions.store import ExecutionStore
from services.control.spawners import SpawnerPool

log = logging.getLogger(__name__)


def settle_without_relay(
    store: ExecutionStore, pool: SpawnerPool, row: ExecutionRow, verdict: Verdict, *, by: str, stop_on_spawner: bool
) -> bool:
    """Records `verdict` (the first verdict wins: False when another came
    first), which settles the quota and frees the tenant's slot; with
    `stop_on_spawner`, asks the execution's spawner to kill whatever of it
    still runs there. `by` names who gave up on it, for the log."""
    if not store.finalize(row.key, verdict):
        return False
    log.warning(
        "%s failed execution %s of tenant %s: %s",
        by,
        row.execution_id,
        row.tenant,
        verdict.error_message,
        extra=execution_fields(row.execution_id, row.tenant, verdict),
    )
    if stop_on_spawner and row.spawner:
        pool.cancel(row.spawner, row.key, row.tenant)
    return True
