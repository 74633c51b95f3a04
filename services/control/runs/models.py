"""SQLModel tables of artifact runs (created by migration 0101; their rows
go with their execution since 0102).

A run is an execution (table `executions`, which holds its status, verdict,
previews and output files) plus one `runs` row written in the same
transaction as the execution's admission, and never changed afterwards:
the artifact, the revision whose files were staged, what was asked to run
and which earlier run's outputs were pre-staged. `run_paths` holds the files
a run started (its entry or the paths of its steps) for "latest run per
file".
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_artifact_created", "artifact_id", "created_at_ms", "id"),)

    # Also the execution's caller-facing id (executions.execution_id).
    id: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(max_length=64)
    artifact_id: str = Field(foreign_key="artifacts.id", max_length=64)
    # Deleting the execution deletes its run (revision 0102).
    execution_key: str = Field(foreign_key="executions.key", ondelete="CASCADE", max_length=64, unique=True)
    revision: int = Field(sa_type=BigInteger)
    path: str = ""  # the entry run; "" when run with steps
    steps_json: str = "[]"  # the requested steps
    inputs_from_run_id: str = Field(default="", max_length=64)
    prestaged_files: int = 0
    prestaged_bytes: int = Field(default=0, sa_type=BigInteger)
    prestage_notice: str = ""
    created_at_ms: int = Field(sa_type=BigInteger)


class RunPathRow(SQLModel, table=True):
    __tablename__ = "run_paths"
    __table_args__ = (Index("ix_run_paths_artifact_path_created", "artifact_id", "path", "created_at_ms"),)

    run_id: str = Field(primary_key=True, foreign_key="runs.id", ondelete="CASCADE", max_length=64)
    path: str = Field(primary_key=True)
    artifact_id: str = Field(max_length=64)
    created_at_ms: int = Field(sa_type=BigInteger)
