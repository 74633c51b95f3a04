"""What a test looks at to prove that no loop device or mount outlived it."""

from __future__ import annotations

import glob
import os

_BACKING_FILES = "/sys/block/loop*/loop/backing_file"
_DELETED = " (deleted)"


def loops_backed_under(directory: str) -> list[str]:
    """Loop devices whose backing file is (or was, before its deletion)
    somewhere under `directory`."""
    prefix = os.path.realpath(directory) + os.sep
    found = []
    for path in glob.glob(_BACKING_FILES):
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as backing:
                name = backing.read().strip().removesuffix(_DELETED)
        except OSError:
            continue  # detached meanwhile
        if name.startswith(prefix):
            found.append(path.split("/")[3])
    return found


def mounts_under(directory: str) -> list[str]:
    """Mount points anywhere under `directory`."""
    prefix = os.path.realpath(directory) + os.sep
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        points = [line.split(" ")[4] for line in table]
    return [point for point in points if point.startswith(prefix)]
