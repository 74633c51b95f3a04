"""The SQL of the tenant's quota row, inside the caller's transaction.

Every write that a quota limits starts by locking the tenant's row (`lock`):
on PostgreSQL `SELECT ... FOR UPDATE` after an `INSERT ... ON CONFLICT DO
NOTHING`; on SQLite the transaction already holds the database write lock
(`BEGIN IMMEDIATE`). Checks and changes of the row then cannot interleave
with another writer's. Writers that also change an execution row lock the
tenant's row first, so two of them never wait on each other in opposite
order.
"""

from __future__ import annotations

import datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

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


def lock(session: Session, tenant: str, today: str) -> TenantQuota:
    """The tenant's row, created when missing, locked until the transaction
    ends; on a new day its daily debits start again from zero."""
    table = TenantQuota.metadata.tables[TenantQuota.__tablename__]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    session.execute(insert.values(tenant=tenant, day=today, **ZEROS).on_conflict_do_nothing(index_elements=["tenant"]))
    quota = session.exec(select(TenantQuota).where(TenantQuota.tenant == tenant).with_for_update()).one()
    if quota.day != today:
        quota.day = today
        quota.cpu_seconds_debited = 0.0
        quota.slot_seconds_debited = 0.0
    return quota


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
    session.add(quota)


def credit_artifacts(session: Session, tenant: str, today: str, *, artifacts: int = 0, artifact_bytes: int = 0) -> None:
    """Counts removed artifacts and bytes of artifact files out."""
    quota = lock(session, tenant, today)
    quota.stored_artifacts -= artifacts
    quota.stored_artifact_bytes -= artifact_bytes
    session.add(quota)
