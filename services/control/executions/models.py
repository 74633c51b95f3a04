"""Tables of executions (revisions 0001, 0002, 0103 to 0107) and the values the
execution store takes and returns. The tenants' quota row is
services/control/quotas/models.py.

The schema itself is created and upgraded by the alembic migrations in
services/control/migrations/versions; a unit test keeps the two identical.
"""

from __future__ import annotations

import dataclasses
import enum

from sqlalchemy import BigInteger, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

# Statuses as stored (lower-case names of common.v1.ExecutionStatus).
QUEUED, INSTALLING, RUNNING = "queued", "installing", "running"
COMPLETED, FAILED, CANCELLED = "completed", "failed", "cancelled"


class ExecutionRow(SQLModel, table=True):
    __tablename__ = "executions"
    __table_args__ = (
        UniqueConstraint("tenant", "execution_id", name="uq_executions_tenant_execution_id"),
        Index("ix_executions_tenant_created", "tenant", "created_at_ms", "key"),
        Index("ix_executions_tenant_group", "tenant", "group_id"),
        # Added by revision 0107: the calls of a session.
        Index("ix_executions_tenant_session", "tenant", "session_id"),
        Index("ix_executions_status_heartbeat", "status", "heartbeat_at_ms"),
        # Added by revision 0103: the counts of admission and of the fair
        # share, and the retention sweeper's scan.
        Index("ix_executions_tenant_status", "tenant", "status"),
        Index("ix_executions_finished", "finished_at_ms"),
    )

    # Control's own id: unique across tenants, the id the spawner sees.
    key: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(max_length=64)
    execution_id: str = Field(max_length=64)  # the caller's id, unique per tenant
    group_id: str = Field(default="", max_length=64)  # the caller's label (revision 0107 renamed it)
    language: int
    status: str = Field(max_length=16)
    error_code: str = Field(default="", max_length=32)
    error_message: str = ""
    exit_code: int = -1
    timeout_ms: int
    # Pre-debited CPU seconds and the quota day it was debited on.
    cpu_debit: float
    debit_day: str = Field(max_length=10)
    spawner: str = Field(default="", max_length=255)
    usage_json: str = "{}"
    steps_json: str = "[]"
    dropped_json: str = "[]"
    created_at_ms: int = Field(sa_type=BigInteger)
    started_at_ms: int = Field(default=0, sa_type=BigInteger)
    finished_at_ms: int = Field(default=0, sa_type=BigInteger)
    heartbeat_at_ms: int = Field(sa_type=BigInteger)
    # Added by revision 0002.
    stdout_preview: bytes = Field(default=b"", sa_type=LargeBinary)
    stderr_preview: bytes = Field(default=b"", sa_type=LargeBinary)
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    # Added by revision 0103: the slot-time pre-debit (the requested
    # timeout) and when the execution took a slot of the mesh (0: waiting).
    slot_debit: float = 0.0
    slot_at_ms: int = Field(default=0, sa_type=BigInteger)
    # Added by revision 0104: the image variant asked for ("" standard).
    variant: str = Field(default="", max_length=32)
    # Added by revision 0105: the sandbox runtime it was given ("runc",
    # "gvisor"; "" before the revision).
    runtime: str = Field(default="", max_length=16)
    # Added by revision 0106: the control replica that admitted it, and that
    # process's incarnation (ownership.py); "" before the revision.
    replica: str = Field(default="", max_length=64)
    incarnation: str = Field(default="", max_length=32)

    # Added by revision 0107: the session this execution is a call of ("" none).
    session_id: str = Field(default="", max_length=64)


class ReplicaLeaseRow(SQLModel, table=True):
    """A control replica's lease on the executions it admitted (revision
    0106): renewed while the replica lives, by its current incarnation."""

    __tablename__ = "replica_leases"

    replica: str = Field(primary_key=True, max_length=64)
    incarnation: str = Field(max_length=32)
    until_ms: int = Field(sa_type=BigInteger)


class OutputFileRow(SQLModel, table=True):
    """An output file of an execution; its bytes are the blob `sha256`."""

    __tablename__ = "output_files"
    __table_args__ = (UniqueConstraint("execution_key", "path", name="uq_output_files_execution_path"),)

    id: int | None = Field(default=None, primary_key=True)
    execution_key: str = Field(foreign_key="executions.key", max_length=64, index=True)
    path: str = Field(max_length=1024)
    size: int = Field(sa_type=BigInteger)
    sha256: str = Field(max_length=64, index=True)


@dataclasses.dataclass(frozen=True)
class StoredFile:
    """An output file as recorded: its bytes are the blob `sha256`."""

    path: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What a terminal transition records."""

    status: str
    error_code: str = ""
    error_message: str = ""
    exit_code: int = -1
    # Measured CPU; None settles the quota at the pre-debit (nothing measured).
    cpu_seconds: float | None = None
    usage_json: str | None = None
    steps_json: str | None = None
    dropped_json: str | None = None
    stdout_preview: bytes | None = None
    stderr_preview: bytes | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False


@dataclasses.dataclass(frozen=True)
class Previews:
    """The first bytes of stdout and stderr, and whether more was cut off."""

    stdout: bytes
    stdout_truncated: bool
    stderr: bytes
    stderr_truncated: bool


class Claim(enum.Enum):
    """What asking the database for one of the tenant's slots came to."""

    CLAIMED = "claimed"
    # The tenant already holds its share (counted across control replicas).
    SHARE_FULL = "share_full"
    # The execution has its verdict (or is gone): nothing to start.
    ENDED = "ended"
