"""Removes a directory tree that hostile code wrote (a workspace).

`shutil.rmtree` recurses once per level, so a program that nests a few
thousand directories makes it raise RecursionError; it also names entries by
path, and a tree deeper than PATH_MAX cannot be named. This walk instead:

- keeps an explicit stack (one entry per level: the subdirectories still to
  remove), never recursing;
- holds one directory open at a time and works relative to it (openat,
  unlinkat), going down by name and back up by "..", so no path it uses is
  longer than one name; on the way up it checks that it arrived in the
  directory it came from, and gives up if the tree was moved under it;
- never follows a symlink: every open is O_NOFOLLOW, and a symlink is
  unlinked like a file;
- never leaves the tree's filesystem: another filesystem mounted inside it
  is left alone (with the directories above it), the rest is removed, and
  then it raises;
- gives a directory back its owner's permissions (0700) when the sandbox took
  them away, since without them the entries cannot be listed or unlinked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Opens the directory itself without needing any permission on it.
_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
OWNER_ALL = stat.S_IRWXU
_PROC_FD = "/proc/self/fd/{}"


class TreeMoved(OSError):
    """A directory was moved while the tree was being removed: someone is
    still writing to it."""


class MountPointInside(OSError):
    """The tree holds another filesystem's mount point; it was left alone."""


@dataclasses.dataclass
class _Level:
    name: str  # of this directory in its parent
    identity: tuple[int, int]  # (st_dev, st_ino), to check the way back up
    subdirectories: list[str]  # still to remove
    keep: bool = False  # a mount point is somewhere below: no rmdir


def remove_tree(path: str) -> None:
    """Removes `path` and everything under it; a missing path is fine.
    Raises OSError when something cannot be removed."""
    parent, name = os.path.split(os.path.abspath(path))
    parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            _remove_directory(parent_fd, name)
        else:
            _unlink(parent_fd, name)
    finally:
        os.close(parent_fd)


def _remove_directory(parent_fd: int, name: str) -> None:
    fd = _open_directory(parent_fd, name)
    if fd is None:
        return
    try:
        top = _Level(name, _identity(fd), _empty(fd))
        stack = [top]
        while True:
            level = stack[-1]
            if level.subdirectories:
                child_name = level.subdirectories.pop()
                child = _open_directory(fd, child_name)
                if child is None:
                    continue
                os.close(fd)
                fd = child
                identity = _identity(fd)
                if identity[0] != top.identity[0]:
                    fd = _up(fd, level.identity)  # another filesystem's mount point: not ours to empty
                    level.keep = True
                    continue
                stack.append(_Level(child_name, identity, _empty(fd)))
                continue
            if len(stack) == 1:
                break
            stack.pop()
            fd = _up(fd, stack[-1].identity)
            if level.keep:
                stack[-1].keep = True
            else:
                _rmdir(fd, level.name)
    finally:
        os.close(fd)
    if top.keep:
        raise MountPointInside(errno.EBUSY, "a mount point inside the tree was left alone", name)
    _rmdir(parent_fd, name)


def _up(fd: int, expected: tuple[int, int]) -> int:
    """Moves from a directory to its parent, which must be the directory the
    walk came down from. Closes fd only on success (the caller's to close
    otherwise)."""
    parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
    if _identity(parent) != expected:
        os.close(parent)
        raise TreeMoved(errno.ESTALE, "a directory was moved while its tree was being removed")
    os.close(fd)
    return parent


def _open_directory(parent_fd: int, name: str) -> int | None:
    """Opens a subdirectory, first giving its owner back the permissions
    needed to list it; None when it is gone or not a directory any more (a
    symlink or file put in its place is unlinked instead)."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        return None
    except PermissionError:
        _grant_owner(parent_fd, name)
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        _unlink(parent_fd, name)
        return None
    return fd


def _grant_owner(parent_fd: int, name: str) -> None:
    """chmod 0700 a directory we may not open for reading. Done through an
    O_PATH descriptor of the directory itself, so a symlink swapped in its
    place is never followed."""
    fd = os.open(name, _PATH_FLAGS, dir_fd=parent_fd)
    try:
        os.chmod(_PROC_FD.format(fd), OWNER_ALL)
    finally:
        os.close(fd)


def _give_owner_access(fd: int) -> None:
    """Entries can only be unlinked from a directory we may write and search."""
    mode = os.fstat(fd).st_mode
    if mode & OWNER_ALL != OWNER_ALL:
        try:
            os.fchmod(fd, stat.S_IMODE(mode) | OWNER_ALL)
        except PermissionError:
            pass  # not ours: the unlinks below say whether it matters


def _empty(fd: int) -> list[str]:
    """Unlinks everything in the directory but its subdirectories, whose
    names it returns."""
    _give_owner_access(fd)
    subdirectories = []
    with os.scandir(fd) as entries:
        names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    for name, is_directory in names:
        if is_directory:
            subdirectories.append(name)
        else:
            _unlink(fd, name)
    return subdirectories


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def _unlink(dir_fd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def _rmdir(dir_fd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=dir_fd)
