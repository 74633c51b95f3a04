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

  request  one line of UTF-8 JSON ending in "\\n":
           {"argv": [...], "env": {...}, "cwd": "...", "stdin": path or null}
           (env is laid over the runner's own environment; null stdin is
           /dev/null). A malformed or oversized request closes the connection.
  reply    frames: header struct "!BI" (kind, payload length), then payload.
           kind 1: stdout bytes, 2: stderr bytes, 3: exit code (struct "!i"),
           always the program's last frame. Exit codes are docker exec's:
           the program's code, 128+N if killed by signal N, 127 (not found)
           or 126 (cannot run) with a line on stderr if it could not start.

Output is forwarded as it arrives, one read (at most 64 KiB) at a time: a
slow reader blocks the runner, which blocks the program on its full pipe.
When the spawner closes the connection the runner goes back to holding.

`runner.py serve SOCKET INTERPRETER` also starts INTERPRETER (python3) with
prestart.py, beside this file, before it listens, and hands it the first
program: an interpreter's start-up is then paid before the program arrives.
prestart.py runs the program exactly as Popen would have, or execs it.

A session's cell is the other kind of request, {"kind": "cell", ...}: it is
handed to the session's kernel driver by cellrelay.py (docs/sessions.md).
"""

import json
import marshal
import os
import selectors
import signal
import socket
import stat
import struct
import subprocess
import sys
import time

from cellrelay import CellRelay, parse_cell

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
    signal.signal(signal.SIGCHLD, reap_orphans)
    signal.signal(signal.SIGTERM, exit_now)
    signal.signal(signal.SIGINT, exit_now)
    reap_orphans()  # whatever exited before this handler was installed
    while True:
        signal.pause()


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


class Prestarted:
    """An interpreter started before its program is known (prestart.py,
    beside this file): its pipes are the program's, and one request written
    to its control pipe makes it run that program."""

    def __init__(self, interpreter: str, reaper: Reaper) -> None:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "prestart.py")) as file:
            source = file.read()
        read_end, self.control = os.pipe()
        reaper.expect()
        try:
            self.process = subprocess.Popen(
                [interpreter, "-c", source, str(read_end)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(read_end,),
                close_fds=True,
                restore_signals=True,
            )
        except OSError:
            reaper.watch(None)
            os.close(self.control)
            raise
        finally:
            os.close(read_end)
        reaper.watch(self.process.pid)
        self.reaper = reaper

    def hand(self, request: dict) -> subprocess.Popen | None:
        """The process now running `request`; None if the interpreter is gone
        (the caller starts the program itself)."""
        try:
            if self.reaper.status(self.process.pid) is not None:
                raise BrokenPipeError
            payload = marshal.dumps(request)
            view = memoryview(payload)
            while view:
                view = view[os.write(self.control, view) :]
        except OSError:
            self.discard()
            return None
        finally:
            self._close_control()
        return self.process

    def discard(self) -> None:
        self._close_control()
        if self.reaper.status(self.process.pid) is None:
            self.process.kill()
        self.process.stdout.close()
        self.process.stderr.close()
        self.process.returncode = 0  # never waited for by Popen: the pid may be reused
        self.reaper.forget(self.process.pid)

    def _close_control(self) -> None:
        if self.control >= 0:
            os.close(self.control)
            self.control = -1


def exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return SIGNAL_EXIT_BASE - code if code < 0 else code


def parse_request(line: bytes) -> dict | None:
    if not line.endswith(b"\n") or len(line) > MAX_REQUEST_BYTES:
        return None
    try:
        request = json.loads(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
        return None
    if not isinstance(request, dict):
        return None
    if "kind" in request:
        return parse_cell(request)
    argv, env, cwd, stdin = (request.get(key) for key in ("argv", "env", "cwd", "stdin"))
    if not (isinstance(argv, list) and argv and all(isinstance(arg, str) for arg in argv)):
        return None
    if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        return None
    if not isinstance(cwd, str) or not (stdin is None or isinstance(stdin, str)):
        return None
    return request


def listen_once(path: str) -> socket.socket:
    """The one connection ever accepted on `path`; the socket is gone after."""
    directory = os.path.dirname(path)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(directory).st_mode):
            sys.exit(f"runner: {directory} is not a directory")
        os.chmod(directory, 0o700)
    if os.path.lexists(path):
        os.unlink(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        connection, _ = listener.accept()
    os.unlink(path)
    return connection


def plainly_valid(request: dict) -> bool:
    """Whether Popen would accept the request's strings as they are (no NUL
    byte, no empty or "=" variable name): only such a request is handed to
    an interpreter started ahead, so that a refusal stays Popen's."""
    strings = [*request["argv"], *request["env"], *request["env"].values(), request["cwd"], request["stdin"] or ""]
    return all("\0" not in value for value in strings) and all(name and "=" not in name for name in request["env"])


