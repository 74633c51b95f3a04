"""How sandboxctl shows things: exit codes, the summary line, sizes, the
phase spinner (on a terminal only) and output files written safely."""

from __future__ import annotations

import itertools
import os
import pathlib
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Literal, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sandbox_mesh.events import Execution

# sandboxctl's own exit codes (README, "sandboxctl"); anything else is the program's.
EXIT_USAGE = 2
EXIT_TIMEOUT = 124
EXIT_MESH = 125
EXIT_INTERRUPTED = 130
SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def exit_code_for(execution: Execution) -> int:
    """The program's exit code when it ran and failed by itself; ours when
    the mesh stopped it or never ran it."""
    if execution.status == "COMPLETED":
        return 0
    if execution.status == "CANCELLED" or execution.error_code == "CANCELLED":
        return EXIT_INTERRUPTED
    if execution.error_code == "TIMEOUT":
        return EXIT_TIMEOUT
    if execution.error_code == "RUNTIME_ERROR":
        return execution.exit_code if 0 < execution.exit_code < 256 else 1
    return EXIT_MESH


Justify = Literal["left", "right"]
# Piped, a table is as wide as its rows: nothing is cut for a terminal's width.
PIPED_WIDTH = 10_000


def printable(text: str) -> str:
    """`text` with control characters (a title's escape sequences) shown as "?"."""
    return "".join(char if char.isprintable() else "?" for char in text)


def print_table(columns: Sequence[tuple[str, Justify]], rows: Iterable[Sequence[str]]) -> None:
    """Rows under their column names on stdout, aligned, without borders (so
    it reads, greps and cuts like `docker ps`); bold names on a terminal.
    Cells are plain text: nothing in a title or a path is taken as markup."""
    terminal = sys.stdout.isatty()
    table = Table(box=None, pad_edge=False, header_style="bold" if terminal else "", show_edge=False)
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=not terminal)
    for row in rows:
        table.add_row(*(Text(printable(cell)) for cell in row))
    Console(highlight=False, width=None if terminal else PIPED_WIDTH, no_color=not terminal).print(table)


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def summary_line(execution: Execution) -> str:
    """`COMPLETED exit 0 · wall 1.20s · cpu 0.40s · peak 12.0 MiB · ex-…`"""
    usage = execution.usage
    verdict = execution.status if execution.error_code is None else f"{execution.status} {execution.error_code}"
    parts = [
        f"{verdict} exit {execution.exit_code}",
        f"wall {usage.wall_ms / 1000:.2f}s",
        f"cpu {usage.cpu_seconds:.2f}s",
        f"peak {human_bytes(usage.peak_memory_bytes)}",
        execution.execution_id,
    ]
    line = " · ".join(parts)
    if execution.error_message:
        line += f": {execution.error_message}"
    return line


def output_path(out_dir: pathlib.Path, relative: str) -> pathlib.Path:
    """Where an output file goes; refuses a path that would leave out_dir
    (control checks paths too; a client trusts no server with its disk)."""
    parts = pathlib.PurePosixPath(relative).parts
    if not parts or relative.startswith("/") or any(p in ("..", ".", "") for p in parts) or "\\" in relative:
        raise ValueError(f"refusing to write output file {relative!r} outside {out_dir}")
    return out_dir.joinpath(*parts)


def write_under(folder: pathlib.Path, relative: str, chunks: Iterable[bytes]) -> pathlib.Path:
    """Writes a file the server named into `folder`, and never elsewhere:
    ValueError for a path with `..`, an absolute one, or one that would go
    through a symlink already in the folder (checked before each mkdir; the
    file itself is opened without following one)."""
    target = output_path(folder, relative)
    folder.mkdir(parents=True, exist_ok=True)
    current = folder
    for part in pathlib.PurePosixPath(relative).parts[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            raise ValueError(f"refusing to write {relative!r}: {current} is not a folder of {folder}")
        current.mkdir(exist_ok=True)
    if target.is_symlink():
        raise ValueError(f"refusing to write {relative!r}: {target} is a symlink")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as sink:
        for chunk in chunks:
            sink.write(chunk)
    return target


class PhaseSpinner:
    """`⠋ RUNNING 1.2s` redrawn on one line of a terminal; nothing when
    disabled (piped, --json). Output is written through `write` so the
    spinner line is cleared first and never mixes with it."""

    def __init__(self, stream: TextIO, enabled: bool, interval: float = 0.1):
        self._stream = stream
        self._enabled = enabled
        self._interval = interval
        self._phase = "CONNECTING"
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False
        # The spinner shares the terminal's line with the program's output:
        # it is drawn only while that output ends with a newline.
        self._at_line_start = True

    def start(self) -> None:
        if self._enabled:
            self._thread = threading.Thread(target=self._spin, name="sandboxctl-spinner", daemon=True)
            self._thread.start()

    def phase(self, name: str) -> None:
        self._phase = name

    def _spin(self) -> None:
        for frame in itertools.cycle(SPINNER_FRAMES):
            if self._stop.wait(self._interval):
                return
            with self._lock:
                if not self._at_line_start:
                    continue
                elapsed = time.monotonic() - self._started
                self._stream.write(f"\r\x1b[K{frame} {self._phase} {elapsed:.1f}s")
                self._stream.flush()
                self._shown = True

    def write(self, target, data: bytes) -> None:
        """Writes program output to a binary stream, the spinner cleared."""
        with self._lock:
            self._clear()
            target.write(data)
            target.flush()
            if data:
                self._at_line_start = data.endswith(b"\n")

    def _clear(self) -> None:
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._clear()
