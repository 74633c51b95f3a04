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
"""

import json
import os
import selectors
import signal
import socket
import stat
import struct
import subprocess
import sys
import time

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
    """Reaps every child on SIGCHLD and keeps only the status of the program
    being run. Until Popen has returned its pid, every status is kept (the
    program may exit, and be reaped, before its pid is known)."""

    def __init__(self) -> None:
        self.program: int | None = None
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
            if self.catching or pid == self.program:
                self.statuses[pid] = status

    def expect_program(self) -> None:
        self.statuses.clear()
        self.catching = True

    def adopt(self, pid: int | None) -> None:
        self.program = pid  # first, so that a status reaped meanwhile is kept
        self.catching = False
        kept = self.statuses.pop(pid, None) if pid is not None else None
        self.statuses.clear()
        if kept is not None:
            self.statuses[pid] = kept

    def status(self) -> int | None:
        return self.statuses.get(self.program) if self.program is not None else None


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


class Session:
    def __init__(self, connection: socket.socket, reaper: Reaper, wakeup: socket.socket) -> None:
        self.connection = connection
        self.reaper = reaper
        self.wakeup = wakeup  # readable after any signal (signal.set_wakeup_fd)

    def send(self, kind: int, payload: bytes) -> None:
        self.connection.sendall(FRAME_HEADER.pack(kind, len(payload)) + payload)

    def serve(self) -> None:
        with self.connection.makefile("rb") as requests:
            while True:
                line = requests.readline(MAX_REQUEST_BYTES + 1)
                if not line:
                    return  # the spawner is done
                request = parse_request(line)
                if request is None or not self.run(request):
                    return  # malformed: the connection is closed

    def run(self, request: dict) -> bool:
        """Runs one program; False if the request turned out malformed."""
        self.reaper.expect_program()
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
            self.reaper.adopt(None)
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            self.send(STDERR, f"runner: {exc.filename or request['argv'][0]}: {exc.strerror}\n".encode())
            self.send(EXIT, EXIT_PAYLOAD.pack(code))
            return True
        except ValueError:  # a NUL byte in argv, env or a path
            self.reaper.adopt(None)
            return False
        self.reaper.adopt(process.pid)
        try:
            code = self.forward(process)
        finally:
            process.stdout.close()
            process.stderr.close()
        # Popen must never wait for this pid itself: it may be reused.
        process.returncode = code
        self.reaper.adopt(None)
        self.send(EXIT, EXIT_PAYLOAD.pack(code))
        return True

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
                status = self.reaper.status()
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


def serve(socket_path: str) -> None:
    reaper = Reaper()
    wakeup, wakeup_writer = socket.socketpair()
    wakeup.setblocking(False)
    wakeup_writer.setblocking(False)
    signal.set_wakeup_fd(wakeup_writer.fileno(), warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, reaper.reap)
    signal.signal(signal.SIGTERM, exit_now)
    signal.signal(signal.SIGINT, exit_now)
    connection = listen_once(socket_path)
    try:
        with connection:
            Session(connection, reaper, wakeup).serve()
    except OSError:
        pass  # the spawner went away mid-program; the container is being killed
    signal.set_wakeup_fd(-1)
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
