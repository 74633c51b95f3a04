"""The SQL of the tenant's quota row, inside the caller's transaction.

Every write that a quota limits starts by locking the tenant's row (`lock`):
on PostgreSQL `SELECT ... FOR UPDATE` (after an `INSERT ... ON CONFLICT DO
NOTHING` when the tenant has no row yet); on SQLite the transaction already
holds the database write lock (`BEGIN IMMEDIATE`). Checks and changes of the
row (`save`) then cannot interleave with another writer's. Writers that also change an execution row lock the
tenant's row first, so two of them never wait on each other in opposite
order.
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from services.control.config import QuotaLimits
from services.control.quotas import accounting
from services.control.quotas.models import Stored, TenantQuota

MS_PER_SECOND = 1000
# A new row: nothing debited, nothing stored.
ZEROS = dict(
    cpu_seconds_debited=0.0,
    slot_seconds_debited=0.0,
    stored_executions=0,
    stored_output_bytes=0,
    stored_artifacts=0,
    stored_artifact_bytes=0,
)


def utc_day(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / MS_PER_SECOND, datetime.UTC).strftime("%Y-%m-%d")


# Built once: SQLAlchemy finds their compiled form in its cache by the
# statement itself, without building a cache key per call (the ORM's
# per-call statement building was most of an admission's time).
_TABLE = TenantQuota.metadata.tables[TenantQuota.__tablename__]
_COLUMNS = [_TABLE.c[name] for name in ("tenant", "day", *ZEROS)]
_SELECT_LOCKED = sa.select(*_COLUMNS).where(_TABLE.c.tenant == sa.bindparam("b_tenant")).with_for_update()
_CREATE = {
    "postgresql": postgresql.insert(_TABLE).on_conflict_do_nothing(index_elements=["tenant"]),
    "sqlite": sqlite.insert(_TABLE).on_conflict_do_nothing(index_elements=["tenant"]),
}
_SAVE = sa.update(_TABLE).where(_TABLE.c.tenant == sa.bindparam("b_tenant"))


def lock(session: Session, tenant: str, today: str) -> TenantQuota:
    """The tenant's row, created when missing, locked until the transaction
    ends; on a new day its daily debits start again from zero. The row
    returned is a copy outside the session: changes to it are written by
    `save`."""
    connection = session.connection()
    found = connection.execute(_SELECT_LOCKED, {"b_tenant": tenant}).first()
    if found is None:
        connection.execute(_CREATE[connection.dialect.name], {"tenant": tenant, "day": today, **ZEROS})
        found = connection.execute(_SELECT_LOCKED, {"b_tenant": tenant}).one()
    quota = TenantQuota(**found._asdict())
    if quota.day != today:
        quota.day = today
        quota.cpu_seconds_debited = 0.0
        quota.slot_seconds_debited = 0.0
    return quota


def save(session: Session, quota: TenantQuota) -> None:
    """Writes back a row `lock` returned (in the same transaction, still locked)."""
    values = {name: getattr(quota, name) for name in ("day", *ZEROS)}
    session.connection().execute(_SAVE, {"b_tenant": quota.tenant, **values})


def read(session: Session, tenant: str) -> TenantQuota | None:
    return session.get(TenantQuota, tenant)


def charge_artifacts(
    session: Session, tenant: str, limits: QuotaLimits, today: str, *, artifacts: int = 0, artifact_bytes: int = 0
) -> None:
    """Counts new artifacts and bytes of artifact files in (a file that
    shrinks: negative bytes); raises QuotaExceeded, before changing anything,
    when growth would pass the tenant's storage quota."""
    quota = lock(session, tenant, today)
    accounting.check_artifact_storage(
        tenant, limits, Stored.of(quota), artifacts=artifacts, artifact_bytes=artifact_bytes
    )
    quota.stored_artifacts += artifacts
    quota.stored_artifact_bytes += artifact_bytes
    save(session, quota)


def credit_artifacts(session: Session, tenant: str, today: str, *, artifacts: int = 0, artifact_bytes: int = 0) -> None:
    """Counts removed artifacts and bytes of artifact files out."""
    quota = lock(session, tenant, today)
    quota.stored_artifacts -= artifacts
    quota.stored_artifact_bytes -= artifact_bytes
    save(session, quota)
