"""The table of sessions (revisions 0107 to 0109). A session's calls are executions
(services/control/executions/models.py, column session_id)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

# Statuses as stored (lower-case names of control.v1.SessionStatus).
OPEN, CLOSED, EXPIRED, FAILED = "open", "closed", "expired", "failed"


class SessionRow(SQLModel, table=True):
    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("tenant", "session_id", name="uq_sessions_tenant_session_id"),
        Index("ix_sessions_tenant_created", "tenant", "created_at_ms", "key"),
        Index("ix_sessions_status_ended", "status", "ended_at_ms"),
    )

    # Control's own id: unique across tenants, the key the spawner sees.
    key: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(max_length=64)
    session_id: str = Field(max_length=64)  # the caller's id, unique per tenant
    language: int
    variant: str = Field(default="", max_length=32)
    status: str = Field(max_length=16)
    end_reason: str = ""
    spawner: str = Field(default="", max_length=255)
    memory_bytes: int = Field(default=0, sa_type=BigInteger)
    cpus: float = 0.0
    timeout_ms: int  # each call's default
    idle_seconds: int
    lifetime_seconds: int
    calls: int = 0
    restarts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # fresh interpreters (0109)
    created_at_ms: int = Field(sa_type=BigInteger)
    last_used_at_ms: int = Field(sa_type=BigInteger)
    ended_at_ms: int = Field(default=0, sa_type=BigInteger)
    # [[name, version], ...] installed at creation (revision 0108).
    packages_json: str = "[]"
