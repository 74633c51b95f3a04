"""Runnable artifacts: the rules, and the reads and writes over a Session.

Three layers, each testable on its own:

- pure rules (`check_*`, `merge_packages`, `colliding_path`):
  no database, they judge a request or compute a new state;
- functions over a SQLModel Session (`create_artifact`, `create_file`, ...):
  one call is one logical operation inside the caller's transaction;
- `Artifacts`, which validates a request, opens the transaction
  (services.control.db.Database) and calls one of those functions.

Every write starts with `bump_revision`: a conditional
`UPDATE artifacts SET revision = revision + 1 WHERE id = ? AND tenant = ? AND
revision = <expected>`. Of several writers naming the same revision exactly
one updates a row; the others update none and fail with StaleRevision. On
PostgreSQL the UPDATE also locks the row until commit (a concurrent writer
waits, then re-checks the WHERE against the committed revision); on SQLite
write transactions are `BEGIN IMMEDIATE` and so run one at a time. Whatever
the write then finds wrong (a missing path, a cap) raises, and the whole
transaction, bump included, rolls back.

Order of checks: the request itself (INVALID_ARGUMENT), then the artifact
(NOT_FOUND, also for another tenant's), then the revision (ABORTED), then
the artifact's state (NOT_FOUND / ALREADY_EXISTS for paths,
FAILED_PRECONDITION, RESOURCE_EXHAUSTED for caps).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence

import sqlalchemy as sa
from sqlmodel import Session, select

from services.control.artifact_models import ArtifactFileRow, ArtifactRow
from services.control.config import ArtifactLimits
from services.control.db import Database
from services.control.pagination import PageRequest, Position, cut, newest_first
from services.control.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LimitExceeded,
    NotFound,
    StaleRevision,
)
from services.spawner import packages as package_rules
from services.spawner.paths import check_path as path_refusal
from services.spawner.paths import find_collisions, path_key
from services.spawner.validation import ID_RE, LANGUAGES

MAX_TITLE_CHARS = 200
# Artifacts per ListArtifacts page, and runs per ListRuns page (artifacts.proto).
MAX_PAGE_SIZE = 200


@dataclasses.dataclass(frozen=True)
class PackageSpec:
    name: str
    version: str = ""


@dataclasses.dataclass(frozen=True)
class ArtifactView:
    artifact_id: str
    language: int
    title: str
    entry: str
    packages: tuple[PackageSpec, ...]
    revision: int
    created_at_ms: int
    updated_at_ms: int
    file_count: int
    total_bytes: int


@dataclasses.dataclass(frozen=True)
class FileView:
    path: str
    size: int
    sha256: str
    modified_revision: int


# ---- pure rules --------------------------------------------------------------


def check_artifact_id(value: str, field: str = "artifact_id") -> str:
    if not value:
        raise InvalidArgument(field, "required")
    if not ID_RE.match(value):
        raise InvalidArgument(field, "must match [A-Za-z0-9_-]{1,64}")
    return value


def check_expected_revision(value: int) -> int:
    if value <= 0:
        raise InvalidArgument("expected_revision", "required: the revision this write is based on (revisions start at 1)")
    return value


def check_language(value: int) -> str:
    name = LANGUAGES.get(value)
    if name is None:
        raise InvalidArgument("language", "must be LANGUAGE_PYTHON or LANGUAGE_NODE")
    return name


def check_title(title: str) -> str:
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidArgument("title", f"must be at most {MAX_TITLE_CHARS} characters")
    for ch in title:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            raise InvalidArgument("title", "must be one line of visible text (no control or format characters)")
    return title


def check_path(field: str, path: str, limits: ArtifactLimits) -> str:
    """Every path rule of DESIGN.md for one path; collisions need the
    artifact's other files (`colliding_path`)."""
    reason = path_refusal(path, max_length=limits.max_path_length)
    if reason:
        raise InvalidArgument(field, reason)
    return path


def check_content(field: str, content: bytes, limits: ArtifactLimits) -> bytes:
    if len(content) > limits.max_file_bytes:
        raise InvalidArgument(field, f"must be at most {limits.max_file_bytes} bytes")
    return bytes(content)


def package_key(language: str, name: str) -> str:
    """The name two packages are the same package under: for Python the
    normalized project name (PEP 503) without extras, for npm the name."""
    if language == "python":
        return re.sub(r"[-_.]+", "-", name.split("[", 1)[0]).lower()
    return name


