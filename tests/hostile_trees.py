"""Trees that a hostile program (or a broken host) leaves for the spawner to remove."""

from __future__ import annotations

import os
import pathlib
import subprocess

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY


def make_deep_tree(root: str, depth: int, name: str = "d", leaf: bytes = b"leaf") -> None:
    """Nests `depth` directories under root, one open directory at a time,
    and writes a file at the bottom."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf_fd = os.open("leaf", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
        os.write(leaf_fd, leaf)
        os.close(leaf_fd)
    finally:
        os.close(fd)


def mount_tmpfs(mount_point: pathlib.Path) -> bool:
    """Mounts a small tmpfs (a directory no removal may empty); False where
    this process may not mount."""
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "none", str(mount_point)], check=False, capture_output=True
    )
    return done.returncode == 0


def unmount(mount_point: pathlib.Path) -> None:
    subprocess.run(["umount", str(mount_point)], check=True)
