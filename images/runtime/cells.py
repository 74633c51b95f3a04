"""The cell driver of a Python session: a Jupyter client of one IPython
kernel (ipykernel) inside the sandbox, started by the runner on a session's
first cell (images/runtime/runner.py). See docs/sessions.md.

The kernel listens on ipc:// sockets in /tmp, so it needs no network; zmq
stays inside the container. The runner writes one request line per cell on
this process's stdin:

    {"kind": "cell", "code": "...", "timeout_ms": N}

and relays the frames written on stdout (header "!BI": kind, length) to the
spawner as they come:

    1 stdout text, 2 stderr text (UTF-8)
    4 a part of a displayed value, 7 a part of the cell's last value:
      payload = MIME type, NUL, bytes (images decoded from base64)
    5 the error: JSON {"name", "value", "traceback": [frame, ...]}
    8 the cell has started (the runner's alone: it sends interrupts after it)
    6 the end of the cell, always last:
      JSON {"status": "ok" | "error" | "timeout" | "kernel_died",
            "execution_count": N}

A cell past its timeout is interrupted (SIGINT: KeyboardInterrupt in the
kernel) and reported "timeout"; one that does not stop within a grace
period has its kernel restarted. SIGUSR1 from the runner (the spawner's
"interrupt" request, a cancel) interrupts the running cell the same way: it
ends with the kernel's own KeyboardInterrupt error, or, when it ignores the
interrupt for the grace period, with a fresh kernel and a KeyboardInterrupt
error saying so. The request line {"kind": "restart"} replaces the kernel by
a fresh one (files kept) and ends like a cell, status "ok". A kernel that dies is reported
"kernel_died" and this driver exits; the runner starts a new one (a fresh
interpreter, the session's files kept) for the next cell.
"""

import signal


class Interrupts:
    """SIGUSR1 from the runner: the running cell is to be interrupted. The
    runner sends it only after this cell's "started" frame, and one caught
    while no cell runs (sent as the previous one ended) is dropped. The
    runner starts this process with SIGUSR1 blocked; it is unblocked once
    this handler is set up, so an early one never kills this process
    (SIGUSR1's default)."""

    running = False
    requested = False

    @classmethod
    def catch(cls, _signum=None, _frame=None) -> None:
        if cls.running:
            cls.requested = True


signal.signal(signal.SIGUSR1, Interrupts.catch)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})  # the runner starts this process with it blocked

import base64  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import queue  # noqa: E402
import re  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from jupyter_client.manager import KernelManager  # noqa: E402

FRAME_HEADER = struct.Struct("!BI")
STDOUT, STDERR, DISPLAY, ERROR, END, RESULT = 1, 2, 4, 5, 6, 7
STARTED = 8  # for the runner only: the cell runs, interrupts now reach it
# The spawner refuses frames over 1 MiB; text is sent in smaller pieces and a
# larger image is left out with a note.
TEXT_FRAME_BYTES = 64 * 1024
MAX_PART_BYTES = 1024 * 1024 - 256
START_SECONDS = 60.0
INTERRUPT_GRACE_SECONDS = 5.0
# How soon an interrupt from the runner is acted on.
POLL_SECONDS = 0.1
KERNEL_DIR = "/tmp/.kernel"
KERNEL_ARGUMENTS = [
    "--InteractiveShell.colors=NoColor",
    "--HistoryManager.enabled=False",
]
BINARY_TYPES = ("image/png", "image/jpeg")
TEXT_TYPES = ("text/plain", "text/html", "text/markdown", "image/svg+xml", "application/json")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
IGNORED_INTERRUPT = {
    "name": "KeyboardInterrupt",
    "value": "the call ignored the interrupt; a fresh interpreter was started (files kept, variables lost)",
    "traceback": [],
}


class Frames:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, kind: int, payload: bytes) -> None:
        data = memoryview(FRAME_HEADER.pack(kind, len(payload)) + payload)
        while data:
            data = data[os.write(self.fd, data) :]

    def text(self, kind: int, text: str) -> None:
        data = text.encode("utf-8", "replace")
        for start in range(0, len(data), TEXT_FRAME_BYTES):
            self.send(kind, data[start : start + TEXT_FRAME_BYTES])

    def parts(self, kind: int, bundle: dict) -> None:
        for mime, value in bundle.items():
            if mime in BINARY_TYPES and isinstance(value, str):
                data = base64.b64decode(value)
            elif mime in TEXT_TYPES:
                data = (value if isinstance(value, str) else json.dumps(value)).encode("utf-8", "replace")
            else:
                continue
            if len(data) > MAX_PART_BYTES:
                self.text(STDERR, f"[{mime} of {len(data)} bytes left out: over {MAX_PART_BYTES} bytes]\n")
                continue
            self.send(kind, mime.encode() + b"\0" + data)

    def end(self, status: str, execution_count: int) -> None:
        Interrupts.running = False
        self.send(END, json.dumps({"status": status, "execution_count": execution_count}).encode())


