"""The execution store's statements on its hot paths (admission, moves,
verdicts), built once as SQLAlchemy Core.

A statement built per call costs a cache key per call, and the ORM's
unit of work (identity map, flush) costs more than the SQL it runs: they
were most of an admission's time. Built once, each statement finds its
compiled form in SQLAlchemy's cache at the price of a lookup. Values come
in as parameters; the ones of the WHERE clauses are named `b_*`, apart from
the columns that an INSERT or an UPDATE's SET takes from the same
parameters.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from services.control.executions import states
from services.control.executions.models import RUNNING, ExecutionRow, OutputFileRow, StoredFile

EXECUTIONS = ExecutionRow.metadata.tables[ExecutionRow.__tablename__]
OUTPUT_FILES = OutputFileRow.metadata.tables[OutputFileRow.__tablename__]
_LIVE = EXECUTIONS.c.status.in_(sorted(states.NONTERMINAL))
_THIS_TENANT = EXECUTIONS.c.tenant == sa.bindparam("b_tenant")
_THIS_EXECUTION = EXECUTIONS.c.key == sa.bindparam("b_key")

# The caller's id taken already (the unique constraint stays the last word).
DUPLICATE = sa.select(EXECUTIONS.c.key).where(_THIS_TENANT, EXECUTIONS.c.execution_id == sa.bindparam("b_id")).limit(1)
IN_FLIGHT = sa.select(sa.func.count()).select_from(EXECUTIONS).where(_THIS_TENANT, _LIVE)
INSERT = sa.insert(EXECUTIONS)
INSERT_FILE = sa.insert(OUTPUT_FILES)
# An execution's output files, by path (every finished event reads them).
FILES = (
    sa.select(OUTPUT_FILES.c.path, OUTPUT_FILES.c.size, OUTPUT_FILES.c.sha256)
    .where(OUTPUT_FILES.c.execution_key == sa.bindparam("b_key"))
    .order_by(OUTPUT_FILES.c.path)
)
TENANT_AND_STATUS = sa.select(EXECUTIONS.c.tenant, EXECUTIONS.c.status).where(_THIS_EXECUTION)
# The tenant's executions holding a slot of the mesh, through any replica.
SLOTS_HELD = sa.select(sa.func.count()).select_from(EXECUTIONS).where(_THIS_TENANT, _LIVE, EXECUTIONS.c.slot_at_ms > 0)
# Takes a slot for a live execution that holds none yet.
CLAIM_SLOT = sa.update(EXECUTIONS).where(_THIS_EXECUTION, _LIVE, EXECUTIONS.c.slot_at_ms == 0)
# Names the spawner of a live execution; it holds a slot from now on, unless
# a claim already gave it one.
ASSIGN_SPAWNER = (
    sa.update(EXECUTIONS)
    .where(_THIS_EXECUTION, _LIVE)
    .values(slot_at_ms=sa.case((EXECUTIONS.c.slot_at_ms == 0, sa.bindparam("b_now")), else_=EXECUTIONS.c.slot_at_ms))
)
# A move allowed by the transition table: `WHERE status IN sources(target)`.
TRANSITION = sa.update(EXECUTIONS).where(
    _THIS_EXECUTION, EXECUTIONS.c.status.in_(sa.bindparam("b_sources", expanding=True))
)
# The verdict's move, returning what its settlement needs as the update left
# the row (a spawner assigned meanwhile included).
VERDICT = TRANSITION.returning(
    EXECUTIONS.c.debit_day,
    EXECUTIONS.c.cpu_debit,
    EXECUTIONS.c.slot_debit,
    EXECUTIONS.c.slot_at_ms,
    EXECUTIONS.c.spawner,
)


def transition(key: str, target: str, **values: Any) -> dict[str, Any]:
    """The parameters of TRANSITION or VERDICT: moves `key` to `target`,
    setting `values` too, only from a state the table allows."""
    return {"b_key": key, "b_sources": states.sources(target), "status": target, **values}


def start_running(connection: sa.Connection, key: str, spawner: str, now: int) -> bool:
    """Names the spawner and moves `key` to RUNNING in the caller's
    transaction: a session's call, whose sandbox is already running, is
    admitted, assigned and started in one write."""
    connection.execute(ASSIGN_SPAWNER, {"b_key": key, "b_now": now, "spawner": spawner, "heartbeat_at_ms": now})
    moved = connection.execute(TRANSITION, transition(key, RUNNING, heartbeat_at_ms=now, started_at_ms=now))
    return moved.rowcount == 1


def row_values(row: ExecutionRow) -> dict[str, Any]:
    """Every column of a new row, as INSERT takes them."""
    return {column.name: getattr(row, column.name) for column in EXECUTIONS.columns}


def files_of(connection: sa.Connection, key: str) -> list[StoredFile]:
    return [StoredFile(path, size, sha256) for path, size, sha256 in connection.execute(FILES, {"b_key": key})]
