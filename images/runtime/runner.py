#!/usr/bin/env python3
"""The in-container runner of the sandbox runtime image.

`runner.py hold` is the container's PID 1: it idles, reaps orphaned processes
(fork bombs leave many) and exits on SIGTERM. The spawner then runs each
program with `docker exec`, so exit codes come from the engine, not from
anything the sandboxed code could print.
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


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: runner.py hold")
    command = sys.argv[1]
    if command == "hold":
        hold()
    else:
        sys.exit(f"runner: unknown command {command!r}")


if __name__ == "__main__":
    main()