def check_packages(
    language: str, packages: Sequence, limits: ArtifactLimits, *, required: bool = False
) -> tuple[PackageSpec, ...]:
    """`packages` are objects with `name` and `version` (common.v1.Package)."""
    if required and not packages:
        raise InvalidArgument("packages", "at least one package is required")
    if len(packages) > limits.max_packages:
        raise InvalidArgument("packages", f"at most {limits.max_packages} packages")
    seen: set[str] = set()
    result = []
    for index, package in enumerate(packages):
        refusal = package_rules.check(language, package.name, package.version)
        if refusal:
            bad_name = package_rules.check(language, package.name, "") is not None
            raise InvalidArgument(f"packages[{index}].{'name' if bad_name else 'version'}", refusal)
        key = package_key(language, package.name)
        if key in seen:
            raise InvalidArgument(f"packages[{index}].name", f"{package.name!r} is listed twice")
        seen.add(key)
        result.append(PackageSpec(package.name, package.version))
    return tuple(result)


def merge_packages(
    language: str, current: Sequence[PackageSpec], added: Sequence[PackageSpec]
) -> tuple[PackageSpec, ...]:
    """The union: a package already listed under the same key is replaced in
    place by the added one (its version specifier wins); others are appended
    in the order given."""
    merged = list(current)
    position = {package_key(language, p.name): i for i, p in enumerate(merged)}
    for package in added:
        key = package_key(language, package.name)
        if key in position:
            merged[position[key]] = package
        else:
            position[key] = len(merged)
            merged.append(package)
    return tuple(merged)


def colliding_path(existing: Iterable[str], path: str, *, ignore: str | None = None) -> str | None:
    """The existing path that `path` cannot live next to: the same path, the
    same but for case or Unicode form, or one that would make either of the
    two both a file and a directory. `ignore` (a rename's source) is left out."""
    others = [p for p in existing if p != ignore]
    for earlier, later in find_collisions([*others, path]):
        if later == path and earlier in others:
            return earlier
    return None


def collision_message(field: str, path: str, other: str) -> str:
    if other == path:
        return f"{field}: {path!r} already exists"
    if path_key(other) == path_key(path):
        return f"{field}: {path!r} collides with existing {other!r} (paths must differ in more than case or Unicode form)"
    return f"{field}: {path!r} collides with existing {other!r} (one would be both a file and a directory)"


def check_totals(limits: ArtifactLimits, artifact_id: str, file_count: int, total_bytes: int) -> None:
    if file_count > limits.max_files:
        raise LimitExceeded(f"artifact:{artifact_id}/files", f"an artifact holds at most {limits.max_files} files")
    if total_bytes > limits.max_total_bytes:
        raise LimitExceeded(
            f"artifact:{artifact_id}/total_bytes",
            f"an artifact's files total at most {limits.max_total_bytes} bytes",
        )


def new_artifact_id() -> str:
    return "art_" + secrets.token_hex(10)


# ---- over a Session ------------------------------------------------------------


def _packages_of(row: ArtifactRow) -> tuple[PackageSpec, ...]:
    return tuple(PackageSpec(p["name"], p.get("version", "")) for p in json.loads(row.packages_json))


def _packages_json(packages: Iterable[PackageSpec]) -> str:
    return json.dumps([{"name": p.name, "version": p.version} for p in packages])


def _file_index(session: Session, artifact_id: str) -> list[FileView]:
    """The artifact's files without their contents, sorted by path."""
    rows = session.execute(
        sa.select(
            ArtifactFileRow.path, ArtifactFileRow.size, ArtifactFileRow.sha256, ArtifactFileRow.modified_revision
        )
        .where(ArtifactFileRow.artifact_id == artifact_id)
        .order_by(ArtifactFileRow.path)
    ).all()
    return [FileView(*row) for row in rows]


def _stats(session: Session, artifact_id: str) -> tuple[int, int]:
    """(file count, total bytes)."""
    count, total = session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(ArtifactFileRow.size), 0)).where(
            ArtifactFileRow.artifact_id == artifact_id
        )
    ).one()
    return int(count), int(total)


def _view(row: ArtifactRow, stats: tuple[int, int]) -> ArtifactView:
    return ArtifactView(
        artifact_id=row.id,
        language=row.language,
        title=row.title,
        entry=row.entry,
        packages=_packages_of(row),
        revision=row.revision,
        created_at_ms=row.created_at_ms,
        updated_at_ms=row.updated_at_ms,
        file_count=stats[0],
        total_bytes=stats[1],
    )


def _view_of(session: Session, row: ArtifactRow) -> ArtifactView:
    session.flush()
    return _view(row, _stats(session, row.id))


