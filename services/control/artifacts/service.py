"""The artifact service: validates a request (rules.py), runs it in one
transaction over the store (store.py), returns views.

Order of checks: the request itself (INVALID_ARGUMENT), then the artifact
(NOT_FOUND, also for another tenant's), then the revision (ABORTED), then
the artifact's state (NOT_FOUND / ALREADY_EXISTS for paths,
FAILED_PRECONDITION, RESOURCE_EXHAUSTED for the artifact's caps, then for
the tenant's storage quota).
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Sequence

from services.common.contract.languages import LANGUAGES, check_language
from services.control.artifacts import store
from services.control.artifacts.models import ArtifactView, FileView
from services.control.artifacts.rules import (
    check_artifact_id,
    check_content,
    check_expected_revision,
    check_packages,
    check_path,
    check_title,
)
from services.control.config import ArtifactLimits, QuotaLimits, default_quota
from services.control.db import Database
from services.control.errors import InvalidArgument
from services.control.pagination import PageRequest

MS_PER_SECOND = 1000
# Artifacts per ListArtifacts page (artifacts.proto).
MAX_PAGE_SIZE = 200


def _now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * MS_PER_SECOND)


class ArtifactService:
    """Validates a request, runs it in one transaction, returns views."""

    def __init__(
        self,
        database: Database,
        limits: ArtifactLimits,
        clock: Callable[[], float] = time.time,
        quota_for: Callable[[str], QuotaLimits] = default_quota,
    ):
        self.db = database
        self.limits = limits
        self.clock = clock
        # The tenant's quota: how many artifacts and bytes of files it may keep.
        self.quota_for = quota_for

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
            return store.create_artifact(
                session, self.quota_for(tenant), tenant, language, title, entry, specs, _now_ms(self.clock)
            )

    def get(self, tenant: str, artifact_id: str) -> ArtifactView:
        check_artifact_id(artifact_id)
        with self.db.read() as session:
            return store.get_artifact(session, tenant, artifact_id)

    def list(self, tenant: str, page_size: int, page_token: str) -> tuple[list[ArtifactView], str]:
        page = PageRequest.parse(page_size, page_token, max_size=MAX_PAGE_SIZE)
        with self.db.read() as session:
            return store.list_artifacts(session, tenant, page)

    def update(
        self, tenant: str, artifact_id: str, expected: int, *, title: str | None = None, entry: str | None = None
    ) -> ArtifactView:
        self._write_args(artifact_id, expected)
        if title is not None:
            check_title(title)
        if entry:
            check_path("entry", entry, self.limits)
        with self.db.write() as session:
            return store.update_artifact(
                session, tenant, artifact_id, expected, _now_ms(self.clock), title=title, entry=entry
            )

    def create_file(self, tenant: str, artifact_id: str, expected: int, path: str, content: bytes):
        return self._write_file(store.create_file, tenant, artifact_id, expected, path, content)

    def update_file(self, tenant: str, artifact_id: str, expected: int, path: str, content: bytes):
        return self._write_file(store.update_file, tenant, artifact_id, expected, path, content)

    def _write_file(self, write, tenant: str, artifact_id: str, expected: int, path: str, content: bytes):
        """Checks a file write, then `write` (store.create_file or update_file) applies it."""
        self._write_args(artifact_id, expected)
        check_path("path", path, self.limits)
        content = check_content("content", content, self.limits)
        change = store.FileWrite(tenant, artifact_id, expected, path, content, _now_ms(self.clock))
        with self.db.write() as session:
            return write(session, self.limits, self.quota_for(tenant), change)

    def delete_file(self, tenant: str, artifact_id: str, expected: int, path: str):
        self._write_args(artifact_id, expected)
        check_path("path", path, self.limits)
        with self.db.write() as session:
            return store.delete_file(session, tenant, artifact_id, expected, path, _now_ms(self.clock))

    def rename_file(self, tenant: str, artifact_id: str, expected: int, path: str, new_path: str):
        self._write_args(artifact_id, expected)
        check_path("path", path, self.limits)
        check_path("new_path", new_path, self.limits)
        if new_path == path:
            raise InvalidArgument("new_path", "must differ from path")
        with self.db.write() as session:
            return store.rename_file(session, tenant, artifact_id, expected, path, new_path, _now_ms(self.clock))

    def read_file(self, tenant: str, artifact_id: str, path: str) -> tuple[FileView, bytes, int]:
        check_artifact_id(artifact_id)
        check_path("path", path, self.limits)
        with self.db.read() as session:
            return store.read_file(session, tenant, artifact_id, path)

    # builtins.list: inside the class `list` names the method above
    def list_files(self, tenant: str, artifact_id: str) -> tuple[int, str, builtins.list[FileView]]:
        check_artifact_id(artifact_id)
        with self.db.read() as session:
            return store.list_files(session, tenant, artifact_id)

    def add_packages(self, tenant: str, artifact_id: str, expected: int, packages: Sequence) -> ArtifactView:
        self._write_args(artifact_id, expected)
        with self.db.read() as session:
            language = LANGUAGES[store.load_artifact(session, tenant, artifact_id).language]
        # The language never changes, so checking against it before the write
        # transaction is sound.
        specs = check_packages(language, packages, self.limits, required=True)
        with self.db.write() as session:
            return store.add_packages(session, self.limits, tenant, artifact_id, expected, specs, _now_ms(self.clock))