PACKAGES_DIRECTORY = "/workspace/deps/python"


class Kernel:
    def __init__(self) -> None:
        os.makedirs(KERNEL_DIR, mode=0o700, exist_ok=True)
        self.manager = KernelManager(
            kernel_name="python3",
            transport="ipc",
            ip=os.path.join(KERNEL_DIR, "ipc"),
            connection_file=os.path.join(KERNEL_DIR, "kernel.json"),
        )
        # The inline backend turns figures into image/png display data (the
        # data-science image sets MPLBACKEND=Agg for one-shot programs). The
        # session's packages, installed at its creation, are where an
        # execution's program finds them (services/spawner/install.py).
        environment = {
            **os.environ,
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYTHONPATH": PACKAGES_DIRECTORY,
        }
        self.manager.start_kernel(extra_arguments=KERNEL_ARGUMENTS, env=environment)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=START_SECONDS)
        self.execution_count = 0

    def run(self, code: str, timeout_seconds: float, frames: Frames) -> bool:
        """Runs one cell, sends its frames; False if the kernel died."""
        Interrupts.requested = False
        Interrupts.running = True
        frames.send(STARTED, b"")
        msg_id = self.client.execute(code, store_history=bool(code.strip()), allow_stdin=False)
        deadline = time.monotonic() + timeout_seconds
        # The kernel ignores SIGINT until it runs the cell (ipykernel installs
        # its handler for the request): interrupts wait for execute_input.
        executing = interrupted = cancelled = False
        while True:
            if Interrupts.requested and executing and not interrupted:
                Interrupts.requested = False
                self.manager.interrupt_kernel()
                interrupted = cancelled = True
                deadline = time.monotonic() + INTERRUPT_GRACE_SECONDS
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not executing:
                remaining = POLL_SECONDS  # past its timeout before it began: interrupted once it does
            elif remaining <= 0:
                if interrupted:  # KeyboardInterrupt did not stop it: a fresh kernel
                    self.restart()
                    if cancelled:
                        frames.send(ERROR, json.dumps(IGNORED_INTERRUPT).encode())
                    frames.end("error" if cancelled else "timeout", self.execution_count)
                    return True
                self.manager.interrupt_kernel()
                interrupted = True
                deadline = time.monotonic() + INTERRUPT_GRACE_SECONDS
                continue
            try:
                message = self.client.get_iopub_msg(timeout=min(remaining, POLL_SECONDS))
            except queue.Empty:
                if not self.manager.is_alive():
                    frames.end("kernel_died", self.execution_count)
                    return False
                continue
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "execute_input":
                executing = True
            elif kind == "stream":
                frames.text(STDOUT if content.get("name") == "stdout" else STDERR, content.get("text", ""))
            elif kind == "execute_result":
                frames.parts(RESULT, content.get("data", {}))
            elif kind == "display_data":
                frames.parts(DISPLAY, content.get("data", {}))
            elif kind == "error":
                error = {
                    "name": content.get("ename", ""),
                    "value": content.get("evalue", ""),
                    "traceback": [_ANSI.sub("", line) for line in content.get("traceback", [])],
                }
                frames.send(ERROR, json.dumps(error).encode())
            elif kind == "status" and content.get("execution_state") == "idle":
                break
        status = self.reply_status(msg_id)
        frames.end("timeout" if interrupted and not cancelled else status, self.execution_count)
        return True

    def reply_status(self, msg_id: str) -> str:
        try:
            while True:
                reply = self.client.get_shell_msg(timeout=INTERRUPT_GRACE_SECONDS)
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    break
        except queue.Empty:
            return "error"
        content = reply["content"]
        self.execution_count = content.get("execution_count", self.execution_count) or self.execution_count
        return "ok" if content.get("status") == "ok" else "error"

    def restart(self) -> None:
        self.manager.restart_kernel(now=True)
        self.client.stop_channels()
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=START_SECONDS)
        self.execution_count = 0


def main() -> None:
    # Frames go to a private copy of stdout; the kernel (and anything else
    # this process starts) inherits /dev/null as its stdout and stderr.
    frames = Frames(os.dup(1))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    kernel = Kernel()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        if request.get("kind") == "restart":
            kernel.restart()
            frames.end("ok", kernel.execution_count)
        elif not kernel.run(request["code"], request["timeout_ms"] / 1000, frames):
            return
    kernel.manager.shutdown_kernel(now=True)


if __name__ == "__main__":
    main()
