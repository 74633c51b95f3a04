"""The spawner's end of the runner hand-off: programs handed to the
container's runner over a unix socket in the workspace instead of one
`docker exec` each.

The runner (images/runtime/runner.py, `serve` mode) listens on
`<workspace>/.runner/runner.sock`, accepts exactly one connection, the
spawner's, made before any tenant code runs, and then removes the socket.
Each program is one request (length, then marshal data); the runner answers with frames
(header "!BI": kind, payload length): 1 stdout, 2 stderr, 3 exit code
("!i"), the exit frame last.

The runner runs with the code's privileges (the code may kill, replace or
ptrace it), so whatever arrives here is trusted only about this one
execution: frames are parsed within fixed bounds, a malformed one ends the
program as a protocol violation (never an exception, never an allocation
beyond the bound), and the peer must be the sandbox user. Limits, timeouts
and cancel of executions stay outside: the spawner kills the container,
which ends the connection. A session's call is interrupted by a request
sent while it runs (`interrupt`, docs/sessions.md).
"""

from __future__ import annotations

import errno
import marshal
import os
import pathlib
import socket
import stat
import struct
import time
from collections.abc import Callable, Iterator

from services.spawner.sandbox import NO_EXIT_CODE, RUNNER_COMMAND, SANDBOX_UID, STDERR, STDOUT, WORKSPACE

RUNNER_DIR = ".runner"
SOCKET_NAME = "runner.sock"
SOCKET_IN_CONTAINER = f"{WORKSPACE}/{RUNNER_DIR}/{SOCKET_NAME}"

# A request: its length, then the request as marshal data (the runner
# imports no json: every sandbox pays for what the runner imports).
REQUEST_HEADER = struct.Struct("!I")
MARSHAL_VERSION = 2
FRAME_HEADER = struct.Struct("!BI")
EXIT_PAYLOAD = struct.Struct("!i")
KIND_STDOUT, KIND_STDERR, KIND_EXIT = 1, 2, 3
_STREAMS = {KIND_STDOUT: STDOUT, KIND_STDERR: STDERR}
# A session's cell (images/runtime/cellrelay.py): display part, error, last
# value part, then the end frame.
KIND_DISPLAY, KIND_ERROR, KIND_CELL_END, KIND_RESULT = 4, 5, 6, 7
CELL_KINDS = (KIND_STDOUT, KIND_STDERR, KIND_DISPLAY, KIND_ERROR, KIND_RESULT)
# The runner sends at most 64 KiB a frame; anything past this is a violation.
MAX_PAYLOAD_BYTES = 1024 * 1024

# Waiting for the socket: short pauses first (the runner listens within tens
# of milliseconds of the container's start), then longer ones.
FIRST_PAUSE_SECONDS = 0.001
LONGEST_PAUSE_SECONDS = 0.02
ALIVE_CHECK_SECONDS = 0.1
# Not there (yet): the runner has not created its directory or socket, or has
# bound but not yet listened.
_NOT_LISTENING = (FileNotFoundError, ConnectionRefusedError)
_PEER_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class HandoffError(Exception):
    pass


# A Python sandbox's PID 1 is an interpreter started ahead of the first
# program that forks and serves as the runner (prestart.py): Python's start-up
# is most of a warm hello world's first byte, and one start-up serves both.
# Node has none (its programs start when they arrive).
PRESTART_COMMAND = ("python3", "/opt/sandbox/prestart.py")


def runner_command(language: str, socket_in_container: str = SOCKET_IN_CONTAINER) -> list[str]:
    """The container's command: the runner serving on the given socket, with
    Python's interpreter started ahead."""
    if language == "python":
        return [*PRESTART_COMMAND, socket_in_container]
    return [*RUNNER_COMMAND, "serve", socket_in_container]


def connect(workspace_path: pathlib.Path, timeout_seconds: float, alive: Callable[[], bool]) -> RunnerConnection:
    """Connects to the runner of the container whose workspace is
    `workspace_path`, waiting up to `timeout_seconds` for it to listen;
    `alive()` says whether the container is still running."""
    now = time.monotonic()
    deadline = now + timeout_seconds
    next_alive_check = now + ALIVE_CHECK_SECONDS
    pause = FIRST_PAUSE_SECONDS
    while (sock := _try_connect(workspace_path)) is None:
        now = time.monotonic()
        if now >= deadline:
            raise HandoffError(f"the runner did not listen within {timeout_seconds:g}s")
        if now >= next_alive_check:
            if not alive():
                raise HandoffError("the container stopped before its runner listened")
            next_alive_check = now + ALIVE_CHECK_SECONDS
        time.sleep(min(pause, deadline - now))
        pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
    try:
        _check_peer(sock)
    except BaseException:
        sock.close()
        raise
    return RunnerConnection(sock)


