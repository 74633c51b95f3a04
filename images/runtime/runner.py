#!/usr/bin/env python3
"""The in-container runner of the sandbox runtime image. It is PID 1, so in
every mode it reaps orphaned processes (fork bombs leave many) and exits 0 on
SIGTERM or SIGINT.

`runner.py hold` only idles: the spawner runs each program with `docker exec`,
so exit codes come from the engine.

`runner.py serve SOCKET` is the faster hand-off. It creates SOCKET's
directory (mode 0700), listens there, accepts exactly one connection (the
spawner's, made before any tenant code runs), then removes the socket so that
nothing can connect later. Over that connection, one program at a time:

  request  header struct "!I" (payload length, at most 16 MiB), then the
           request as `marshal` data (version 2):
           {"argv": [...], "env": {...}, "cwd": "...", "stdin": path or None}
           (env is laid over the runner's own environment; no stdin is
           /dev/null). A malformed or oversized request closes the connection.
  reply    frames: header struct "!BI" (kind, payload length), then payload.
           kind 1: stdout bytes, 2: stderr bytes, 3: exit code (struct "!i"),
           always the program's last frame. Exit codes are docker exec's:
           the program's code, 128+N if killed by signal N, 127 (not found)
           or 126 (cannot run) with a line on stderr if it could not start.

Output is forwarded as it arrives, one read (at most 64 KiB) at a time: a
slow reader blocks the runner, which blocks the program on its full pipe.
When the spawner closes the connection the runner goes back to holding.

A Python sandbox starts prestart.py, beside this file, instead: it forks an
interpreter that waits for the first program, imports this module and
serves as `serve SOCKET` does, handing that program to the interpreter
started ahead (one interpreter's start-up, paid before the program arrives,
for both). prestart.py runs the program exactly as the runner would have
started it, or execs it.

A session's cell is the other kind of request, {"kind": "cell", "code":
..., "timeout_ms": N}: it is handed to the session's kernel driver by
cellrelay.py, beside this file (docs/sessions.md); {"kind": "restart"} has
it start a fresh kernel. While a program or a cell runs, the one request
the runner reads is {"kind": "interrupt"}: the program's process group is
killed (SIGKILL), the cell's kernel interrupted (cellrelay.py). One that
arrives when nothing runs is ignored (it crossed the end on the way).

Every sandbox runs this file, so it imports only what costs nothing (C
modules, no enum, subprocess, json or socket wrappers): each import here is
CPU every execution pays. Started directly (node), it runs under `python3 -I
-S`; imported by prestart.py, it is loaded from the .pyc compiled into the
image.
cellrelay.py, which needs more, is imported when a session's first cell
arrives.
"""

import _signal
import _socket
import marshal
import os
import select
import struct
import sys
import time

