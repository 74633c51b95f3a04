#!/usr/bin/env python3
"""The in-container runner of the sandbox runtime image.

`runner.py hold` is the container's PID 1: it idles, reaps orphaned processes
(fork bombs leave many) and exits on SIGTERM. The spawner then runs each
program with `docker exec`, so exit codes come from the engine, not from
anything the sandboxed code could print.

`runner.py run [--stdin FILE] -- PROGRAM ARGS...` replaces itself with the
program, its standard input read from FILE (the spawner stages the request's
stdin there) or /dev/null.
"""

import os
import signal
import sys


def hold() -> None:
    def reap(_signum, _frame):
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    while True:
        signal.pause()


def run(argv: list[str]) -> None:
    stdin_path = os.devnull
    if argv[:1] == ["--stdin"]:
        stdin_path, argv = argv[1], argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.exit("runner: nothing to run")
    fd = os.open(stdin_path if os.path.exists(stdin_path) else os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    if fd != 0:
        os.close(fd)
    os.execvp(argv[0], argv)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: runner.py hold | run [--stdin FILE] -- PROGRAM ARGS...")
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "hold":
        hold()
    elif command == "run":
        run(rest)
    else:
        sys.exit(f"runner: unknown command {command!r}")


if __name__ == "__main__":
    main()
