"""PLACEHOLDER (replaced by the wt-handoff branch)."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

RUNNER_DIR = ".runner"
SOCKET_NAME = "runner.sock"


class HandoffError(Exception):
    pass


def runner_command(socket_in_container: str) -> list[str]:
    return ["python3", "/opt/sandbox/runner.py", "serve", socket_in_container]


class RunnerProgram:
    started_at = 0.0
    finished_at = 0.0
    violation = ""

    def stream(self) -> Iterator[tuple[int, bytes]]:
        raise NotImplementedError

    def exit_code(self) -> int:
        raise NotImplementedError


class RunnerConnection:
    def start(self, argv: list[str], environment: dict[str, str], workdir: str, stdin: str | None) -> RunnerProgram:
        raise NotImplementedError

    def alive(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def connect(workspace_path: pathlib.Path, timeout_seconds: float, alive: Callable[[], bool]) -> RunnerConnection:
    raise HandoffError("not implemented")
