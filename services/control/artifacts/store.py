"""The artifact store: reads and writes of artifacts and their files over a
SQLModel Session; one call is one logical operation inside the caller's
transaction (the service opens it).

Every write starts with `bump_revision`: a conditional
`UPDATE artifacts SET revision = revision + 1 WHERE id = ? AND tenant = ? AND
revision = <expected>`. Of several writers naming the same revision exactly
one updates a row; the others update none and fail with StaleRevision. On
PostgreSQL the UPDATE also locks the row until commit (a concurrent writer
waits, then re-checks the WHERE against the committed revision); on SQLite
write transactions are `BEGIN IMMEDIATE` and so run one at a time. Whatever
the write then finds wrong (a missing path, a cap) raises, and the whole
transaction, bump included, rolls back.

Writes that add or remove artifacts or bytes of artifact files count them in
the tenant's quota row in the same transaction (quotas/ledger.py), after the
revision check; over the tenant's storage quota they raise QuotaExceeded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlmodel import Session, col, select

from services.common.contract.languages import LANGUAGES
from services.common.contract.paths import path_key
from services.control.artifacts.models import ArtifactFileRow, ArtifactRow, ArtifactView, FileView, PackageSpec
from services.control.artifacts.rules import (
    check_totals,
    colliding_path,
    collision_message,
    merge_packages,
    new_artifact_id,
)
from services.control.config import ArtifactLimits, QuotaLimits
from services.control.db import rows_changed
from services.control.errors import AlreadyExists, FailedPrecondition, LimitExceeded, NotFound, StaleRevision
from services.control.pagination import PageRequest, Position, cut, newest_first
from services.control.quotas import ledger


def packages_of(row: ArtifactRow) -> tuple[PackageSpec, ...]:
    return tuple(PackageSpec(p["name"], p.get("version", "")) for p in json.loads(row.packages_json))


def _packages_json(packages: Iterable[PackageSpec]) -> str:
    return json.dumps([{"name": p.name, "version": p.version} for p in packages])


def file_index(session: Session, artifact_id: str) -> list[FileView]:
    """The artifact's files without their contents, sorted by path."""
    rows = session.execute(
        sa.select(
            col(ArtifactFileRow.path),
            col(ArtifactFileRow.size),
            col(ArtifactFileRow.sha256),
            col(ArtifactFileRow.modified_revision),
        )
        .where(col(ArtifactFileRow.artifact_id) == artifact_id)
        .order_by(ArtifactFileRow.path)
    ).all()
    return [FileView(*row) for row in rows]


def _stats(session: Session, artifact_id: str) -> tuple[int, int]:
    """(file count, total bytes)."""
    count, total = session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(ArtifactFileRow.size), 0)).where(
            col(ArtifactFileRow.artifact_id) == artifact_id
        )
    ).one()
    return int(count), int(total)


def _view(row: ArtifactRow, stats: tuple[int, int]) -> ArtifactView:
    return ArtifactView(
        artifact_id=row.id,
        language=row.language,
        title=row.title,
        entry=row.entry,
        packages=packages_of(row),
        revision=row.revision,
        created_at_ms=row.created_at_ms,
        updated_at_ms=row.updated_at_ms,
        file_count=stats[0],
        total_bytes=stats[1],
    )


def _view_of(session: Session, row: ArtifactRow) -> ArtifactView:
    session.flush()
    return _view(row, _stats(session, row.id))


def load_artifact(session: Session, tenant: str, artifact_id: str, *, lock: bool = False) -> ArtifactRow:
    query = select(ArtifactRow).where(ArtifactRow.id == artifact_id, ArtifactRow.tenant == tenant)
    if lock:
        # PostgreSQL: FOR SHARE waits for a writer holding the row and keeps
        # writers out until this transaction ends, so what follows reads one
        # revision. SQLite reads a snapshot anyway (and ignores the clause).
        query = query.with_for_update(read=True)
    row = session.exec(query).one_or_none()
    if row is None:
        # Also for another tenant's artifact: existence is not disclosed.
        raise NotFound(f"artifact_id: artifact {artifact_id!r} not found")
    return row


def bump_revision(session: Session, tenant: str, artifact_id: str, expected: int, now_ms: int) -> ArtifactRow:
    """The revision check of every write: one conditional UPDATE. Returns the
    row at its new revision (expected + 1)."""
    changed = rows_changed(
        session,
        sa.update(ArtifactRow)
        .where(
            col(ArtifactRow.id) == artifact_id,
            col(ArtifactRow.tenant) == tenant,
            col(ArtifactRow.revision) == expected,
        )
        .values(revision=ArtifactRow.revision + 1, updated_at_ms=now_ms)
        .execution_options(synchronize_session=False),
    )
    row = load_artifact(session, tenant, artifact_id)
    if changed != 1:
        raise StaleRevision(artifact_id, expected, row.revision)
    return row


