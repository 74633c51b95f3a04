"""The retention sweeper on SQLite and on a real PostgreSQL, with a clock the
test moves: expired executions go with their output file rows, runs and
unreferenced blobs, the tenants' storage is given back, shared and recent
blobs stay, and a failure for one item is counted while the sweep goes on."""

from __future__ import annotations

import hashlib
import secrets
import time

import pytest
import sqlalchemy as sa

from sandbox.common.v1 import execution_pb2 as common
from services.control.artifacts.service import ArtifactService
from services.control.blobs import BlobStore
from services.control.config import ArtifactLimits, QuotaLimits
from services.control.errors import NotFound
from services.control.executions.models import COMPLETED, FAILED, StoredFile, Verdict
from services.control.executions.retention import BLOB_GRACE_SECONDS, RetentionSweeper
from services.control.executions.store import ExecutionStore
from services.control.runs import store as run_store
from services.control.runs.models import RunRow

DAY_MS = 86_400_000
RETENTION_DAYS = 30


class World:
    """A store and blob store on the test's database, and a clock it moves."""

    def __init__(self, database, tmp_path):
        self.now = int(time.time() * 1000)  # blobs' times are the real clock's
        self.store = ExecutionStore(database, lambda tenant: QuotaLimits(100, 1e6), clock=lambda: self.now)
        self.blobs = BlobStore(tmp_path / "blobs")
        self.sweeper = RetentionSweeper(self.store, self.blobs, retention_days=RETENTION_DAYS, interval_seconds=3600)

    def finished(self, tenant: str, execution_id: str, files: dict[str, bytes] = ()) -> str:
        """An execution that finished now, with its files stored; its key."""
        row = self.store.reserve(
            key=secrets.token_hex(16),
            tenant=tenant,
            execution_id=execution_id,
            group_id="",
            language=common.LANGUAGE_PYTHON,
            timeout_ms=1000,
        )
        contents = list(dict(files).items())
        digests, _ = self.blobs.put_all([content for _, content in contents])
        stored = [
            StoredFile(path, len(content), digest) for (path, content), digest in zip(contents, digests, strict=True)
        ]
        assert self.store.finalize(row.key, Verdict(COMPLETED, exit_code=0, cpu_seconds=0.0), stored)
        return row.key

    def digest(self, content: bytes) -> str:
        return self.blobs.put_all([content])[0][0]


@pytest.fixture
def world(database, tmp_path):
    return World(database, tmp_path)


def _count(database, table: str) -> int:
    with database.read() as session:
        return session.execute(sa.text(f"select count(*) from {table}")).scalar_one()


def test_expired_executions_go_with_their_files_runs_and_blobs(world, database):
    old_key = world.finished("t1", "old", {"a.txt": b"only old", "b.txt": b"shared"})
    other_tenant = world.finished("t2", "theirs", {"z.txt": b"only theirs"})
    artifact = ArtifactService(database, ArtifactLimits()).create("t1", common.LANGUAGE_PYTHON, "", "", [])
    with database.write() as session:
        run = RunRow(
            id="old",
            tenant="t1",
            artifact_id=artifact.artifact_id,
            execution_key=old_key,
            revision=1,
            created_at_ms=world.now,
        )
        run_store.add_run(session, run, ["main.py"])
    orphan = world.digest(b"left by a crash")
    world.now += 20 * DAY_MS
    world.finished("t1", "recent", {"b.txt": b"shared"})
    live = world.store.reserve(
        key=secrets.token_hex(16),
        tenant="t1",
        execution_id="live",
        group_id="",
        language=common.LANGUAGE_PYTHON,
        timeout_ms=1000,
    )
    assert world.store.quota("t1").stored.executions == 3
    assert world.store.quota("t1").stored.output_bytes == len(b"only old") + 2 * len(b"shared")

    first = world.sweeper.sweep()
    # Nothing is 30 days old yet; the crash's orphan, referenced by no row, goes.
    assert (first.executions, first.blobs) == (0, 1)
    assert orphan not in world.blobs.all()
    world.now += 11 * DAY_MS
    done = world.sweeper.sweep()
    assert (done.executions, done.failures) == (2, 0)
    assert done.blobs == 2  # old's own and theirs; "shared" is still referenced
    with pytest.raises(NotFound):
        world.store.get("t1", "old")
    with pytest.raises(NotFound):
        world.store.get("t2", "theirs")
    assert world.store.get("t1", "recent").status == COMPLETED
    assert world.store.by_key(live.key) is not None  # never finished: never swept
    assert (_count(database, "runs"), _count(database, "run_paths")) == (0, 0)
    assert world.store.files(old_key) == [] and world.store.by_key(other_tenant) is None
    assert world.blobs.all() == [hashlib.sha256(b"shared").hexdigest()]
    usage = world.store.quota("t1")
    assert (usage.stored.executions, usage.stored.output_bytes) == (2, len(b"shared"))
    assert world.store.quota("t2").stored.executions == 0
    # A later sweep has nothing left to do.
    assert world.sweeper.sweep() == type(done)()