REQUEST_HEADER = struct.Struct("!I")
FRAME_HEADER = struct.Struct("!BI")
EXIT_PAYLOAD = struct.Struct("!i")
STDOUT, STDERR, EXIT = 1, 2, 3
MAX_REQUEST_BYTES = 16 * 1024 * 1024
READ_BYTES = 64 * 1024
# A program's exit is reported once its pipes are closed, or, when a
# background process still holds them, once they have been quiet this long
# (but never later than the cap). docker exec waits up to about 2 s.
DRAIN_IDLE_SECONDS = 0.05
DRAIN_MAX_SECONDS = 2.0
SIGNAL_EXIT_BASE = 128
# What Popen's restore_signals resets in a child: the interpreter ignores
# them, and an exec keeps ignored signals ignored.
RESTORED_SIGNALS = tuple(getattr(_signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(_signal, name))
HANDLED_SIGNALS = (_signal.SIGCHLD, _signal.SIGTERM, _signal.SIGINT)


def exit_now(_signum, _frame):
    sys.exit(0)


def reap_orphans(_signum=None, _frame=None) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def hold() -> None:
    # Woken through the wakeup pipe, not pause(): a signal that lands just
    # before pause() would be handled late, or never.
    wakeup, writer = os.pipe()
    os.set_blocking(writer, False)
    _signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
    _signal.signal(_signal.SIGCHLD, reap_orphans)
    _signal.signal(_signal.SIGTERM, exit_now)
    _signal.signal(_signal.SIGINT, exit_now)
    reap_orphans()  # whatever exited before this handler was installed
    while True:
        os.read(wakeup, 4096)  # returns after any signal; its handler runs next


class Reaper:
    """Reaps every child on SIGCHLD and keeps only the statuses of the
    processes it watches (the program being run, the interpreter started
    ahead). While a process is being started, every status is kept (it may
    exit, and be reaped, before its pid is known)."""

    def __init__(self) -> None:
        self.watched: set[int] = set()
        self.catching = False
        self.statuses: dict[int, int] = {}

    def reap(self, _signum=None, _frame=None) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.catching or pid in self.watched:
                self.statuses[pid] = status

    def expect(self) -> None:
        self.catching = True

    def watch(self, pid: int | None) -> None:
        """Ends `expect`: keeps `pid`'s status (None: nothing was started)."""
        if pid is not None:
            self.watched.add(pid)  # first, so that a status reaped meanwhile is kept
        self.catching = False
        for other in [other for other in self.statuses if other not in self.watched]:
            del self.statuses[other]

    def forget(self, pid: int) -> None:
        self.watched.discard(pid)
        self.statuses.pop(pid, None)

    def status(self, pid: int) -> int | None:
        return self.statuses.get(pid)


def exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return SIGNAL_EXIT_BASE - code if code < 0 else code


class Program:
    """A started process: its pid and the read ends of its stdout and stderr."""

    def __init__(self, pid: int, stdout: int, stderr: int) -> None:
        self.pid, self.stdout, self.stderr = pid, stdout, stderr

    def close(self) -> None:
        for descriptor in (self.stdout, self.stderr):
            os.close(descriptor)


class StartFailed(Exception):
    """The program could not start: errno and the path it concerned (as Popen's
    OSError names it: the working directory, the stdin file, else argv[0])."""

    def __init__(self, error: int, path: str) -> None:
        self.error, self.path = error, path

    def report(self) -> tuple[int, bytes]:
        """Its exit code and stderr line, as a shell would put them."""
        code = 127 if self.error == 2 else 126  # ENOENT: not found; else cannot run
        return code, f"runner: {self.path}: {os.strerror(self.error)}\n".encode()


def start(argv: list, env: dict, cwd: str | None, stdin: str | None) -> Program:
    """Forks and execs `argv` with fresh stdout/stderr pipes, `stdin` (None:
    /dev/null), every other descriptor closed, and the signals
    the runner handles or the interpreter ignores back at their defaults, as
    Popen(close_fds=True, restore_signals=True) does. StartFailed if it
    could not start (the child's failure comes back over a pipe)."""
    try:
        stdin_fd = os.open(stdin or os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise StartFailed(exc.errno or 0, stdin or os.devnull) from None
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    fail_read, fail_write = os.pipe()  # close-on-exec: EOF means the exec worked
    pid = os.fork()
    if pid == 0:  # the child: nothing here may return
        try:
            for signum in HANDLED_SIGNALS + RESTORED_SIGNALS:
                _signal.signal(signum, _signal.SIG_DFL)
            _signal.set_wakeup_fd(-1)
            for target, source in ((0, stdin_fd), (1, out_write), (2, err_write)):
                os.dup2(source, target)
            os.closerange(3, fail_write)
            os.closerange(fail_write + 1, os.sysconf("SC_OPEN_MAX"))
            where = cwd or ""
            try:
                if cwd is not None:
                    os.chdir(cwd)
                where = argv[0]
                os.execvpe(argv[0], argv, env)
            except OSError as exc:
                os.write(fail_write, marshal.dumps((exc.errno or 0, where), 2))
        finally:
            os._exit(255)
    for descriptor in (stdin_fd, out_write, err_write, fail_write):
        os.close(descriptor)
    failure = b""
    while chunk := os.read(fail_read, 4096):
        failure += chunk
    os.close(fail_read)
    if failure:
        os.close(out_read)
        os.close(err_read)
        error, path = marshal.loads(failure)
        raise StartFailed(error, path)
    return Program(pid, out_read, err_read)


def start_watched(reaper: Reaper, argv: list, env: dict, cwd: str | None, stdin: str | None) -> Program:
    reaper.expect()
    try:
        program = start(argv, env, cwd, stdin)
    except BaseException:
        reaper.watch(None)
        raise
    reaper.watch(program.pid)
    return program


class Prestarted:
    """The interpreter started ahead of the first program (prestart.py,
    beside this file, forked it before this module was imported): its pipes
    are the program's, and one request written to its control pipe makes it
    run that program."""

    def __init__(self, program: Program, control: int, reaper: Reaper) -> None:
        self.program, self.control, self.reaper = program, control, reaper
        reaper.watch(program.pid)
        reaper.reap()  # it may have exited before the SIGCHLD handler was installed

    def hand(self, request: dict) -> Program | None:
        """The process now running `request`; None if the interpreter is gone
        (the caller starts the program itself)."""
        try:
            if self.reaper.status(self.program.pid) is not None:
                raise BrokenPipeError
            view = memoryview(marshal.dumps(request, 2))
            while view:
                view = view[os.write(self.control, view) :]
        except OSError:
            self.discard()
            return None
        finally:
            self._close_control()
        return self.program

    def discard(self) -> None:
        self._close_control()
        if self.reaper.status(self.program.pid) is None:
            os.kill(self.program.pid, _signal.SIGKILL)
        self.program.close()
        self.reaper.forget(self.program.pid)

    def _close_control(self) -> None:
        if self.control >= 0:
            os.close(self.control)
            self.control = -1


def parse_cell(request: dict) -> dict | None:
    code, timeout_ms = request.get("code"), request.get("timeout_ms")
    if request.get("kind") != "cell" or type(code) is not str:
        return None
    if type(timeout_ms) is not int or timeout_ms <= 0:
        return None
    return {"kind": "cell", "code": code, "timeout_ms": timeout_ms}


def parse_request(payload: bytes) -> dict | None:
    """The request, if it is a session's cell, restart or interrupt, or one
    a program can be started from: strings without NUL bytes and variable
    names without "=" (what Popen refused)."""
    try:
        request = marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return None
    if not isinstance(request, dict):
        return None
    if request.get("kind") in ("interrupt", "restart") and len(request) == 1:
        return {"kind": request["kind"]}
    if "kind" in request:
        return parse_cell(request)
    argv, env, cwd, stdin = (request.get(key) for key in ("argv", "env", "cwd", "stdin"))
    if not (isinstance(argv, list) and argv and all(type(arg) is str for arg in argv)):
        return None
    if not (isinstance(env, dict) and all(type(k) is str and type(v) is str for k, v in env.items())):
        return None
    if type(cwd) is not str or not (stdin is None or type(stdin) is str):
        return None
    strings = [*argv, *env, *env.values(), cwd, stdin or ""]
    if any("\0" in value for value in strings) or any(not name or "=" in name for name in env):
        return None
    return request


def listen_once(path: str) -> "_socket.socket":
    """The one connection ever accepted on `path`; the socket is gone after."""
    directory = os.path.dirname(path)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        if not os.path.isdir(directory) or os.path.islink(directory):
            sys.exit(f"runner: {directory} is not a directory")
        os.chmod(directory, 0o700)
    if os.path.lexists(path):
        os.unlink(path)
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(1)
        descriptor, _ = listener._accept()
    finally:
        listener.close()
    os.unlink(path)
    return _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, descriptor)


class Session:
    def __init__(self, connection, reaper: Reaper, wakeup: int, prestarted: Prestarted | None) -> None:
        self.connection = connection
        self.reaper = reaper
        self.wakeup = wakeup  # readable after any signal (set_wakeup_fd)
        self.prestarted = prestarted  # for the first program only
        self.cells = None  # cellrelay.CellRelay, from a session's first cell
        self.fd = connection.fileno()  # -1 once it has ended or broken the protocol

    def send(self, kind: int, payload: bytes) -> None:
        self.connection.sendall(FRAME_HEADER.pack(kind, len(payload)) + payload)

    def read(self) -> dict | None:
        """The spawner's next request; None (and `fd` -1: the connection is
        not read again) when it hung up or sent a malformed one."""
        header = self.receive(REQUEST_HEADER.size)
        (size,) = REQUEST_HEADER.unpack(header) if header is not None else (MAX_REQUEST_BYTES + 1,)
        payload = self.receive(size) if size <= MAX_REQUEST_BYTES else None
        request = parse_request(payload) if payload is not None else None
        if request is None:
            self.fd = -1
        return request

    def receive(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.connection.recv(min(size - len(data), READ_BYTES))
            if not chunk:
                return None
            data += chunk
        return data

    def serve(self) -> None:
        while self.fd >= 0:
            request = self.read()
            if request is None:
                return  # the spawner is done, or sent a malformed request: the connection is closed
            kind = request.get("kind")
            if kind == "interrupt":
                continue  # its program or cell had ended
            if kind is not None:
                self.run_cell(request)
            else:
                self.run(request)

    def run_cell(self, cell: dict) -> None:
        if self.prestarted is not None:  # a session: no program to start ahead for
            self.prestarted.discard()
            self.prestarted = None
        if self.cells is None:
            # Only sessions pay for this import (the runner runs with -I:
            # its own folder is not on sys.path).
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            from cellrelay import CellRelay

            self.cells = CellRelay(self.reaper, self.send, self)
        if cell["kind"] == "restart":
            self.cells.restart()
        else:
            self.cells.run(cell)

    def run(self, request: dict) -> None:
        program = None
        prestarted, self.prestarted = self.prestarted, None
        if prestarted is not None:
            program = prestarted.hand(request)
        if program is None:
            env = {**os.environ, **request["env"]}
            try:
                program = start_watched(self.reaper, request["argv"], env, request["cwd"], request["stdin"])
            except StartFailed as failed:
                code, line = failed.report()
                self.send(STDERR, line)
                self.send(EXIT, EXIT_PAYLOAD.pack(code))
                return
        try:
            code = self.forward(program)
        finally:
            program.close()
        self.reaper.forget(program.pid)
        self.send(EXIT, EXIT_PAYLOAD.pack(code))

    def forward(self, program: Program) -> int:
        """Streams the program's output until it has exited and its pipes
        are closed or quiet; returns its exit code."""
        poller = select.poll()
        kinds = {program.stdout: STDOUT, program.stderr: STDERR}
        for descriptor in (program.stdout, program.stderr, self.wakeup):
            poller.register(descriptor, select.POLLIN)
        connection = self.fd
        if connection >= 0:
            poller.register(connection, select.POLLIN)
        open_pipes = 2
        exited_at = last_output = 0.0
        while True:
            status = self.reaper.status(program.pid)
            timeout_ms = None
            if status is not None:
                now = time.monotonic()
                exited_at = exited_at or now
                quiet_until = max(exited_at, last_output) + DRAIN_IDLE_SECONDS
                timeout = min(quiet_until, exited_at + DRAIN_MAX_SECONDS) - now
                if open_pipes == 0 or timeout <= 0:
                    return exit_code(status)
                timeout_ms = max(1, int(timeout * 1000 + 0.999))
            for descriptor, _events in poller.poll(timeout_ms):
                if descriptor == self.wakeup:
                    self.drain_wakeup()
                    continue
                if descriptor == connection:
                    self.interrupted(program, poller, connection)
                    continue
                data = os.read(descriptor, READ_BYTES)
                if not data:
                    poller.unregister(descriptor)
                    open_pipes -= 1
                    continue
                self.send(kinds[descriptor], data)
                last_output = time.monotonic()

    def interrupted(self, program: Program, poller, connection: int) -> None:
        """The spawner's request during a program: an interrupt kills its
        process group (`timeout`, which runs a session's node calls, leads
        one of its own), else the program alone (not yet a leader, so it has
        started nothing). Anything else ends the reading of the connection."""
        request = self.read()
        if request is None or request.get("kind") != "interrupt":
            poller.unregister(connection)
            self.fd = -1
            return
        if self.reaper.status(program.pid) is None:
            try:
                os.killpg(program.pid, _signal.SIGKILL)
            except ProcessLookupError:
                try:
                    os.kill(program.pid, _signal.SIGKILL)
                except ProcessLookupError:
                    pass  # it has exited

    def drain_wakeup(self) -> None:
        try:
            while os.read(self.wakeup, 4096):
                pass
        except BlockingIOError:
            pass


def serve(socket_path: str, ahead: Program | None = None, control: int = -1) -> None:
    """Serves the one connection on `socket_path`; `ahead` (with its control
    pipe) is the interpreter prestart.py started ahead of the first program."""
    reaper = Reaper()
    wakeup, wakeup_writer = os.pipe()
    os.set_blocking(wakeup, False)
    os.set_blocking(wakeup_writer, False)
    _signal.set_wakeup_fd(wakeup_writer, warn_on_full_buffer=False)
    _signal.signal(_signal.SIGCHLD, reaper.reap)
    _signal.signal(_signal.SIGTERM, exit_now)
    _signal.signal(_signal.SIGINT, exit_now)
    # Started before the spawner can connect, so before any tenant code runs.
    prestarted = Prestarted(ahead, control, reaper) if ahead is not None else None
    connection = listen_once(socket_path)
    try:
        Session(connection, reaper, wakeup, prestarted).serve()
    except OSError:
        pass  # the spawner went away mid-program; the container is being killed
    finally:
        connection.close()
    hold()


def main() -> None:
    if len(sys.argv) == 2 and sys.argv[1] == "hold":
        hold()
    elif len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit("usage: runner.py hold | runner.py serve SOCKET_PATH")


if __name__ == "__main__":
    main()
