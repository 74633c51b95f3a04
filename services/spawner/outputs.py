"""Harvest of /workspace/output/ after the container is dead.

The directory was written by hostile code, so the walk never follows a
symlink, never opens anything but a regular file (no device, FIFO or
socket), opens files with O_NOFOLLOW relative to their directory's fd, and
stops looking once the caps are spent. Whatever is not returned is counted
and, up to a bound, named.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from typing import Iterator

from services.common.contract.paths import check_path

CHUNK_BYTES = 1024 * 1024
MAX_NAMED_DROPS = 100


@dataclasses.dataclass(frozen=True)
class OutputCaps:
    max_files: int
    max_file_bytes: int
    max_total_bytes: int
    max_entries: int  # directory entries looked at, files or not
    max_path_length: int = 255


@dataclasses.dataclass
class Harvest:
    files: list[tuple[str, int]] = dataclasses.field(default_factory=list)  # (path, size) kept
    dropped: list[str] = dataclasses.field(default_factory=list)  # named, bounded
    dropped_count: int = 0
    total_bytes: int = 0

    def drop(self, path: str, why: str) -> None:
        self.dropped_count += 1
        if len(self.dropped) < MAX_NAMED_DROPS:
            self.dropped.append(f"{path} ({why})")


def select(root: str, caps: OutputCaps) -> Harvest:
    """Decides which files are returned, without reading their contents."""
    harvest = Harvest()
    seen = 0
    stack = [""]  # directory prefixes still to list, depth first in name order
    while stack:
        prefix = stack.pop()
        try:
            dir_fd = _open_dir(root, prefix)
        except OSError:
            harvest.drop(prefix, "unreadable directory")
            continue
        try:
            with os.scandir(dir_fd) as entries:
                names = sorted(entry.name for entry in entries)
            subdirs = []
            for name in names:
                path = f"{prefix}{name}"
                seen += 1
                if seen > caps.max_entries:
                    harvest.drop(path, "too many entries")
                    continue
                try:
                    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    subdirs.append(f"{path}/")
                    continue
                reason = _refusal(path, info, harvest, caps)
                if reason:
                    harvest.drop(path, reason)
                    continue
                harvest.files.append((path, info.st_size))
                harvest.total_bytes += info.st_size
            stack.extend(reversed(subdirs))
        finally:
            os.close(dir_fd)
    return harvest


def _open_dir(root: str, prefix: str) -> int:
    """Opens root/prefix one component at a time, refusing symlinks."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    for part in [p for p in prefix.split("/") if p]:
        try:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def _refusal(path: str, info: os.stat_result, harvest: Harvest, caps: OutputCaps) -> str | None:
    if stat.S_ISLNK(info.st_mode):
        return "symlink"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    bad_path = check_path(path, max_length=caps.max_path_length)
    if bad_path:
        return f"path refused: {bad_path}"
    if len(harvest.files) >= caps.max_files:
        return "over the file count cap"
    if info.st_size > caps.max_file_bytes:
        return f"over the per-file cap of {caps.max_file_bytes} bytes"
    if harvest.total_bytes + info.st_size > caps.max_total_bytes:
        return f"over the total cap of {caps.max_total_bytes} bytes"
    return None


def read_chunks(root: str, path: str, size: int) -> Iterator[tuple[int, bytes]]:
    """Yields (offset, bytes) of one selected file, reading no more than its
    selected size and never following a symlink on the way."""
    directory, _, name = path.rpartition("/")
    dir_fd = _open_dir(root, directory)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        offset = 0
        while offset < size:
            data = os.read(fd, min(CHUNK_BYTES, size - offset))
            if not data:
                break
            yield offset, data
            offset += len(data)
    finally:
        os.close(fd)
