"""Installed packages kept for the next execution that asks for the same
ones (issue 10: the second install of numpy and pandas).

The egress already keeps the wheels and tarballs; what a second install
still costs is the installer itself (index pages, resolving, unpacking
about 100 MB of files). So the spawner keeps the installed tree:

    <root>/<key>/        a tree the installer wrote, copied out of a workspace
    <root>/.tmp-<random>/ a copy being made (renamed into place when whole)

The key covers everything the tree follows from: the image (its id, so a
rebuilt image never gets an older tree), the language and the exact
requirements in order; and the UTC day, so that an unpinned requirement
("numpy") gets the newest release again at least once a day. Only installs that run no
package code are kept (wheels only, npm without install scripts), and a
tree is copied out right after the installer exits, before any program of
the execution runs: it is the installer's output from files the egress
verified, which no tenant code touched. Each execution gets a copy of its
own in its workspace, so what a program does to its copy stays in its
workspace. Bounded in size; the least recently used trees go first.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import pathlib
import secrets
import shutil
import stat

log = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"


class InstallCache:
    def __init__(self, root: str, max_bytes: int):
        self.root = pathlib.Path(root)
        self.max_bytes = max_bytes

    @staticmethod
    def key(image_id: str, language: str, requirements: list[str], day: str | None = None) -> str:
        day = day or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
        described = json.dumps([image_id, language, requirements, day])
        return hashlib.sha256(described.encode()).hexdigest()

    def restore(self, key: str, destination: pathlib.Path) -> bool:
        """Copies the tree kept under `key` to `destination` (which must not
        exist); False when there is none or the copy failed (then nothing
        of it is left and the installer runs as without a cache)."""
        tree = self.root / key
        if not tree.is_dir():
            return False
        try:
            _copy_tree(tree, destination)
        except OSError as exc:
            log.warning("install cache: cannot restore %s: %s", key, exc)
            shutil.rmtree(destination, ignore_errors=True)
            return False
        os.utime(tree)  # most recently used
        return True

    def store(self, key: str, source: pathlib.Path) -> None:
        """Keeps a copy of `source` under `key` (another execution may have
        kept it meanwhile: the first one stays), then evicts down to the cap.
        Never fails the execution: a tree that cannot be kept is logged."""
        try:
            self._store(key, source)
        except OSError as exc:
            log.warning("install cache: cannot keep %s: %s", key, exc)

    def _store(self, key: str, source: pathlib.Path) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if (self.root / key).exists():
            return
        staging = self.root / f"{_TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            _copy_tree(source, staging)
            if _tree_bytes(staging) > self.max_bytes:
                return
            try:
                staging.rename(self.root / key)
            except OSError:  # kept by another execution meanwhile
                return
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        self._evict()

    def _evict(self) -> None:
        trees = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(_TMP_PREFIX)]
        sized = sorted(((p.stat().st_mtime, p, _tree_bytes(p)) for p in trees), key=lambda entry: entry[0])
        total = sum(size for _, _, size in sized)
        for _, tree, size in sized:
            if total <= self.max_bytes:
                return
            log.info("install cache: evicting %s (%d bytes)", tree.name, size)
            shutil.rmtree(tree)
            total -= size


def _copy_tree(source: pathlib.Path, destination: pathlib.Path) -> None:
    """Copies directories, regular files and symlinks (as links, never
    followed); anything else (a FIFO, a socket, a device) is refused."""
    shutil.copytree(source, destination, symlinks=True, copy_function=_copy_regular_file)


def _copy_regular_file(source: str, destination: str) -> None:
    if not stat.S_ISREG(os.lstat(source).st_mode):
        raise OSError(f"not a regular file: {source}")
    shutil.copy2(source, destination, follow_symlinks=False)


def _tree_bytes(tree: pathlib.Path) -> int:
    total = 0
    for directory, _, files in os.walk(tree):
        for name in files:
            total += os.lstat(os.path.join(directory, name)).st_size
    return total
