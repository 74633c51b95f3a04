"""Files of an open session's workspace, read and written from the host
while the sandbox runs (docs/sessions.md, "Files of an open session").

The workspace belongs to hostile code that may, at any moment, replace a
directory on a path with a symlink, make FIFOs, sparse or huge files,
millions of entries or deep trees. So every path is opened one component at
a time relative to its parent's descriptor with O_NOFOLLOW (the harvest's
own walk, services/spawner/outputs.py), only regular files are read, a file
is written under a fresh name and renamed into place (the rename replaces a
link rather than following it), and a listing stops at its caps. The
workspace is a filesystem of its own, so a put past its size fails there
(ENOSPC) and nothing outside it can be reached by any name in it.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator

from services.common.contract.errors import InvalidArgument
from services.spawner import outputs
from services.spawner.errors import FileNotFound, WorkspaceFull
from services.spawner.sandbox import SANDBOX_UID

CHUNK_BYTES = outputs.CHUNK_BYTES
# A listing: files returned, directory entries looked at, directories deep.
LIST_MAX_FILES = 1000
LIST_MAX_ENTRIES = 20_000
LIST_MAX_DEPTH = 32
_FILE_MODE = 0o644
_DIRECTORY_MODE = 0o755
_UNBOUNDED = 2**62
_TEMPORARY_PREFIX = ".sandbox-put-"  # hidden: never listed, never named by a request


class FileRefused(InvalidArgument):
    """The path names something that is not a regular file reached through
    directories only (a symlink, a FIFO, a directory)."""

    def __init__(self, description: str) -> None:
        super().__init__("path", description)


def put(root: str, path: str, content: bytes) -> int:
    """Writes `content` at `path` under `root` (making missing directories),
    owned by the sandbox user; returns its size."""
    *parents, name = path.split("/")
    try:
        fd = _open_root(root)
    except OSError as exc:
        raise _refusal(exc) from None
    try:
        for part in parents:
            fd = _enter(fd, part)
        temporary = f"{_TEMPORARY_PREFIX}{secrets.token_hex(8)}"
        try:
            file_fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _FILE_MODE, dir_fd=fd)
            try:
                view = memoryview(content)
                while view:
                    view = view[os.write(file_fd, view) :]
                os.fchmod(file_fd, _FILE_MODE)
                os.fchown(file_fd, SANDBOX_UID, SANDBOX_UID)
            finally:
                os.close(file_fd)
            os.rename(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            try:
                os.unlink(temporary, dir_fd=fd)
            except FileNotFoundError:
                pass
            raise
    except OSError as exc:
        raise _refusal(exc) from None
    finally:
        os.close(fd)
    return len(content)


def open_file(root: str, path: str, max_bytes: int) -> tuple[int, int]:
    """(descriptor, size) of the regular file at `path`; the caller closes
    it. A file larger than `max_bytes` (the workspace's size: only a sparse
    file can be) is refused."""
    directory, _, name = path.rpartition("/")
    try:
        dir_fd = outputs.open_dir(root, directory)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise _refusal(exc) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FileRefused("not a regular file")
    if info.st_size > max_bytes:
        os.close(fd)
        raise FileRefused(f"larger than the workspace ({info.st_size} bytes, a sparse file); not read")
    return fd, info.st_size


def read_chunks(fd: int, size: int) -> Iterator[tuple[int, bytes]]:
    """(offset, data) of a file `open_file` opened, at most `size` bytes;
    closes it (the harvest's own loop)."""
    return outputs.read_open(fd, size)


def list_files(root: str, directory: str, max_path_length: int) -> tuple[list[tuple[str, int]], bool]:
    """(path, size) of the regular files under `directory`, sorted by path,
    and whether the listing stopped at a cap."""
    if directory:
        try:
            os.close(outputs.open_dir(root, directory))
        except OSError as exc:
            raise _refusal(exc, "directory") from None
    caps = outputs.OutputCaps(
        max_files=LIST_MAX_FILES,
        max_file_bytes=_UNBOUNDED,
        max_total_bytes=_UNBOUNDED,
        max_entries=LIST_MAX_ENTRIES,
        max_path_length=max_path_length,
    )
    start = f"{directory}/" if directory else ""
    harvest = outputs.select(root, caps, start=start, max_depth=LIST_MAX_DEPTH)
    return sorted(harvest.files), harvest.over_cap_count > 0


def _open_root(root: str) -> int:
    """The workspace's root, which must still be its own filesystem: once
    its sandbox is gone and it is unmounted, the bare directory left for a
    moment is the host's, and nothing is written there."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    if os.fstat(fd).st_dev == os.stat(os.path.dirname(root)).st_dev:
        os.close(fd)
        raise FileNotFound("the session's workspace is gone")
    return fd


def _enter(fd: int, part: str) -> int:
    """The descriptor of directory `part` in `fd`, made (the sandbox
    user's) if missing; closes `fd` once it has the child's."""
    made = False
    try:
        os.mkdir(part, _DIRECTORY_MODE, dir_fd=fd)
        made = True
    except FileExistsError:
        pass
    child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
    if made:
        try:
            os.fchown(child, SANDBOX_UID, SANDBOX_UID)
        except OSError:
            os.close(child)
            raise
    os.close(fd)
    return child


def _refusal(exc: OSError, field: str = "path") -> Exception:
    """What a failed open or write means for the caller."""
    if exc.errno == errno.ENOENT:
        return FileNotFound("no such file or directory in the session's workspace")
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return InvalidArgument(field, "a symbolic link or not a directory on the way; links are never followed")
    if exc.errno == errno.EISDIR:
        return InvalidArgument(field, "is a directory")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return WorkspaceFull("the session's workspace is full (its size or file count cap)")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.ENXIO, errno.ENODEV):
        return InvalidArgument(field, "not a regular file that may be opened")
    return exc
