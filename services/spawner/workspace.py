"""Per-execution workspace, bind-mounted at /workspace.

    <root>/<execution id>.<token>.img   a sparse file holding the filesystem
    <root>/<execution id>.<token>.ws/   where that filesystem is mounted:
        code/      the staged files (the working directory)
        output/    harvested after every exit; prior outputs are staged here
        deps/      where requested packages are installed
        stdin      the request's standard input

Each workspace is a filesystem of its own (ext4 in a loop-mounted image file
as large as the workspace cap, with a bounded number of inodes), so the
kernel refuses the write, allocation or file past the cap with ENOSPC and the
host's disk never holds more than the image's size for it, whatever the
program does (fallocate included). The image is never exposed to the
sandbox: the kernel only ever parses filesystems the spawner made.

Paths were validated before they get here (services/common/contract/paths.py); the
resolved-path check below is a second, independent guard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import pathlib
import subprocess
import threading

from services.spawner import loopmount
from services.spawner.config import INODE_BYTES
from services.spawner.removal import remove_tree
from services.spawner.sandbox import SANDBOX_UID

WORKSPACE_SUFFIX = ".ws"
IMAGE_SUFFIX = ".img"
BLOCK_BYTES = 4096
_IMAGE_MODE = 0o600
_MKFS_SECONDS = 30
# No journal (the filesystem dies with its execution), nothing reserved for
# root, the root directory the sandbox user's, inode tables left for the
# kernel to treat as empty instead of zeroed on the host's disk.
_MKFS = [
    "mkfs.ext4",
    "-q",
    "-F",
    "-b",
    str(BLOCK_BYTES),
    "-I",
    str(INODE_BYTES),
    "-m",
    "0",
    "-O",
    "^has_journal",
    "-E",
    f"lazy_itable_init=1,nodiscard,root_owner={SANDBOX_UID}:{SANDBOX_UID}",
]
_MOUNT_FLAGS = loopmount.MS_NOSUID | loopmount.MS_NODEV | loopmount.MS_NOATIME
# No background thread zeroing inode tables (that would write to the host's
# disk for nothing); errors make the filesystem read-only, never panic.
_MOUNT_OPTIONS = "noinit_itable,errors=remount-ro"
_LOST_AND_FOUND = "lost+found"
# Counted as exhausted once less than this fraction of its bytes or inodes is
# free: a program that fails then most likely failed for want of space.
_FULL_FRACTION = 0.01


@dataclasses.dataclass(frozen=True)
class WorkspaceLimits:
    bytes: int  # the image's size, which is the most it takes on the host's disk
    inodes: int  # files, directories and links together


class Workspace:
    def __init__(self, path: pathlib.Path):
        self.path = path
        self.image = path.with_suffix(IMAGE_SUFFIX)
        self.code = path / "code"
        self.output = path / "output"
        self.stdin = path / "stdin"
        self.deps = path / "deps"
        self.limits: WorkspaceLimits | None = None

    @classmethod
    def at(cls, root: str, execution_id: str, token: str) -> Workspace:
        """The workspace's place; nothing is made until create()."""
        return cls(pathlib.Path(root) / f"{execution_id}.{token}{WORKSPACE_SUFFIX}")

    def create(self, limits: WorkspaceLimits) -> None:
        """Makes and mounts the filesystem. Whatever part of it exists when
        this raises is for remove() to take away."""
        self.limits = limits
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.mkdir(mode=0o755)
        extents = _formatted(self.path.parent, limits)
        fd = os.open(self.image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _IMAGE_MODE)
        try:
            os.ftruncate(fd, limits.bytes)  # sparse: blocks are taken as they are written
            for offset, data in extents:
                _write_at(fd, data, offset)
        finally:
            os.close(fd)
        loopmount.mount_image(str(self.image), str(self.path), "ext4", _MOUNT_FLAGS, _MOUNT_OPTIONS)
        (self.path / _LOST_AND_FOUND).rmdir()  # root's, of no use to the sandbox
        for directory in (self.code, self.output, self.deps):
            directory.mkdir(mode=0o755)

    def stage(self, files: tuple[tuple[str, bytes], ...], stdin: bytes) -> None:
        self._write_all(self.code, files)
        self.stdin.write_bytes(stdin)
        self.hand_over()

    def stage_outputs(self, files: tuple[tuple[str, bytes], ...]) -> None:
        self._write_all(self.output, files)
        self.hand_over()

    def _write_all(self, base: pathlib.Path, files: tuple[tuple[str, bytes], ...]) -> None:
        resolved_base = base.resolve()
        for relative, content in files:
            target = (base / relative).resolve()
            if resolved_base not in target.parents:
                raise ValueError(f"path escapes the workspace: {relative!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "xb") as handle:  # never overwrite, never follow
                handle.write(content)

    def hand_over(self) -> None:
        """Make everything staged the sandbox user's. The sandbox is running
        meanwhile: its runner removes its socket once the spawner connected,
        so an entry may be gone by the time it is reached."""
        for dirpath, dirnames, filenames in os.walk(self.path):
            for name in [*dirnames, *filenames]:
                with contextlib.suppress(FileNotFoundError):
                    os.lchown(os.path.join(dirpath, name), SANDBOX_UID, SANDBOX_UID)

    def exhausted(self) -> str:
        """Which of the workspace's limits is (all but) used up, as a
        sentence; empty when neither is."""
        if self.limits is None:
            return ""  # never made
        usage = os.statvfs(self.path)
        if usage.f_bavail < usage.f_blocks * _FULL_FRACTION:
            return f"the workspace ran out of space (its cap is {self.limits.bytes} bytes)"
        if usage.f_favail < usage.f_files * _FULL_FRACTION:
            return f"the workspace ran out of inodes (its cap is {self.limits.inodes} files and directories)"
        return ""

    def remove(self) -> None:
        """Unmounts the filesystem (lazily while something still uses it),
        removes the mount point and deletes the image; any of them may be
        missing. A directory that was never a mount point (a workspace of an
        older spawner) is removed however deep or locked the sandbox left it
        (services/spawner/removal.py). Raises OSError when something stays;
        the caller logs and counts it."""
        loopmount.unmount(str(self.path))
        remove_tree(str(self.path))
        with contextlib.suppress(FileNotFoundError):
            self.image.unlink()


# The written parts of a freshly made, empty filesystem, by limits: each is
# made once with mkfs.ext4 and then written into every new image, which then
# holds exactly the filesystem mkfs would have made (the same size, inodes
# and owner; the same UUID and directory hash seed, which no sandbox reads),
# without a mkfs process per workspace (~6 ms of CPU).
_FORMATTED: dict[WorkspaceLimits, tuple[tuple[int, bytes], ...]] = {}
_FORMATTED_LOCK = threading.Lock()


def _formatted(directory: pathlib.Path, limits: WorkspaceLimits) -> tuple[tuple[int, bytes], ...]:
    with _FORMATTED_LOCK:
        extents = _FORMATTED.get(limits)
        if extents is None:
            extents = _FORMATTED[limits] = _format_once(directory, limits)
        return extents


def _format_once(directory: pathlib.Path, limits: WorkspaceLimits) -> tuple[tuple[int, bytes], ...]:
    """Formats a scratch image (named like a workspace's, so the reaper
    takes one a crash left) and returns its written extents (offset, bytes)."""
    image = directory / f"format.{os.urandom(8).hex()}{IMAGE_SUFFIX}"
    fd = os.open(image, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _IMAGE_MODE)
    try:
        os.ftruncate(fd, limits.bytes)
        subprocess.run(
            [*_MKFS, "-N", str(limits.inodes), str(image)],
            check=True,
            capture_output=True,
            timeout=_MKFS_SECONDS,
        )
        extents = []
        offset = 0
        while True:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data past offset
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            data = os.pread(fd, end - start, start)
            if len(data) != end - start:
                raise OSError(errno.EIO, "short read of a formatted image", str(image))
            if data.count(0) != len(data):  # an all-zero extent is a hole's content anyway
                extents.append((start, data))
            offset = end
        return tuple(extents)
    finally:
        os.close(fd)
        image.unlink()


def _write_at(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def check_can_create(root: str, limits: WorkspaceLimits) -> None:
    """Makes and removes one workspace, so a spawner that may not mount
    (no CAP_SYS_ADMIN, no loop devices, no mkfs.ext4) says so at start
    rather than failing every execution."""
    probe = Workspace.at(root, "probe", os.urandom(8).hex())
    try:
        probe.create(limits)
    finally:
        probe.remove()
