"""Each workspace is a filesystem of its own: the kernel bounds its bytes and
inodes, and nothing of it (mount, loop device, image) outlives its removal."""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess

import pytest

from services.spawner import loopmount
from services.spawner import workspace as workspace_module
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


def _superblock(image) -> dict[str, str]:
    """dumpe2fs's header, without what differs between any two filesystems."""
    out = subprocess.run(["dumpe2fs", "-h", str(image)], check=True, capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    varying = ("Filesystem created", "Last write time", "Last mount time", "Mount count", "Last checked")
    return {k.strip(): v.strip() for k, v in fields.items() if not k.startswith(varying)}


def test_a_workspace_is_the_filesystem_mkfs_makes(tmp_path):
    # Written from the extents of one mkfs (workspace.py, _formatted): the
    # same filesystem, field by field, as a mkfs of its own image.
    made = Workspace.at(str(tmp_path), "ex", "00000000000000aa")
    made.create(LIMITS)
    try:
        loopmount.unmount(str(made.path))
        ours = _superblock(made.image)
    finally:
        made.remove()
    reference = tmp_path / "reference.img"
    with open(reference, "wb") as image:
        image.truncate(LIMITS.bytes)
    subprocess.run([*workspace_module._MKFS, "-N", str(LIMITS.inodes), str(reference)], check=True)
    fresh = _superblock(reference)
    for key in ("Filesystem UUID", "Directory Hash Seed"):
        ours.pop(key), fresh.pop(key)
    # create() removed lost+found and made its directories; it was mounted.
    for key in ("Free inodes", "Free blocks", "Filesystem state", "Lifetime writes", "Checksum"):
        ours.pop(key), fresh.pop(key)
    assert ours == fresh


def test_nothing_of_one_workspace_is_in_the_next(tmp_path):
    first = Workspace.at(str(tmp_path), "ex", "00000000000000bb")
    first.create(LIMITS)
    try:
        (first.code / "secret.txt").write_bytes(b"tenant a" * 1000)
        os.sync()
        second = Workspace.at(str(tmp_path), "ex", "00000000000000cc")
        second.create(LIMITS)
        try:
            assert sorted(p.name for p in second.path.iterdir()) == ["code", "deps", "output"]
            assert list(second.code.iterdir()) == []
            assert b"tenant a" not in second.image.read_bytes()
        finally:
            second.remove()
    finally:
        first.remove()