class Session:
    def __init__(
        self, connection: socket.socket, reaper: Reaper, wakeup: socket.socket, prestarted: Prestarted | None
    ) -> None:
        self.connection = connection
        self.reaper = reaper
        self.wakeup = wakeup  # readable after any signal (signal.set_wakeup_fd)
        self.prestarted = prestarted  # for the first program only
        self.cells = CellRelay(reaper, self.send)  # a session's cells

    def send(self, kind: int, payload: bytes) -> None:
        self.connection.sendall(FRAME_HEADER.pack(kind, len(payload)) + payload)

    def serve(self) -> None:
        with self.connection.makefile("rb") as requests:
            while True:
                line = requests.readline(MAX_REQUEST_BYTES + 1)
                if not line:
                    return  # the spawner is done
                request = parse_request(line)
                if request is not None and "kind" in request:
                    if self.prestarted is not None:  # a session: no program to start ahead for
                        self.prestarted.discard()
                        self.prestarted = None
                    self.cells.run(request)
                elif request is None or not self.run(request):
                    return  # malformed: the connection is closed

    def run(self, request: dict) -> bool:
        """Runs one program; False if the request turned out malformed."""
        process = None
        prestarted, self.prestarted = self.prestarted, None
        if prestarted is not None and plainly_valid(request):
            process = prestarted.hand(request)
        elif prestarted is not None:
            prestarted.discard()
        if process is None:
            process = self.start(request)
        if process is None:
            return False
        if isinstance(process, int):
            return True  # it could not start; reported
        try:
            code = self.forward(process)
        finally:
            process.stdout.close()
            process.stderr.close()
        # Popen must never wait for this pid itself: it may be reused.
        process.returncode = code
        self.reaper.forget(process.pid)
        self.send(EXIT, EXIT_PAYLOAD.pack(code))
        return True

    def start(self, request: dict) -> subprocess.Popen | int | None:
        """The program started; its exit code (reported) if it could not
        start; None if the request turned out malformed."""
        self.reaper.expect()
        try:
            with open(request["stdin"] or os.devnull, "rb") as stdin:
                process = subprocess.Popen(
                    request["argv"],
                    stdin=stdin,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=request["cwd"],
                    env={**os.environ, **request["env"]},
                    close_fds=True,
                    restore_signals=True,
                )
        except OSError as exc:
            self.reaper.watch(None)
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            self.send(STDERR, f"runner: {exc.filename or request['argv'][0]}: {exc.strerror}\n".encode())
            self.send(EXIT, EXIT_PAYLOAD.pack(code))
            return code
        except ValueError:  # a NUL byte in argv, env or a path
            self.reaper.watch(None)
            return None
        self.reaper.watch(process.pid)
        return process

    def forward(self, process: subprocess.Popen) -> int:
        """Streams the program's output until it has exited and its pipes
        are closed or quiet; returns its exit code."""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout.fileno(), selectors.EVENT_READ, STDOUT)
            selector.register(process.stderr.fileno(), selectors.EVENT_READ, STDERR)
            selector.register(self.wakeup, selectors.EVENT_READ, None)
            open_pipes = 2
            exited_at = last_output = 0.0
            while True:
                status = self.reaper.status(process.pid)
                timeout = None
                if status is not None:
                    now = time.monotonic()
                    exited_at = exited_at or now
                    quiet_until = max(exited_at, last_output) + DRAIN_IDLE_SECONDS
                    timeout = min(quiet_until, exited_at + DRAIN_MAX_SECONDS) - now
                    if open_pipes == 0 or timeout <= 0:
                        return exit_code(status)
                for key, _ in selector.select(timeout):
                    if key.data is None:
                        self.drain_wakeup()
                        continue
                    data = os.read(key.fd, READ_BYTES)
                    if not data:
                        selector.unregister(key.fd)
                        open_pipes -= 1
                        continue
                    self.send(key.data, data)
                    last_output = time.monotonic()

    def drain_wakeup(self) -> None:
        try:
            while self.wakeup.recv(4096):
                pass
        except BlockingIOError:
            pass


def serve(socket_path: str, interpreter: str | None) -> None:
    reaper = Reaper()
    wakeup, wakeup_writer = socket.socketpair()
    wakeup.setblocking(False)
    wakeup_writer.setblocking(False)
    signal.set_wakeup_fd(wakeup_writer.fileno(), warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, reaper.reap)
    signal.signal(signal.SIGTERM, exit_now)
    signal.signal(signal.SIGINT, exit_now)
    # Started before the spawner can connect, so before any tenant code runs.
    prestarted = None
    if interpreter:
        try:
            prestarted = Prestarted(interpreter, reaper)
        except OSError:
            pass  # every program is started when it arrives
    connection = listen_once(socket_path)
    try:
        with connection:
            Session(connection, reaper, wakeup, prestarted).serve()
    except OSError:
        pass  # the spawner went away mid-program; the container is being killed
    signal.set_wakeup_fd(-1)
    hold()


def main() -> None:
    if len(sys.argv) == 2 and sys.argv[1] == "hold":
        hold()
    elif len(sys.argv) in (3, 4) and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else None)
    else:
        sys.exit("usage: runner.py hold | runner.py serve SOCKET_PATH [INTERPRETER]")


if __name__ == "__main__":
    main()
