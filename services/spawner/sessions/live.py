"""One open session: its sandbox (made as an execution's, services/spawner/
provision.py) and the calls run in it, one at a time (docs/sessions.md).

A call runs on a worker thread of its own and puts its events into a bounded
channel the gRPC call drains, as an execution does: a caller that goes away
abandons the channel, and the worker still reads the call to its end, so the
runner's stream stays in step for the next call.

Python calls go to the kernel driver behind the runner (frames of a cell);
node calls run as programs, `timeout -s KILL T node -e CODE`, in the
session's working directory. Each call's timeout is enforced inside the
sandbox (the kernel is interrupted, the node program killed) so that the
session goes on; past it plus a grace period the spawner kills the sandbox
itself, and the session ends.

`interrupt` (a cancel) asks the runner to interrupt the running call: the
kernel gets KeyboardInterrupt, a node program is killed; the call ends
ERROR with the error named KeyboardInterrupt and the session goes on.
`restart` interrupts a running call, waits for its end, and has the runner
start a fresh kernel (files kept).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from sandbox.common.v1 import session_pb2 as cells
from services.common.channel import EventChannel
from services.spawner import handoff, install, sandbox
from services.spawner.errors import SessionBusy, SessionEnded, SessionNotStarted
from services.spawner.provision import Sandbox
from services.spawner.sessions.spec import SessionSpec

log = logging.getLogger(__name__)

_EVENT_QUEUE_SIZE = 64
# Past a call's timeout, how long the sandbox has to report the call's end
# (the kernel interrupted, or restarted) before the spawner ends the session.
BACKSTOP_GRACE_SECONDS = 15.0
_STATUSES = {
    "ok": cells.CELL_STATUS_OK,
    "error": cells.CELL_STATUS_ERROR,
    "timeout": cells.CELL_STATUS_TIMEOUT,
    "kernel_died": cells.CELL_STATUS_KERNEL_DIED,
}
_WORKING_DIRECTORY = f"{sandbox.WORKSPACE}/code"
_OUTPUT_CUT = b"\n[output limit reached; the rest of this call's output dropped]\n"
# Where node finds the packages installed at creation, as a program of an
# execution with packages does (the python kernel's path is set in
# images/runtime/cells.py).
_NODE_ENVIRONMENT = install.run_environment("node")
# `timeout -s KILL` reports a program it killed as 128+9 (so does the runner
# for a program it killed at an interrupt).
_KILLED_EXIT = 137
# A restart waits this long for an interrupted call to end (the kernel's
# grace to stop, 5 s, then a fresh kernel), and this long for the new kernel.
RESTART_WAIT_SECONDS = 20.0
RESTART_BACKSTOP_SECONDS = 90.0
_NODE_INTERRUPTED = cells.CellError(name="KeyboardInterrupt", value="the program was killed by an interrupt")


class LiveSession:
    def __init__(self, spec: SessionSpec, box: Sandbox, max_output_bytes: int, on_end: Callable[[LiveSession], None]):
        self.spec = spec
        self.box = box
        self.max_output_bytes = max_output_bytes
        self.on_end = on_end  # destroys the sandbox, frees the slot; called once
        self.created_at = time.monotonic()
        self.last_used_at = self.created_at
        self._lock = threading.Condition()  # notified when a call ends
        self._busy = False
        self._interrupted = False  # the running call is to be interrupted
        self._handed: handoff.RunnerConnection | None = None  # the runner runs the call
        self.ended_reason = ""

    @property
    def token(self) -> str:
        return self.box.token

    # ---- state -------------------------------------------------------------

    def busy(self) -> bool:
        with self._lock:
            return self._busy

    def expired(self, now: float) -> str:
        """Why it should end now ("" while it may live on)."""
        if now - self.created_at >= self.spec.lifetime_seconds:
            return "its maximum lifetime was reached"
        with self._lock:
            if not self._busy and now - self.last_used_at >= self.spec.idle_seconds:
                return "it was idle for its idle timeout"
        return ""

    def end(self, reason: str) -> bool:
        """Ends the session (its sandbox destroyed); False if it had ended."""
        with self._lock:
            if self.ended_reason:
                return False
            self.ended_reason = reason
        self.on_end(self)
        return True

    # ---- calls -------------------------------------------------------------

    def run(self, code: str, timeout_ms: int) -> EventChannel[cells.CellEvent]:
        """Starts one call; its events end with one result. SessionBusy while
        another runs, SessionEnded once the session has ended."""
        with self._lock:
            if self.ended_reason:
                raise SessionEnded(self.ended_reason)
            if self._busy:
                raise SessionBusy()
            self._busy = True
            self._interrupted = False
            self.last_used_at = time.monotonic()
        channel: EventChannel[cells.CellEvent] = EventChannel(_EVENT_QUEUE_SIZE)
        worker = threading.Thread(
            target=self._work, args=(code, timeout_ms, channel), name=f"session-{self.spec.session_key}", daemon=True
        )
        worker.start()
        return channel

    def run_now(self, code: str, timeout_ms: int) -> cells.CellResult:
        """Runs a call and waits for its result (the interpreter's start)."""
        result = cells.CellResult(status=cells.CELL_STATUS_SESSION_ENDED)
        for event in self.run(code, timeout_ms):
            if event.HasField("result"):
                result = event.result
        return result

    def _work(self, code: str, timeout_ms: int, channel: EventChannel[cells.CellEvent]) -> None:
        backstop = threading.Timer(
            timeout_ms / 1000 + BACKSTOP_GRACE_SECONDS, self.end, ("a call did not stop at its timeout",)
        )
        backstop.daemon = True
        started = time.monotonic()
        backstop.start()
        try:
            if self.spec.language == "python":
                result = self._python(code, timeout_ms, channel)
            else:
                result = self._node(code, timeout_ms, channel)
        except (handoff.HandoffError, OSError) as exc:
            log.warning("session %s: the call failed: %s", self.spec.session_key, exc)
            result = cells.CellResult(status=cells.CELL_STATUS_SESSION_ENDED, exit_code=sandbox.NO_EXIT_CODE)
        finally:
            backstop.cancel()
        result.duration_ms = int((time.monotonic() - started) * 1000)
        ended = result.status == cells.CELL_STATUS_SESSION_ENDED
        self._idle()
        if ended:
            self.end("its sandbox went away")
        try:
            channel.put(cells.CellEvent(result=result))
        finally:
            channel.close()

    def interrupt(self) -> bool:
        """Interrupts the running call; False when none runs."""
        with self._lock:
            if self.ended_reason or not self._busy:
                return False
            self._interrupted = True
            if self._handed is not None:  # else it is sent as soon as the call is handed over
                self._handed.interrupt()
        return True

    def restart(self) -> int:
        """A fresh interpreter, files kept; a running call is interrupted
        first. Returns how long it took (ms). SessionBusy if the call did not
        end in time, SessionEnded if the session has ended or its sandbox
        went away, SessionNotStarted if the new interpreter did not start."""
        started = time.monotonic()
        self.interrupt()
        with self._lock:
            self._lock.wait_for(lambda: not self._busy or self.ended_reason, RESTART_WAIT_SECONDS)
            if self.ended_reason:
                raise SessionEnded(self.ended_reason)
            if self._busy:
                raise SessionBusy()
            self._busy = True
            self._interrupted = False
        status = "ok"
        backstop = threading.Timer(RESTART_BACKSTOP_SECONDS, self.end, ("its interpreter did not restart",))
        backstop.daemon = True
        backstop.start()
        try:
            if self.spec.language == "python":  # node has no interpreter between calls
                cell = self._runner().start_restart()
                for _ in cell.frames():
                    pass
                status = str(_json(cell.end).get("status")) if cell.end is not None and not cell.violation else ""
        except (handoff.HandoffError, OSError) as exc:
            log.warning("session %s: the restart failed: %s", self.spec.session_key, exc)
            status = ""
        finally:
            backstop.cancel()
            self._idle()
        if not status:
            self.end("its sandbox went away")
            raise SessionEnded(self.ended_reason)
        if status != "ok":
            raise SessionNotStarted()
        return int((time.monotonic() - started) * 1000)

    def _handed_over(self, runner: handoff.RunnerConnection) -> None:
        """The call is now the runner's: an interrupt asked for meanwhile is sent."""
        with self._lock:
            self._handed = runner
            if self._interrupted:
                runner.interrupt()

    def _idle(self) -> None:
        with self._lock:
            self._busy = False
            self._handed = None
            self.last_used_at = time.monotonic()
            self._lock.notify_all()

    def _python(self, code: str, timeout_ms: int, channel: EventChannel[cells.CellEvent]) -> cells.CellResult:
        runner = self._runner()
        cell = runner.start_cell(code, timeout_ms)
        self._handed_over(runner)
        result = cells.CellResult()
        output = _OutputCap(self.max_output_bytes, channel)
        for kind, payload in cell.frames():
            if kind in (handoff.KIND_STDOUT, handoff.KIND_STDERR):
                output.write(kind, payload)
            elif kind in (handoff.KIND_DISPLAY, handoff.KIND_RESULT):
                part = _value_part(payload, last_value=kind == handoff.KIND_RESULT)
                if part is not None:
                    result.values.append(part)
                    channel.put(cells.CellEvent(value=part))
            elif kind == handoff.KIND_ERROR:
                result.error.CopyFrom(_error(payload))
        end = _json(cell.end)
        if cell.end is None or cell.violation:
            if cell.violation:
                log.warning("session %s: the runner broke the protocol: %s", self.spec.session_key, cell.violation)
            result.status = cells.CELL_STATUS_SESSION_ENDED
            result.exit_code = sandbox.NO_EXIT_CODE
            return result
        result.status = _STATUSES.get(str(end.get("status")), cells.CELL_STATUS_ERROR)
        count = end.get("execution_count")
        result.execution_count = count if isinstance(count, int) and 0 <= count < 2**31 else 0
        result.exit_code = 0 if result.status == cells.CELL_STATUS_OK else 1
        return result

    def _node(self, code: str, timeout_ms: int, channel: EventChannel[cells.CellEvent]) -> cells.CellResult:
        runner = self._runner()
        seconds = f"{timeout_ms / 1000:.3f}"
        argv = ["timeout", "-s", "KILL", seconds, "node", "-e", code]
        started = time.monotonic()
        program = runner.start(argv, _NODE_ENVIRONMENT, _WORKING_DIRECTORY, None)
        self._handed_over(runner)
        output = _OutputCap(self.max_output_bytes, channel)
        for stream, data in program.stream():
            output.write(handoff.KIND_STDOUT if stream == sandbox.STDOUT else handoff.KIND_STDERR, data)
        code_ = program.exit_code()
        if code_ == sandbox.NO_EXIT_CODE:
            return cells.CellResult(status=cells.CELL_STATUS_SESSION_ENDED, exit_code=code_)
        if code_ == _KILLED_EXIT and self._interrupted:
            return cells.CellResult(status=cells.CELL_STATUS_ERROR, error=_NODE_INTERRUPTED, exit_code=code_)
        if code_ == _KILLED_EXIT and time.monotonic() - started >= timeout_ms / 1000:
            return cells.CellResult(status=cells.CELL_STATUS_TIMEOUT, exit_code=code_)
        status = cells.CELL_STATUS_OK if code_ == 0 else cells.CELL_STATUS_ERROR
        return cells.CellResult(status=status, exit_code=code_)

    def _runner(self) -> handoff.RunnerConnection:
        if self.box.runner is None:
            raise handoff.HandoffError("the session's sandbox has no runner")
        return self.box.runner


class _OutputCap:
    """Forwards a call's stdout and stderr up to the cap, then drops the rest
    (the call goes on; its output is noted as cut)."""

    def __init__(self, cap: int, channel: EventChannel[cells.CellEvent]):
        self.left = cap
        self.channel = channel
        self.cut = False

    def write(self, kind: int, data: bytes) -> None:
        if self.left <= 0:
            if not self.cut:
                self.cut = True
                self.channel.put(
                    cells.CellEvent(stderr=b"\n[output limit reached; the rest of this call's output dropped]\n")
                )
            return
        data = data[: self.left]
        self.left -= len(data)
        self.channel.put(cells.CellEvent(stdout=data) if kind == handoff.KIND_STDOUT else cells.CellEvent(stderr=data))


def _value_part(payload: bytes, last_value: bool) -> cells.ValuePart | None:
    mime, separator, data = payload.partition(b"\0")
    if not separator or len(mime) > 255:
        return None
    return cells.ValuePart(mime_type=mime.decode("ascii", "replace"), data=data, last_value=last_value)


def _error(payload: bytes) -> cells.CellError:
    error = _json(payload)
    traceback = error.get("traceback")
    frames = [str(line) for line in traceback] if isinstance(traceback, list) else []
    return cells.CellError(name=str(error.get("name", "")), value=str(error.get("value", "")), traceback=frames)


def start_interpreter(box: Sandbox, timeout_ms: int) -> None:
    """Starts the Python interpreter of a warm sandbox no session has yet
    (an empty cell), so that the session taking it does not wait for it;
    SessionNotStarted when it does not start. Nothing of any tenant is in
    the sandbox: it is the image's interpreter, as a cold session's."""
    if box.runner is None:
        raise SessionNotStarted()
    cell = box.runner.start_cell("", timeout_ms)
    for _ in cell.frames():
        pass
    if cell.end is None or cell.violation or _json(cell.end).get("status") != "ok":
        raise SessionNotStarted()


def _json(payload: bytes | None) -> dict:
    """The runner's JSON, or {} for anything else (it is the code's to forge)."""
    try:
        value = json.loads(payload or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
