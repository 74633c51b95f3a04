"""The run store: reads and writes of the `runs` and `run_paths` rows over a
SQLModel Session, inside the caller's transaction. A run's status, verdict
and files are its execution's, so reads join the `executions` row."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from services.control.artifacts.models import ArtifactRow
from services.control.executions.models import COMPLETED, ExecutionRow
from services.control.pagination import PageRequest, Position, cut, newest_first
from services.control.runs.models import RunPathRow, RunRow


def add_run(session: Session, run: RunRow, paths: Sequence[str]) -> None:
    """Inserts a run and the paths it started."""
    session.add(run)
    session.flush()
    for path in paths:
        session.add(RunPathRow(run_id=run.id, path=path, artifact_id=run.artifact_id, created_at_ms=run.created_at_ms))


def latest_completed(session: Session, artifact_id: str) -> RunRow | None:
    """The artifact's newest run whose execution completed."""
    return session.exec(
        select(RunRow)
        .join(ExecutionRow, col(ExecutionRow.key) == col(RunRow.execution_key))
        .where(RunRow.artifact_id == artifact_id, ExecutionRow.status == COMPLETED)
        .order_by(col(RunRow.created_at_ms).desc(), col(RunRow.id).desc())
        .limit(1)
    ).first()


def run_of_artifact(session: Session, tenant: str, artifact_id: str, run_id: str) -> tuple[RunRow, str] | None:
    """A run of this tenant's artifact and its execution's status."""
    found = session.exec(
        select(RunRow, ExecutionRow.status)
        .join(ExecutionRow, col(ExecutionRow.key) == col(RunRow.execution_key))
        .where(RunRow.id == run_id, RunRow.tenant == tenant, RunRow.artifact_id == artifact_id)
    ).first()
    return None if found is None else (found[0], found[1])


def run_with_execution(session: Session, tenant: str, run_id: str) -> tuple[RunRow, ExecutionRow, int] | None:
    """A run of this tenant, its execution and its artifact's current revision."""
    found = session.exec(
        select(RunRow, ExecutionRow, ArtifactRow.revision)
        .join(ExecutionRow, col(ExecutionRow.key) == col(RunRow.execution_key))
        .join(ArtifactRow, col(ArtifactRow.id) == col(RunRow.artifact_id))
        .where(RunRow.id == run_id, RunRow.tenant == tenant)
    ).first()
    return None if found is None else (found[0], found[1], found[2])


def list_runs(
    session: Session, tenant: str, artifact_id: str, page: PageRequest
) -> tuple[list[tuple[RunRow, ExecutionRow]], str]:
    """A page of the artifact's runs, newest first, and the next page's token."""
    query = (
        select(RunRow, ExecutionRow)
        .join(ExecutionRow, col(ExecutionRow.key) == col(RunRow.execution_key))
        .where(RunRow.artifact_id == artifact_id, RunRow.tenant == tenant)
    )
    query = newest_first(query, col(RunRow.created_at_ms), col(RunRow.id), page)
    rows, token = cut(list(session.exec(query)), page, lambda found: Position(found[0].created_at_ms, found[0].id))
    return [(run, execution) for run, execution in rows], token


def started_paths(session: Session, artifact_id: str) -> list[str]:
    """Every path some run of the artifact started, sorted."""
    return sorted(session.exec(select(RunPathRow.path).where(RunPathRow.artifact_id == artifact_id).distinct()))


def latest_run_of_path(session: Session, artifact_id: str, path: str) -> tuple[RunRow, ExecutionRow] | None:
    """The newest run of the artifact that started `path`, and its execution."""
    found = session.exec(
        select(RunRow, ExecutionRow)
        .join(RunPathRow, col(RunPathRow.run_id) == col(RunRow.id))
        .join(ExecutionRow, col(ExecutionRow.key) == col(RunRow.execution_key))
        .where(RunPathRow.artifact_id == artifact_id, RunPathRow.path == path)
        .order_by(col(RunPathRow.created_at_ms).desc(), col(RunRow.id).desc())
        .limit(1)
    ).first()
    return None if found is None else (found[0], found[1])