def _load(session: Session, tenant: str, artifact_id: str, *, lock: bool = False) -> ArtifactRow:
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
    result = session.execute(
        sa.update(ArtifactRow)
        .where(ArtifactRow.id == artifact_id, ArtifactRow.tenant == tenant, ArtifactRow.revision == expected)
        .values(revision=ArtifactRow.revision + 1, updated_at_ms=now_ms)
        .execution_options(synchronize_session=False)
    )
    row = _load(session, tenant, artifact_id)
    if result.rowcount != 1:
        raise StaleRevision(artifact_id, expected, row.revision)
    return row


def create_artifact(
    session: Session,
    tenant: str,
    language: int,
    title: str,
    entry: str,
    packages: Sequence[PackageSpec],
    now_ms: int,
    artifact_id: str | None = None,
) -> ArtifactView:
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
    return _view_of(session, _load(session, tenant, artifact_id, lock=True))


def list_artifacts(session: Session, tenant: str, page: PageRequest) -> tuple[list[ArtifactView], str]:
    """A page, newest first, and the token of the next one ("" on the last)."""
    # Counts as correlated subqueries: one statement, so one snapshot, also
    # under PostgreSQL's READ COMMITTED.
    count = (
        sa.select(sa.func.count())
        .where(ArtifactFileRow.artifact_id == ArtifactRow.id)
        .correlate(ArtifactRow)
        .scalar_subquery()
    )
    total = (
        sa.select(sa.func.coalesce(sa.func.sum(ArtifactFileRow.size), 0))
        .where(ArtifactFileRow.artifact_id == ArtifactRow.id)
        .correlate(ArtifactRow)
        .scalar_subquery()
    )
    query = sa.select(ArtifactRow, count, total).where(ArtifactRow.tenant == tenant)
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
        if entry and entry not in {f.path for f in _file_index(session, artifact_id)}:
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


def create_file(
    session: Session, limits: ArtifactLimits, tenant: str, artifact_id: str, expected: int,
    path: str, content: bytes, now_ms: int,
) -> tuple[ArtifactView, FileView]:
    row = bump_revision(session, tenant, artifact_id, expected, now_ms)
    files = _file_index(session, artifact_id)
    other = colliding_path((f.path for f in files), path)
    if other is not None:
        raise AlreadyExists(collision_message("path", path, other))
    _check_totals_after(limits, artifact_id, files, add=len(content), remove=None)
    stored = ArtifactFileRow(
        artifact_id=artifact_id,
        path=path,
        path_key=path_key(path),
        content=content,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        modified_revision=row.revision,
    )
    session.add(stored)
    return _view_of(session, row), _file_view(stored)


def update_file(
    session: Session, limits: ArtifactLimits, tenant: str, artifact_id: str, expected: int,
    path: str, content: bytes, now_ms: int,
) -> tuple[ArtifactView, FileView]:
    row = bump_revision(session, tenant, artifact_id, expected, now_ms)
    stored = _file_row(session, artifact_id, path)
    _check_totals_after(limits, artifact_id, _file_index(session, artifact_id), add=len(content), remove=path)
    stored.content = content
    stored.size = len(content)
    stored.sha256 = hashlib.sha256(content).hexdigest()
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
    return _view_of(session, row), view


def rename_file(
    session: Session, tenant: str, artifact_id: str, expected: int, path: str, new_path: str, now_ms: int
) -> tuple[ArtifactView, FileView]:
    row = bump_revision(session, tenant, artifact_id, expected, now_ms)
    stored = _file_row(session, artifact_id, path)
    other = colliding_path((f.path for f in _file_index(session, artifact_id)), new_path, ignore=path)
    if other is not None:
        raise AlreadyExists(collision_message("new_path", new_path, other))
    view = FileView(new_path, stored.size, stored.sha256, row.revision)
    session.expunge(stored)
    session.execute(
        sa.update(ArtifactFileRow)
        .where(ArtifactFileRow.artifact_id == artifact_id, ArtifactFileRow.path == path)
        .values(path=new_path, path_key=path_key(new_path), modified_revision=row.revision)
        .execution_options(synchronize_session=False)
    )
    if row.entry == path:
        row.entry = new_path  # the entry follows the file
        session.add(row)
    return _view_of(session, row), view


def read_file(session: Session, tenant: str, artifact_id: str, path: str) -> tuple[FileView, bytes, int]:
    row = _load(session, tenant, artifact_id, lock=True)
    stored = _file_row(session, artifact_id, path)
    return _file_view(stored), bytes(stored.content), row.revision


def list_files(session: Session, tenant: str, artifact_id: str) -> tuple[int, str, list[FileView]]:
    """(revision, entry, files) as of one revision."""
    row = _load(session, tenant, artifact_id, lock=True)
    return row.revision, row.entry, _file_index(session, artifact_id)