def create_artifact(
    session: Session,
    quota: QuotaLimits,
    tenant: str,
    language: int,
    title: str,
    entry: str,
    packages: Sequence[PackageSpec],
    now_ms: int,
    artifact_id: str | None = None,
) -> ArtifactView:
    ledger.charge_artifacts(session, tenant, quota, ledger.utc_day(now_ms), artifacts=1)
    row = ArtifactRow(
        id=artifact_id or new_artifact_id(),
        tenant=tenant,
        language=language,
        title=title,
        entry=entry,
        packages_json=_packages_json(packages),
        revision=1,
        created_at_ms=now_ms,
        updated_at_ms=now_ms,
    )
    session.add(row)
    return _view_of(session, row)


def get_artifact(session: Session, tenant: str, artifact_id: str) -> ArtifactView:
    return _view_of(session, load_artifact(session, tenant, artifact_id, lock=True))


def list_artifacts(session: Session, tenant: str, page: PageRequest) -> tuple[list[ArtifactView], str]:
    """A page, newest first, and the token of the next one ("" on the last)."""
    # Counts as correlated subqueries: one statement, so one snapshot, also
    # under PostgreSQL's READ COMMITTED.
    count = (
        sa.select(sa.func.count())
        .where(col(ArtifactFileRow.artifact_id) == col(ArtifactRow.id))
        .correlate(ArtifactRow)
        .scalar_subquery()
    )
    total = (
        sa.select(sa.func.coalesce(sa.func.sum(ArtifactFileRow.size), 0))
        .where(col(ArtifactFileRow.artifact_id) == col(ArtifactRow.id))
        .correlate(ArtifactRow)
        .scalar_subquery()
    )
    query = sa.select(ArtifactRow, count, total).where(col(ArtifactRow.tenant) == tenant)
    query = newest_first(query, ArtifactRow.created_at_ms, ArtifactRow.id, page)
    rows, token = cut(session.execute(query).all(), page, lambda found: Position(found[0].created_at_ms, found[0].id))
    return [_view(row, (int(files), int(size_sum))) for row, files, size_sum in rows], token


def update_artifact(
    session: Session,
    tenant: str,
    artifact_id: str,
    expected: int,
    now_ms: int,
    *,
    title: str | None = None,
    entry: str | None = None,
) -> ArtifactView:
    row = bump_revision(session, tenant, artifact_id, expected, now_ms)
    if title is not None:
        row.title = title
    if entry is not None:
        if entry and entry not in {f.path for f in file_index(session, artifact_id)}:
            raise FailedPrecondition("entry", f"no file {entry!r} in the artifact; create it first")
        row.entry = entry
    session.add(row)
    return _view_of(session, row)


def _file_row(session: Session, artifact_id: str, path: str, field: str = "path") -> ArtifactFileRow:
    row = session.get(ArtifactFileRow, (artifact_id, path))
    if row is None:
        raise NotFound(f"{field}: no file {path!r} in artifact {artifact_id!r}")
    return row


def _file_view(row: ArtifactFileRow) -> FileView:
    return FileView(row.path, row.size, row.sha256, row.modified_revision)


def _check_totals_after(
    limits: ArtifactLimits, artifact_id: str, files: list[FileView], *, add: int, remove: str | None
) -> None:
    """The caps once `remove` (an updated file's old version) is replaced
    by, or a new file adds, `add` bytes."""
    kept = [f for f in files if f.path != remove]
    check_totals(limits, artifact_id, len(kept) + 1, sum(f.size for f in kept) + add)


@dataclasses.dataclass(frozen=True)
class FileWrite:
    """A new file, or new content for a file, at the revision the writer expects."""

    tenant: str
    artifact_id: str
    expected: int
    path: str
    content: bytes
    now_ms: int


def create_file(
    session: Session, limits: ArtifactLimits, quota: QuotaLimits, write: FileWrite
) -> tuple[ArtifactView, FileView]:
    row = bump_revision(session, write.tenant, write.artifact_id, write.expected, write.now_ms)
    files = file_index(session, write.artifact_id)
    other = colliding_path((f.path for f in files), write.path)
    if other is not None:
        raise AlreadyExists(collision_message("path", write.path, other))
    _check_totals_after(limits, write.artifact_id, files, add=len(write.content), remove=None)
    ledger.charge_artifacts(
        session, write.tenant, quota, ledger.utc_day(write.now_ms), artifact_bytes=len(write.content)
    )
    stored = ArtifactFileRow(
        artifact_id=write.artifact_id,
        path=write.path,
        path_key=path_key(write.path),
        content=write.content,
        size=len(write.content),
        sha256=hashlib.sha256(write.content).hexdigest(),
        modified_revision=row.revision,
    )
    session.add(stored)
    return _view_of(session, row), _file_view(stored)


