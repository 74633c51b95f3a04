"""Per-execution workspace on the host, bind-mounted at /workspace.

    <root>/<execution id>.<token>.ws/
        code/      the staged files (the working directory)
        output/    harvested after every exit; prior outputs are staged here
        deps/      where requested packages are installed
        stdin      the request's standard input

Paths were validated before they get here (services/common/contract/paths.py); the
resolved-path check below is a second, independent guard.
"""

from __future__ import annotations

import os
import pathlib

from services.spawner.removal import remove_tree
from services.spawner.sandbox import SANDBOX_UID

WORKSPACE_SUFFIX = ".ws"
STAT_BLOCK_BYTES = 512  # st_blocks counts these, whatever the filesystem's block size


class Workspace:
    def __init__(self, path: pathlib.Path):
        self.path = path
        self.code = path / "code"
        self.output = path / "output"
        self.stdin = path / "stdin"
        self.deps = path / "deps"

    @classmethod
    def create(cls, root: str, execution_id: str, token: str) -> "Workspace":
        base = pathlib.Path(root)
        base.mkdir(parents=True, exist_ok=True)
        path = base / f"{execution_id}.{token}{WORKSPACE_SUFFIX}"
        path.mkdir(mode=0o755)
        workspace = cls(path)
        workspace.code.mkdir(mode=0o755)
        workspace.output.mkdir(mode=0o755)
        workspace.deps.mkdir(mode=0o755)
        return workspace

    def stage(self, files: tuple[tuple[str, bytes], ...], stdin: bytes) -> None:
        self._write_all(self.code, files)
        self.stdin.write_bytes(stdin)
        self._hand_over()

    def stage_outputs(self, files: tuple[tuple[str, bytes], ...]) -> None:
        self._write_all(self.output, files)
        self._hand_over()

    def _write_all(self, base: pathlib.Path, files: tuple[tuple[str, bytes], ...]) -> None:
        resolved_base = base.resolve()
        for relative, content in files:
            target = (base / relative).resolve()
            if resolved_base not in target.parents:
                raise ValueError(f"path escapes the workspace: {relative!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "xb") as handle:  # never overwrite, never follow
                handle.write(content)

    def _hand_over(self) -> None:
        """Make the workspace the sandbox user's. Running as root we chown;
        otherwise we can only open it up."""
        as_root = os.geteuid() == 0
        for dirpath, dirnames, filenames in os.walk(self.path):
            for name in [*dirnames, *filenames]:
                self._own(os.path.join(dirpath, name), as_root)
        self._own(str(self.path), as_root)

    @staticmethod
    def _own(path: str, as_root: bool) -> None:
        if as_root:
            os.lchown(path, SANDBOX_UID, SANDBOX_UID)
        else:
            os.chmod(path, 0o777 if os.path.isdir(path) else 0o666)

    def disk_usage(self, max_entries: int) -> tuple[int, int]:
        """(bytes allocated, entries) under the workspace, counting no further
        than max_entries + 1 entries. Never follows symlinks."""
        used, entries = 0, 0
        stack = [str(self.path)]
        while stack and entries <= max_entries:
            try:
                with os.scandir(stack.pop()) as listing:
                    for entry in listing:
                        entries += 1
                        if entries > max_entries:
                            break
                        try:
                            info = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        used += info.st_blocks * STAT_BLOCK_BYTES
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
            except OSError:
                continue
        return used, entries

    def remove(self) -> None:
        """Removes the whole tree, however deep or locked the sandbox left it
        (services/spawner/removal.py). Raises OSError when something stays;
        the caller logs and counts it."""
        remove_tree(str(self.path))
