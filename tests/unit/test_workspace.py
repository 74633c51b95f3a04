"""Each workspace is a filesystem of its own: the kernel bounds its bytes and
inodes, and nothing of it (mount, loop device, image) outlives its removal."""

from __future__ import annotations

import ctypes
import errno
import os

import pytest

from services.spawner import loopmount
from services.spawner.sandbox import SANDBOX_UID
from services.spawner.workspace import Workspace, WorkspaceLimits
from tests.loops import loops_backed_under, mounts_under

MIB = 1024 * 1024
LIMITS = WorkspaceLimits(bytes=32 * MIB, inodes=1024)
FALLOC_FL_KEEP_SIZE = 1
_libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture
def workspace(tmp_path):
    made = Workspace.at(str(tmp_path), "ex", "0123456789abcdef")
    made.create(LIMITS)
    yield made
    made.remove()
    assert list(tmp_path.iterdir()) == []
    assert loops_backed_under(str(tmp_path)) == [] and mounts_under(str(tmp_path)) == []


def _fallocate(path, length: int) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        result = _libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, ctypes.c_long(0), ctypes.c_long(length))
        return 0 if result == 0 else ctypes.get_errno()
    finally:
        os.close(fd)


def test_a_workspace_is_a_filesystem_of_its_own(workspace, tmp_path):
    assert os.path.ismount(workspace.path)
    assert sorted(p.name for p in workspace.path.iterdir()) == ["code", "deps", "output"]
    assert os.stat(workspace.path).st_uid == SANDBOX_UID
    usage = os.statvfs(workspace.path)
    assert usage.f_blocks * usage.f_frsize <= LIMITS.bytes
    assert usage.f_files == LIMITS.inodes
    assert workspace.image.stat().st_size == LIMITS.bytes
    assert workspace.image.stat().st_blocks * 512 < LIMITS.bytes // 4  # sparse
    assert len(loops_backed_under(str(tmp_path))) == 1
    assert workspace.exhausted() == ""


def test_fallocate_past_the_cap_is_refused_and_the_image_stays_within_it(workspace):
    assert _fallocate(workspace.path / "big", 5 * 1024 * MIB) == errno.ENOSPC
    assert workspace.image.stat().st_blocks * 512 <= LIMITS.bytes
    assert "ran out of space" in workspace.exhausted()


def test_writing_past_the_cap_is_refused(workspace):
    block = b"x" * MIB
    with pytest.raises(OSError) as refused, open(workspace.path / "flood", "wb") as flood:
        for _ in range(2 * LIMITS.bytes // MIB):
            flood.write(block)
            flood.flush()
    assert refused.value.errno == errno.ENOSPC
    os.sync()
    assert workspace.image.stat().st_blocks * 512 <= LIMITS.bytes
    assert "ran out of space" in workspace.exhausted()


def test_files_past_the_inode_cap_are_refused(workspace):
    made = 0
    with pytest.raises(OSError) as refused:
        for made in range(2 * LIMITS.inodes):
            (workspace.output / str(made)).touch()
    assert refused.value.errno == errno.ENOSPC
    assert made < LIMITS.inodes
    assert "ran out of inodes" in workspace.exhausted()


def test_removal_works_while_a_process_is_inside(workspace, tmp_path):
    """A filesystem still in use is detached lazily; the image and the mount
    point go at once, the loop device when its last user goes."""
    busy = os.open(workspace.code, os.O_RDONLY | os.O_DIRECTORY)
    try:
        workspace.remove()
        assert not workspace.path.exists() and not workspace.image.exists()
        assert mounts_under(str(tmp_path)) == []
    finally:
        os.close(busy)


def test_a_half_made_workspace_is_removed(tmp_path):
    made = Workspace.at(str(tmp_path), "ex", "fedcba9876543210")
    made.path.mkdir()
    made.image.write_bytes(b"not a filesystem")
    with pytest.raises(OSError):
        loopmount.mount_image(str(made.image), str(made.path), "ext4", 0, "")
    made.remove()
    assert list(tmp_path.iterdir()) == []
    assert loops_backed_under(str(tmp_path)) == []


def test_removal_of_nothing_is_fine(tmp_path):
    Workspace.at(str(tmp_path), "ex", "aaaaaaaaaaaaaaaa").remove()


def test_mount_points_are_read_from_the_mount_table(tmp_path):
    made = Workspace(tmp_path / "a name\twith odd characters.ws")  # escaped in the table
    made.create(LIMITS)
    try:
        assert loopmount.mount_points_under(str(tmp_path)) == [made.path]
    finally:
        made.remove()
    assert loopmount.mount_points_under(str(tmp_path)) == []


def test_handing_over_skips_entries_the_running_sandbox_removed(tmp_path, monkeypatch):
    """The runner removes its socket once the spawner is connected, which
    may be while the staged files are handed over (a race seen for real)."""
    path = tmp_path / "ws"
    (path / ".runner").mkdir(parents=True)
    (path / ".runner" / "runner.sock").write_bytes(b"")
    (path / "stdin").write_bytes(b"")
    real_lchown = os.lchown

    def runner_removes_its_socket(target, uid, gid):
        if target.endswith("runner.sock"):  # listed by the walk, gone since
            (path / ".runner" / "runner.sock").unlink()
        real_lchown(target, uid, gid)

    monkeypatch.setattr(os, "lchown", runner_removes_its_socket)
    Workspace(path).hand_over()
    assert (path / "stdin").stat().st_uid == SANDBOX_UID