def test_recent_blobs_no_row_references_yet_stay(world):
    """A blob written (or reused) within the grace may be about to be
    referenced by a finalize in flight."""
    fresh = world.digest(b"a finalize is about to reference this")
    assert world.sweeper.sweep().blobs == 0
    assert fresh in world.blobs.all()
    world.now += BLOB_GRACE_SECONDS * 1000 + 1000
    assert world.sweeper.sweep().blobs == 1
    assert world.blobs.all() == []


def test_a_failure_for_one_item_is_counted_and_the_sweep_goes_on(world, monkeypatch):
    keys = [world.finished("t1", f"e{i}", {f"{i}.txt": f"content {i}".encode()}) for i in range(5)]
    world.now += (RETENTION_DAYS + 1) * DAY_MS
    stuck_key = keys[2]
    stuck_blob = hashlib.sha256(b"content 4").hexdigest()
    real_delete, real_remove = world.sweeper._delete, world.blobs.remove

    def delete(key, cutoff_ms):
        if key == stuck_key:
            raise RuntimeError("the database said no")
        return real_delete(key, cutoff_ms)

    def remove(digests):
        if stuck_blob in digests:
            raise OSError("the disk said no")
        real_remove(digests)

    monkeypatch.setattr(world.sweeper, "_delete", delete)
    monkeypatch.setattr(world.blobs, "remove", remove)
    done = world.sweeper.sweep()
    # e2's row stays; e4's blob stays (tried twice: after its row, and in the pass over all blobs).
    assert (done.executions, done.failures) == (4, 3)
    assert done.blobs == 3
    assert world.store.by_key(stuck_key) is not None
    assert world.sweeper.failures == 3
    monkeypatch.undo()
    done = world.sweeper.sweep()
    assert (done.executions, done.blobs, done.failures) == (1, 2, 0)
    assert world.blobs.all() == []


def test_retention_zero_keeps_executions(world):
    world.sweeper.retention_ms = 0
    world.finished("t1", "kept", {"k.txt": b"kept"})
    world.now += 3650 * DAY_MS
    assert world.sweeper.sweep().executions == 0
    assert world.store.get("t1", "kept").status == COMPLETED
    assert len(world.blobs.all()) == 1


def test_only_finished_executions_expire(world):
    row = world.store.reserve(
        key=secrets.token_hex(16),
        tenant="t1",
        execution_id="failed",
        group_id="",
        language=common.LANGUAGE_PYTHON,
        timeout_ms=1000,
    )
    assert world.store.finalize(row.key, Verdict(FAILED, "RUNTIME_ERROR", exit_code=1, cpu_seconds=0.0))
    world.now += (RETENTION_DAYS + 1) * DAY_MS
    assert world.sweeper.sweep().executions == 1