def update_file(
    session: Session, limits: ArtifactLimits, quota: QuotaLimits, write: FileWrite
) -> tuple[ArtifactView, FileView]:
    row = bump_revision(session, write.tenant, write.artifact_id, write.expected, write.now_ms)
    stored = _file_row(session, write.artifact_id, write.path)
    _check_totals_after(
        limits, write.artifact_id, file_index(session, write.artifact_id), add=len(write.content), remove=write.path
    )
    growth = len(write.content) - stored.size
    ledger.charge_artifacts(session, write.tenant, quota, ledger.utc_day(write.now_ms), artifact_bytes=growth)
    stored.content = write.content
    stored.size = len(write.content)
    stored.sha256 = hashlib.sha256(write.content).hexdigest()
    stored.modified_revision = row.revision
    session.add(stored)
    return _view_of(session, row), _file_view(stored)


def delete_file(
    session: Session, tenant: str, artifact_id: str, expected: int, path: str, now_ms: int
) -> tuple[ArtifactView, FileView]:
    row = bump_revision(session, tenant, artifact_id, expected, now_ms)
    stored = _file_row(session, artifact_id, path)
    if row.entry == path:
        raise FailedPrecondition(
            "path", f"{path!r} is the artifact's entry file; set another entry (UpdateArtifact) or rename it"
        )
    view = _file_view(stored)
    session.delete(stored)
    ledger.credit_artifacts(session, tenant, ledger.utc_day(now_ms), artifact_bytes=stored.size)
    return _view_of(session, row), view


def rename_file(
    session: Session, tenant: str, artifact_id: str, expected: int, path: str, new_path: str, now_ms: int
) -> tuple[ArtifactView, FileView]:
    row = bump_revision(session, tenant, artifact_id, expected, now_ms)
    stored = _file_row(session, artifact_id, path)
    other = colliding_path((f.path for f in file_index(session, artifact_id)), new_path, ignore=path)
    if other is not None:
        raise AlreadyExists(collision_message("new_path", new_path, other))
    view = FileView(new_path, stored.size, stored.sha256, row.revision)
    session.expunge(stored)
    session.execute(
        sa.update(ArtifactFileRow)
        .where(col(ArtifactFileRow.artifact_id) == artifact_id, col(ArtifactFileRow.path) == path)
        .values(path=new_path, path_key=path_key(new_path), modified_revision=row.revision)
        .execution_options(synchronize_session=False)
    )
    if row.entry == path:
        row.entry = new_path  # the entry follows the file
        session.add(row)
    return _view_of(session, row), view


def read_file(session: Session, tenant: str, artifact_id: str, path: str) -> tuple[FileView, bytes, int]:
    row = load_artifact(session, tenant, artifact_id, lock=True)
    stored = _file_row(session, artifact_id, path)
    return _file_view(stored), bytes(stored.content), row.revision


def list_files(session: Session, tenant: str, artifact_id: str) -> tuple[int, str, list[FileView]]:
    """(revision, entry, files) as of one revision."""
    row = load_artifact(session, tenant, artifact_id, lock=True)
    return row.revision, row.entry, file_index(session, artifact_id)


def add_packages(
    session: Session,
    limits: ArtifactLimits,
    tenant: str,
    artifact_id: str,
    expected: int,
    packages: Sequence[PackageSpec],
    now_ms: int,
) -> ArtifactView:
    row = bump_revision(session, tenant, artifact_id, expected, now_ms)
    language = LANGUAGES[row.language]
    merged = merge_packages(language, packages_of(row), packages)
    if len(merged) > limits.max_packages:
        raise LimitExceeded(
            f"artifact:{artifact_id}/packages", f"an artifact lists at most {limits.max_packages} packages"
        )
    row.packages_json = _packages_json(merged)
    session.add(row)
    return _view_of(session, row)


def files_with_contents(session: Session, artifact_id: str) -> list[ArtifactFileRow]:
    """The artifact's files with their contents, sorted by path."""
    return list(
        session.exec(
            select(ArtifactFileRow).where(ArtifactFileRow.artifact_id == artifact_id).order_by(ArtifactFileRow.path)
        )
    )
