"""How `sandboxctl session` shows a call: stdout and stderr as they stream,
what the code displayed (images saved to a folder and their paths printed,
HTML by its text/plain sibling), the last value, an error as its traceback,
and the exit code a call's status maps to."""

from __future__ import annotations

import pathlib
import sys
from typing import BinaryIO

from sandbox_mesh.display import EXIT_MESH, EXIT_TIMEOUT, write_under
from sandbox_mesh.session_records import CellEvent, CellFinished, CellOutcome, CellOutput, CellValue, ValuePart
from sandbox_mesh.sessions import CellStream

# `session run`'s exit codes by the call's status (README, "sandboxctl session").
EXIT_CELL_ERROR = 1
EXIT_KERNEL_DIED = 137  # as a process killed by SIGKILL: out of memory, most often
CELL_EXIT_CODES = {
    "ok": 0,
    "error": EXIT_CELL_ERROR,
    "timeout": EXIT_TIMEOUT,
    "kernel_died": EXIT_KERNEL_DIED,
    "session_ended": EXIT_MESH,
}
IMAGE_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/svg+xml": "svg"}
STATUS_NOTES = {
    "timeout": "the call reached its time limit and was interrupted; the session goes on",
    "kernel_died": "the interpreter died (out of memory?); the next call starts a fresh one, files kept",
    "session_ended": "the session has ended",
}


def exit_code_of(outcome: CellOutcome) -> int:
    return CELL_EXIT_CODES.get(outcome.status, EXIT_MESH)


class CellPrinter:
    """Prints one call after another. Parts of one display (a figure's
    text/plain and image/png, a table's text/html and text/plain) come one
    after another; a display ends when a MIME type repeats, the last value
    starts, output is printed, or the call ends."""

    def __init__(self, images_dir: pathlib.Path, out: BinaryIO | None = None, err: BinaryIO | None = None):
        self.images_dir = images_dir
        self.out = out or sys.stdout.buffer
        self.err = err or sys.stderr.buffer
        self._display: list[ValuePart] = []
        self._images = 0
        self._execution_id = ""
        self._at_line_start = True

    def follow(self, stream: CellStream) -> CellOutcome | None:
        """Shows the call's events as they come. The first Ctrl-C interrupts
        the call (the interpreter's KeyboardInterrupt) and waits for its end;
        a second stops waiting (the call runs on in the session): None."""
        interrupted = False
        while True:
            try:
                for event in stream:
                    self.event(event)
                return stream.outcome
            except KeyboardInterrupt:
                if interrupted:
                    stream.abandon()
                    self.note("stopped waiting; the call runs on in the session")
                    return None
                interrupted = True
                self.note("interrupting the call (Ctrl-C again to stop waiting)")
                if not stream.interrupt():
                    self.note("nothing to interrupt: the call had not started or has ended")

    def event(self, event: CellEvent) -> None:
        if isinstance(event, CellOutput):
            self._flush_display()
            target = self.out if event.stream == "stdout" else self.err
            target.write(event.data)
            target.flush()
            if event.data:
                self._at_line_start = event.data.endswith(b"\n")
        elif isinstance(event, CellValue):
            part = event.part
            if self._display and (
                part.last_value != self._display[0].last_value or part.mime_type in {p.mime_type for p in self._display}
            ):
                self._flush_display()
            self._display.append(part)
        elif isinstance(event, CellFinished):
            self._flush_display()
            self.finish(event.outcome)
        else:
            self._execution_id = event.execution_id

    def finish(self, outcome: CellOutcome) -> None:
        """After the call: its error, and a note on any status but ok/error."""
        self._end_line()
        if outcome.error is not None:
            error = outcome.error
            for frame in error.traceback:
                self.err.write(frame.rstrip("\n").encode() + b"\n")
            last = f"{error.name}: {error.value}" if error.value else error.name
            if not error.traceback or last not in error.traceback[-1]:
                self.err.write(last.encode() + b"\n")
            self.err.flush()
        if outcome.status in STATUS_NOTES:
            self.note(STATUS_NOTES[outcome.status])
        self._images = 0
        self._execution_id = ""

    def note(self, text: str) -> None:
        self._end_line()
        self.err.write(f"[{text}]\n".encode())
        self.err.flush()

    def _end_line(self) -> None:
        if not self._at_line_start:
            self.out.write(b"\n")
            self.out.flush()
            self._at_line_start = True

    def _flush_display(self) -> None:
        parts, self._display = self._display, []
        if not parts:
            return
        by_mime = {p.mime_type: p for p in parts}
        image = next((p for p in parts if p.mime_type in IMAGE_EXTENSIONS), None)
        self._end_line()
        if image is not None:
            self.out.write(f"[image saved: {self._save(image)}]\n".encode())
        elif "text/plain" in by_mime:
            prefix = "Out: " if parts[0].last_value else ""
            self.out.write(f"{prefix}{by_mime['text/plain'].text.rstrip()}\n".encode())
        else:
            shown = ", ".join(f"{p.mime_type} ({len(p.data)} bytes)" for p in parts)
            self.out.write(f"[{shown}: no text form]\n".encode())
        self.out.flush()

    def _save(self, part: ValuePart) -> pathlib.Path:
        self._images += 1
        name = f"{self._execution_id or 'call'}-{self._images}.{IMAGE_EXTENSIONS[part.mime_type]}"
        return write_under(self.images_dir, name, [part.data])
