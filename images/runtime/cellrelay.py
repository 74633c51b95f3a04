"""The runner's side of a session's cells (docs/sessions.md): the first cell
starts cells.py, beside this file, which drives the session's Jupyter
kernel; each cell is one request line written to it, and its frames are
relayed to the spawner as they come, within the bounds the spawner checks.

request  {"kind": "cell", "code": "...", "timeout_ms": N} (marshal, from the spawner)
frames   1 stdout, 2 stderr, 4 display part, 5 error, 7 last value part,
         6 the cell's end (JSON), always last

A driver that dies, or sends a frame outside those bounds, is killed with
its kernel and the cell ends {"status": "kernel_died"}; the next cell starts
a new driver, so a fresh interpreter with the session's files kept. The
runner parses the request (runner.parse_cell) and imports this module when
a session's first cell arrives.

While a cell runs, the spawner's connection is watched too: its one request
then is {"kind": "interrupt"} (a cancel), passed on to the driver as
SIGUSR1 once the driver's frame 8 said the cell has started (never after its
end: an interrupt cannot reach the next cell). {"kind": "restart"} between cells has the driver start a fresh
kernel (a new driver when there is none), and ends like a cell.
"""

import json
import os
import select
import signal
import struct
import subprocess
import sys

FRAME_HEADER = struct.Struct("!BI")
CELL_KINDS = (1, 2, 4, 5, 7)
CELL_END = 6
CELL_STARTED = 8  # the driver's word to the runner alone: interrupts may be passed on now
MAX_FRAME_BYTES = 1024 * 1024
KERNEL_DIED = json.dumps({"status": "kernel_died", "execution_count": 0}).encode()
WORKING_DIRECTORY = "/workspace/code"  # as for a program: the staged files, writable


def read_exactly(fd: int, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


# The first cell of a fresh driver when a restart finds none.
START_CELL = {"kind": "cell", "code": "", "timeout_ms": 60_000}


class NoRequests:
    """The spawner's side while a cell runs, when nobody watches it."""

    fd = -1

    def read(self) -> dict | None:
        return None


class CellRelay:
    def __init__(self, reaper, send, requests=None) -> None:
        self.reaper = reaper  # runner.Reaper: keeps the driver's status
        self.send = send  # (kind, payload) to the spawner
        # The spawner's connection: `fd` to poll, `read()` its next request
        # (None: it hung up or broke the protocol; it is not read again).
        self.requests = requests or NoRequests()
        self.driver: subprocess.Popen | None = None
        # The running cell's "started" frame has come; an interrupt asked
        # for before it is passed on then.
        self.started = False
        self.interrupt_pending = False

    def restart(self) -> None:
        """A fresh kernel: the driver's own restart, or a new driver."""
        if self.driver is not None and self.reaper.status(self.driver.pid) is None:
            self.run({"kind": "restart"})
        else:
            self.run(START_CELL)

    def interrupt(self) -> None:
        if self.driver is not None and self.reaper.status(self.driver.pid) is None:
            try:
                os.kill(self.driver.pid, signal.SIGUSR1)
            except OSError:
                pass  # it is gone: its cell ends kernel_died

    def wait_readable(self, output: int) -> None:
        """Returns once the driver's output is readable, passing on the
        spawner's interrupts meanwhile."""
        while self.requests.fd >= 0:
            ready, _, _ = select.select([output, self.requests.fd], [], [])
            if self.requests.fd in ready:
                request = self.requests.read()
                if request is not None and request.get("kind") == "interrupt":
                    if self.started:
                        self.interrupt()
                    else:
                        self.interrupt_pending = True
            if output in ready:
                return

    def run(self, cell: dict) -> None:
        """Hands one cell to the driver and relays its frames until its end."""
        self.started = self.interrupt_pending = False
        try:
            if self.driver is not None and self.reaper.status(self.driver.pid) is not None:
                self.stop_driver()  # it exited after its kernel died
            if self.driver is None:
                # Started with SIGUSR1 blocked (the mask is inherited): an
                # interrupt sent before the driver's handler is set up waits
                # for it instead of killing the driver.
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
                try:
                    self.driver = self.start_driver()
                finally:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
            self.driver.stdin.write(json.dumps(cell).encode() + b"\n")
            self.driver.stdin.flush()
            output = self.driver.stdout.fileno()
            while True:
                self.wait_readable(output)
                header = read_exactly(output, FRAME_HEADER.size)
                if header is None:
                    break
                kind, length = FRAME_HEADER.unpack(header)
                if (kind not in CELL_KINDS and kind not in (CELL_END, CELL_STARTED)) or length > MAX_FRAME_BYTES:
                    break
                payload = read_exactly(output, length)
                if payload is None:
                    break
                if kind == CELL_STARTED:
                    self.started = True
                    if self.interrupt_pending:
                        self.interrupt()
                    continue
                self.send(kind, payload)
                if kind == CELL_END:
                    if b'"kernel_died"' in payload:
                        self.stop_driver()  # the next cell starts a fresh one
                    return
        except (OSError, ValueError):
            pass  # the driver is gone or could not start
        self.stop_driver()
        self.send(CELL_END, KERNEL_DIED)

    def start_driver(self) -> subprocess.Popen:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cells.py")
        self.reaper.expect()
        try:
            driver = subprocess.Popen(
                [sys.executable, script],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=WORKING_DIRECTORY,
                close_fds=True,
                restore_signals=True,
                start_new_session=True,  # its own group: killed with whatever it started
            )
        except OSError:
            self.reaper.watch(None)
            raise
        self.reaper.watch(driver.pid)
        return driver

    def stop_driver(self) -> None:
        driver, self.driver = self.driver, None
        if driver is None:
            return
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except OSError:
            pass
        for pipe in (driver.stdin, driver.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        driver.returncode = 0  # never waited for by Popen: the pid may be reused
        self.reaper.forget(driver.pid)