def _try_connect(workspace_path: pathlib.Path) -> socket.socket | None:
    """A connection to the runner's socket, or None while it is not there.
    The path is reached through a descriptor of the directory, so its length
    does not matter (sun_path holds 107 bytes) and a symlink planted in place
    of the directory is never followed."""
    flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        directory = os.open(workspace_path / RUNNER_DIR, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:  # ENOTDIR for a symlink or a file
        raise HandoffError(f"the workspace's {RUNNER_DIR} is not a directory ({exc.strerror})") from exc
    try:
        try:
            mode = os.stat(SOCKET_NAME, dir_fd=directory, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return None
        if not stat.S_ISSOCK(mode):
            raise HandoffError(f"the workspace's {RUNNER_DIR}/{SOCKET_NAME} is not a socket")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(f"/proc/self/fd/{directory}/{SOCKET_NAME}")
        except _NOT_LISTENING:
            sock.close()
            return None
        except OSError as exc:
            sock.close()
            raise HandoffError(f"cannot connect to the runner: {exc.strerror}") from exc
        return sock
    finally:
        os.close(directory)


def _check_peer(sock: socket.socket) -> None:
    credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEER_CREDENTIALS.size)
    _pid, uid, _gid = _PEER_CREDENTIALS.unpack(credentials)
    if uid != SANDBOX_UID:
        raise HandoffError(f"the runner's socket belongs to uid {uid}, not the sandbox user")


class RunnerConnection:
    """The one connection to a container's runner; one program at a time."""

    def __init__(self, sock: socket.socket):
        self._socket = sock
        self._program: RunnerProgram | RunnerCell | None = None
        self._usable = True

    def start(self, argv: list[str], environment: dict[str, str], workdir: str, stdin: str | None) -> RunnerProgram:
        """Hands the runner a program; HandoffError if one is still running
        or the connection is closed or broken."""
        if self._program is not None and not self._program.finished:
            raise HandoffError("a program is still running on this connection")
        if not self._usable:
            raise HandoffError("the connection to the runner has ended")
        request = {"argv": argv, "env": environment, "cwd": workdir, "stdin": stdin}
        payload = marshal.dumps(request, MARSHAL_VERSION)
        message = REQUEST_HEADER.pack(len(payload)) + payload
        program = RunnerProgram(self._socket, self._program_ended)
        self._program = program
        if self._has_unrequested_data():
            # Frames nobody asked for: the runner is out of step, or not the runner.
            program.violation = "the runner sent data before the program was requested"
            program.finished = True
            self._usable = False
            return program
        try:
            self._socket.sendall(message)
        except OSError as exc:
            self._usable = False
            raise HandoffError(f"cannot hand the program to the runner: {exc.strerror or exc}") from exc
        return program

    def start_cell(self, code: str, timeout_ms: int) -> RunnerCell:
        """Hands the runner a session's cell (docs/sessions.md); the same
        rules as start()."""
        return self._start_cell({"kind": "cell", "code": code, "timeout_ms": timeout_ms})

    def start_restart(self) -> RunnerCell:
        """Has the runner start a fresh kernel for the session; it ends as a
        cell does (status "ok" once the kernel is ready)."""
        return self._start_cell({"kind": "restart"})

    def interrupt(self) -> bool:
        """Asks the runner to interrupt the running program or cell (kill
        the program, interrupt the kernel); the caller makes sure one was
        handed over and has not been read to its end by another thread
        (one arriving after the end is ignored by the runner)."""
        if not self._usable:
            return False
        payload = marshal.dumps({"kind": "interrupt"}, MARSHAL_VERSION)
        try:
            self._socket.sendall(REQUEST_HEADER.pack(len(payload)) + payload)
        except OSError:
            return False  # the connection ended: so does the call
        return True

    def _start_cell(self, request: dict) -> RunnerCell:
        if self._program is not None and not self._program.finished:
            raise HandoffError("a program is still running on this connection")
        if not self._usable or self._has_unrequested_data():
            self._usable = False
            raise HandoffError("the connection to the runner has ended")
        cell = RunnerCell(self._socket, self._program_ended)
        self._program = cell
        payload = marshal.dumps(request, MARSHAL_VERSION)
        try:
            self._socket.sendall(REQUEST_HEADER.pack(len(payload)) + payload)
        except OSError as exc:
            self._usable = False
            raise HandoffError(f"cannot hand the cell to the runner: {exc.strerror or exc}") from exc
        return cell

    def _has_unrequested_data(self) -> bool:
        try:
            return bool(self._socket.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except BlockingIOError:
            return False
        except OSError:
            return False  # a reset connection; the program's stream will end at once

    def alive(self) -> bool:
        """Whether the runner is still there and quiet, as a waiting one is
        (asked without blocking)."""
        if not self._usable:
            return False
        try:
            self._socket.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return False  # hung up, or sent what nobody asked for
        except BlockingIOError:
            return True  # nothing to read, connection open
        except OSError:
            return False

    def _program_ended(self, completed: bool) -> None:
        # A program whose exit frame never came leaves the stream out of step.
        if not completed:
            self._usable = False

    def close(self) -> None:
        self._usable = False
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise
        finally:
            self._socket.close()


class RunnerProgram:
    """One program run by the runner; the same surface as sandbox.ExecHandle."""

    def __init__(self, sock: socket.socket, on_end: Callable[[bool], None]):
        self._socket = sock
        self._on_end = on_end
        self._exit_code = NO_EXIT_CODE
        self.started_at = 0.0
        self.finished_at = 0.0
        self.finished = False
        self.violation: str | None = None

    def stream(self) -> Iterator[tuple[int, bytes]]:
        """Yields (STDOUT|STDERR, bytes) as the program writes them; ends at
        its exit frame, at the end of the connection, or at a violation."""
        self.started_at = time.monotonic()
        completed = False
        try:
            while not self.finished:
                header = self._read_exactly(FRAME_HEADER.size)
                if header is None:
                    return
                kind, length = FRAME_HEADER.unpack(header)
                self.violation = _frame_violation(kind, length)
                if self.violation is not None:
                    return
                payload = self._read_exactly(length)
                if payload is None:
                    return
                if kind == KIND_EXIT:
                    (self._exit_code,) = EXIT_PAYLOAD.unpack(payload)
                    completed = True
                    return
                if payload:
                    yield _STREAMS[kind], payload
        finally:
            self.finished = True
            self.finished_at = time.monotonic()
            self._on_end(completed)

    def exit_code(self) -> int:
        """The program's exit code; NO_EXIT_CODE if the connection ended
        before its exit frame (container killed, runner killed) or the
        runner broke the protocol."""
        return self._exit_code

    def _read_exactly(self, size: int) -> bytes | None:
        """`size` bytes, or None if the connection ends first. Blocks while
        the runner is silent (the spawner kills the container on timeout)."""
        buffer = bytearray(size)
        view = memoryview(buffer)
        received = 0
        while received < size:
            try:
                count = self._socket.recv_into(view[received:])
            except OSError:
                count = 0  # reset by a killed container: the same as its end
            if count == 0:
                return None
            received += count
        return bytes(buffer)


def _frame_violation(kind: int, length: int) -> str | None:
    if kind not in (KIND_STDOUT, KIND_STDERR, KIND_EXIT):
        return f"unknown frame kind {kind}"
    if length > MAX_PAYLOAD_BYTES:
        return f"frame of {length} bytes, over the bound of {MAX_PAYLOAD_BYTES}"
    if kind == KIND_EXIT and length != EXIT_PAYLOAD.size:
        return f"exit frame of {length} bytes, not {EXIT_PAYLOAD.size}"
    return None


class RunnerCell:
    """One cell run by the runner's kernel driver: its frames (kind,
    payload) until the cell's end frame, each within the same bounds."""

    def __init__(self, sock: socket.socket, on_end: Callable[[bool], None]):
        self._socket = sock
        self._on_end = on_end
        self.finished = False
        self.violation: str | None = None
        self.end: bytes | None = None  # the end frame's JSON payload

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """Yields (kind, payload) of kinds CELL_KINDS; ends at the end frame
        (kept in `end`), at the end of the connection, or at a violation."""
        completed = False
        try:
            while True:
                header = _read_exactly(self._socket, FRAME_HEADER.size)
                if header is None:
                    return
                kind, length = FRAME_HEADER.unpack(header)
                if (kind not in CELL_KINDS and kind != KIND_CELL_END) or length > MAX_PAYLOAD_BYTES:
                    self.violation = f"cell frame of kind {kind} and {length} bytes"
                    return
                payload = _read_exactly(self._socket, length)
                if payload is None:
                    return
                if kind == KIND_CELL_END:
                    self.end, completed = payload, True
                    return
                yield kind, payload
        finally:
            self.finished = True
            self._on_end(completed)


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        try:
            count = sock.recv_into(view[received:])
        except OSError:
            count = 0
        if count == 0:
            return None
        received += count
    return bytes(buffer)
