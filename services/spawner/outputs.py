"""Harvest of /workspace/output/ after the container is dead.

The directory was written by hostile code, so the walk never follows a
symlink, never opens anything but a regular file (no device, FIFO or
socket), opens files with O_NOFOLLOW relative to their directory's fd, and
stops looking once the caps are spent. Whatever is not returned is counted
and, up to a bound, named.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import stat
from collections.abc import Iterator

from sandbox.common.v1 import execution_pb2 as common
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


class DropKind(enum.Enum):
    """Why the harvest did not return an entry."""

    UNREADABLE_DIRECTORY = enum.auto()
    TOO_DEEP = enum.auto()
    SYMLINK = enum.auto()
    NOT_REGULAR_FILE = enum.auto()
    PATH_REFUSED = enum.auto()
    # The caps: the program wrote more than an execution may return.
    TOO_MANY_ENTRIES = enum.auto()
    OVER_FILE_COUNT = enum.auto()
    OVER_FILE_SIZE = enum.auto()
    OVER_TOTAL_SIZE = enum.auto()

    @property
    def over_cap(self) -> bool:
        return self in _OVER_CAP


_OVER_CAP = frozenset(
    {
        DropKind.TOO_MANY_ENTRIES,
        DropKind.TOO_DEEP,
        DropKind.OVER_FILE_COUNT,
        DropKind.OVER_FILE_SIZE,
        DropKind.OVER_TOTAL_SIZE,
    }
)


@dataclasses.dataclass(frozen=True)
class Drop:
    path: str
    kind: DropKind
    description: str  # for people: "over the per-file cap of 10 bytes"

    def __str__(self) -> str:
        return f"{self.path} ({self.description})"


@dataclasses.dataclass
class Harvest:
    files: list[tuple[str, int]] = dataclasses.field(default_factory=list)  # (path, size) kept
    dropped: list[Drop] = dataclasses.field(default_factory=list)  # named, bounded
    dropped_count: int = 0
    over_cap_count: int = 0  # of dropped_count, those dropped by a cap
    total_bytes: int = 0

    def drop(self, path: str, kind: DropKind, description: str) -> None:
        self.dropped_count += 1
        if kind.over_cap:
            self.over_cap_count += 1
        if len(self.dropped) < MAX_NAMED_DROPS:
            self.dropped.append(Drop(path, kind, description))


def select(root: str, caps: OutputCaps, start: str = "", max_depth: int = 0) -> Harvest:
    """Decides which files are returned, without reading their contents:
    those under `start` (a directory prefix ending in "/", or "" for all),
    at most `max_depth` directories below it (0: no bound but the caps)."""
    harvest = Harvest()
    seen = 0
    stack = [start]  # directory prefixes still to list, depth first in name order
    while stack:
        prefix = stack.pop()
        try:
            dir_fd = open_dir(root, prefix)
        except OSError:
            harvest.drop(prefix, DropKind.UNREADABLE_DIRECTORY, "unreadable directory")
            continue
        try:
            with os.scandir(dir_fd) as entries:
                names = sorted(entry.name for entry in entries)
            subdirs = []
            for name in names:
                path = f"{prefix}{name}"
                seen += 1
                if seen > caps.max_entries:
                    harvest.drop(path, DropKind.TOO_MANY_ENTRIES, "too many entries")
                    continue
                try:
                    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    if max_depth and path.count("/") - start.count("/") >= max_depth:
                        harvest.drop(path, DropKind.TOO_DEEP, "too deep")
                    else:
                        subdirs.append(f"{path}/")
                    continue
                refusal = _refusal(path, info, harvest, caps)
                if refusal is not None:
                    harvest.drop(path, *refusal)
                    continue
                harvest.files.append((path, info.st_size))
                harvest.total_bytes += info.st_size
            stack.extend(reversed(subdirs))
        finally:
            os.close(dir_fd)
    return harvest


def open_dir(root: str, prefix: str) -> int:
    """Opens root/prefix one component at a time, refusing symlinks."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    for part in [p for p in prefix.split("/") if p]:
        try:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def _refusal(path: str, info: os.stat_result, harvest: Harvest, caps: OutputCaps) -> tuple[DropKind, str] | None:
    if stat.S_ISLNK(info.st_mode):
        return DropKind.SYMLINK, "symlink"
    if not stat.S_ISREG(info.st_mode):
        return DropKind.NOT_REGULAR_FILE, "not a regular file"
    bad_path = check_path(path, max_length=caps.max_path_length)
    if bad_path:
        return DropKind.PATH_REFUSED, f"path refused: {bad_path}"
    if len(harvest.files) >= caps.max_files:
        return DropKind.OVER_FILE_COUNT, "over the file count cap"
    if info.st_size > caps.max_file_bytes:
        return DropKind.OVER_FILE_SIZE, f"over the per-file cap of {caps.max_file_bytes} bytes"
    if harvest.total_bytes + info.st_size > caps.max_total_bytes:
        return DropKind.OVER_TOTAL_SIZE, f"over the total cap of {caps.max_total_bytes} bytes"
    return None


def read_chunks(root: str, path: str, size: int) -> Iterator[tuple[int, bytes]]:
    """Yields (offset, bytes) of one selected file, reading no more than its
    selected size and never following a symlink on the way."""
    directory, _, name = path.rpartition("/")
    dir_fd = open_dir(root, directory)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return
    yield from read_open(fd, size)


def read_open(fd: int, size: int) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of an opened file, at most `size` bytes (what was
    measured before: a file growing meanwhile is cut there); closes it."""
    try:
        offset = 0
        while offset < size:
            data = os.read(fd, min(CHUNK_BYTES, size - offset))
            if not data:
                break
            yield offset, data
            offset += len(data)
    finally:
        os.close(fd)


def file_chunks(root: str, path: str, size: int) -> Iterator[common.OutputFile]:
    """One harvested file as the chunk messages the stream carries; an empty
    file is one empty last chunk."""
    if size == 0:
        yield common.OutputFile(path=path, size=0, last_chunk=True)
        return
    for offset, data in read_chunks(root, path, size):
        yield common.OutputFile(
            path=path, size=size, content=data, offset=offset, last_chunk=offset + len(data) >= size
        )
