"""A real process on a pseudo-terminal, for `sandboxctl session`'s prompt:
keystrokes in, what the terminal shows out (escape sequences removed)."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import time

ESCAPES_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[=>]|\r")


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: str):
        pid, fd = pty.fork()
        if pid == 0:  # the child: nothing but exec (the parent has threads)
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        self.pid, self.fd = pid, fd
        self.raw = ""
        self.returncode: int | None = None

    @property
    def screen(self) -> str:
        return ESCAPES_RE.sub("", self.raw)

    def send(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def _read(self, wait: float) -> bool:
        """Reads what is there; False once the terminal is closed."""
        ready, _, _ = select.select([self.fd], [], [], wait)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed its side
            return False
        self.raw += data.decode(errors="replace")
        return bool(data)

    def expect(self, needle: str, timeout: float = 90, start: int = 0) -> int:
        """Waits until `needle` shows (after screen offset `start`); where it ends."""
        deadline = time.monotonic() + timeout
        while needle not in self.screen[start:]:
            if time.monotonic() > deadline or not self._read(0.2):
                raise AssertionError(f"{needle!r} never showed; the screen ends:\n{self.screen[-3000:]}")
        return self.screen.index(needle, start) + len(needle)

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read(0.2)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                os.close(self.fd)
                return self.returncode
        self.kill()
        raise AssertionError(f"the process did not end; the screen ends:\n{self.screen[-3000:]}")

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.returncode = -9
            os.close(self.fd)