def add_packages(
    session: Session, limits: ArtifactLimits, tenant: str, artifact_id: str, expected: int,
    packages: Sequence[PackageSpec], now_ms: int,
) -> ArtifactView:
    row = bump_revision(session, tenant, artifact_id, expected, now_ms)
    language = LANGUAGES[row.language]
    merged = merge_packages(language, _packages_of(row), packages)
    if len(merged) > limits.max_packages:
        raise LimitExceeded(f"artifact:{artifact_id}/packages", f"an artifact lists at most {limits.max_packages} packages")
    row.packages_json = _packages_json(merged)
    session.add(row)
    return _view_of(session, row)


# ---- the service's entry points ------------------------------------------------


def _now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


class Artifacts:
    """Validates a request, runs it in one transaction, returns views."""

    def __init__(self, database: Database, limits: ArtifactLimits, clock: Callable[[], float] = time.time):
        self.db = database
        self.limits = limits
        self.clock = clock

    def _write_args(self, artifact_id: str, expected: int) -> None:
        check_artifact_id(artifact_id)
        check_expected_revision(expected)

    def create(self, tenant: str, language: int, title: str, entry: str, packages: Sequence) -> ArtifactView:
        language_name = check_language(language)
        check_title(title)
        if entry:
            check_path("entry", entry, self.limits)
        specs = check_packages(language_name, packages, self.limits)
        with self.db.write() as session:
            return create_artifact(session, tenant, language, title, entry, specs, _now_ms(self.clock))

    def get(self, tenant: str, artifact_id: str) -> ArtifactView:
        check_artifact_id(artifact_id)
        with self.db.read() as session:
            return get_artifact(session, tenant, artifact_id)

    def list(self, tenant: str, page_size: int, page_token: str) -> tuple[list[ArtifactView], str]:
        page = PageRequest.parse(page_size, page_token, max_size=MAX_PAGE_SIZE)
        with self.db.read() as session:
            return list_artifacts(session, tenant, page)

    def update(
        self, tenant: str, artifact_id: str, expected: int, *, title: str | None = None, entry: str | None = None
    ) -> ArtifactView:
        self._write_args(artifact_id, expected)
        if title is not None:
            check_title(title)
        if entry:
            check_path("entry", entry, self.limits)
        with self.db.write() as session:
            return update_artifact(
                session, tenant, artifact_id, expected, _now_ms(self.clock), title=title, entry=entry
            )

    def create_file(self, tenant: str, artifact_id: str, expected: int, path: str, content: bytes):
        self._write_args(artifact_id, expected)
        check_path("path", path, self.limits)
        content = check_content("content", content, self.limits)
        with self.db.write() as session:
            return create_file(session, self.limits, tenant, artifact_id, expected, path, content, _now_ms(self.clock))

    def update_file(self, tenant: str, artifact_id: str, expected: int, path: str, content: bytes):
        self._write_args(artifact_id, expected)
        check_path("path", path, self.limits)
        content = check_content("content", content, self.limits)
        with self.db.write() as session:
            return update_file(session, self.limits, tenant, artifact_id, expected, path, content, _now_ms(self.clock))

    def delete_file(self, tenant: str, artifact_id: str, expected: int, path: str):
        self._write_args(artifact_id, expected)
        check_path("path", path, self.limits)
        with self.db.write() as session:
            return delete_file(session, tenant, artifact_id, expected, path, _now_ms(self.clock))

    def rename_file(self, tenant: str, artifact_id: str, expected: int, path: str, new_path: str):
        self._write_args(artifact_id, expected)
        check_path("path", path, self.limits)
        check_path("new_path", new_path, self.limits)
        if new_path == path:
            raise InvalidArgument("new_path", "must differ from path")
        with self.db.write() as session:
            return rename_file(session, tenant, artifact_id, expected, path, new_path, _now_ms(self.clock))

    def read_file(self, tenant: str, artifact_id: str, path: str) -> tuple[FileView, bytes, int]:
        check_artifact_id(artifact_id)
        check_path("path", path, self.limits)
        with self.db.read() as session:
            return read_file(session, tenant, artifact_id, path)

    def list_files(self, tenant: str, artifact_id: str) -> tuple[int, str, list[FileView]]:
        check_artifact_id(artifact_id)
        with self.db.read() as session:
            return list_files(session, tenant, artifact_id)

    def add_packages(self, tenant: str, artifact_id: str, expected: int, packages: Sequence) -> ArtifactView:
        self._write_args(artifact_id, expected)
        with self.db.read() as session:
            language = LANGUAGES[_load(session, tenant, artifact_id).language]
        # The language never changes, so checking against it before the write
        # transaction is sound.
        specs = check_packages(language, packages, self.limits, required=True)
        with self.db.write() as session:
            return add_packages(session, self.limits, tenant, artifact_id, expected, specs, _now_ms(self.clock))
