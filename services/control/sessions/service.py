"""The session service (docs/sessions.md): opens a session on a spawner,
relays its calls, records each call as an execution of the session (admitted
against the tenant's quota like any execution), ends sessions. The gRPC
servicer (servicer.py) is a thin layer on this."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterator

import grpc
from grpc_status import rpc_status

from sandbox.common.v1 import execution_pb2 as common
from sandbox.common.v1 import session_pb2 as cells
from sandbox.control.v1 import control_pb2 as pb
from sandbox.spawner.v1 import spawner_pb2 as spb
from services.common.contract.errors import InvalidArgument
from services.common.contract.ids import check_id
from services.common.contract.install_failures import install_failure_of
from services.common.contract.languages import check_language
from services.common.contract.requests import check_files, check_packages, check_timeout_ms
from services.common.contract.runtimes import check_variant
from services.common.contract.sandbox_runtimes import RUNC, at_least
from services.common.contract.sessions import check_code, check_lifetimes
from services.control.errors import FailedPrecondition, InstallFailed, LimitExceeded, QuotaExceeded, Unavailable
from services.control.executions import statements
from services.control.executions.messages import usage_json
from services.control.executions.models import CANCELLED, COMPLETED, FAILED, Verdict
from services.control.executions.service import Admission, ExecutionService, new_execution_key
from services.control.pagination import PageRequest
from services.control.sessions import messages
from services.control.sessions.files import SessionFiles
from services.control.sessions.interrupts import RunningCalls
from services.control.sessions.models import CLOSED, OPEN, SessionRow
from services.control.sessions.models import FAILED as SESSION_FAILED
from services.control.sessions.ops import SessionOps
from services.control.sessions.store import SessionStore
from services.control.spawners import Spawner

log = logging.getLogger(__name__)

GENERATED_ID_BYTES = 8
MAX_PAGE_SIZE = 500
# Making a sandbox and starting its interpreter; then each call's slack past
# its timeout (the spawner's own backstop is shorter).
CREATE_TIMEOUT_SECONDS = 120.0
CALL_SLACK_SECONDS = 30.0
CLOSE_TIMEOUT_SECONDS = 30.0
# Beyond that when packages are installed: at least a spawner's install
# timeout (a spawner whose caller gave up closes the session it made).
INSTALL_TIMEOUT_SECONDS = 900.0
BUSY = "a call is already running in this session; one call at a time"


class SessionService(SessionOps):
    def __init__(self, sessions: SessionStore, executions: ExecutionService, max_open: int):
        self.sessions = sessions
        self.executions = executions
        self.store = executions.store
        self.pool = executions.relay.pool
        self.limits = executions.limits
        self.max_open = max_open  # each tenant's open sessions at once
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # keys of sessions with a call running here
        self.files = SessionFiles(sessions, self.pool, self.limits.requests, self._fail)
        self.running = RunningCalls()  # their calls, and which were interrupted (ops.py)
        executions.interrupt_session_call = self.interrupt_call  # CancelExecution of a call

    # ---- sessions ------------------------------------------------------------

    def create(self, tenant: str, request: pb.CreateSessionRequest) -> pb.Session:
        session_id = request.session_id or f"se-{secrets.token_hex(GENERATED_ID_BYTES)}"
        check_id("session_id", session_id)
        language = check_language(request.language)
        variant = check_variant(language, request.variant)
        timeout_ms = check_timeout_ms(
            request.limits.timeout_ms, default=self.limits.default_timeout_ms, maximum=self.limits.max_timeout_ms
        )
        idle, lifetime = check_lifetimes(request.idle_timeout_seconds, request.max_lifetime_seconds)
        # Checked as Execute's are: the same caps, the same field names.
        check_files("files", request.files, self.limits.requests, required=False)
        packages = check_packages(language, request.packages, self.limits.requests.max_packages)
        if at_least(RUNC, self.executions.runtimes.minimum(tenant)) != RUNC:
            raise FailedPrecondition(
                "session", "sessions run on runc only, and this tenant always runs on gvisor", kind="RUNTIME"
            )
        usage = self.store.quota(tenant)
        if usage.slot_seconds_used >= usage.limits.daily_slot_seconds:
            raise QuotaExceeded(
                tenant,
                f"tenant:{tenant}/daily_slot_seconds",
                f"{usage.slot_seconds_used:.1f} of {usage.limits.daily_slot_seconds:g} slot seconds used today",
            )
        if self.sessions.taken(tenant, session_id):
            raise FailedPrecondition("session_id", f"{session_id!r} already exists", kind="SESSION_STATE")
        spawner = self.pool.pick(RUNC)
        if spawner is None:
            raise Unavailable("no healthy spawner can open a session now; retry later")
        key = new_execution_key()
        try:
            spawner.stub.CreateSession(
                spb.CreateSessionRequest(
                    session_key=key,
                    tenant=tenant,
                    language=request.language,
                    limits=common.Limits(memory_bytes=request.limits.memory_bytes, cpus=request.limits.cpus),
                    variant=variant,
                    idle_timeout_seconds=idle,
                    max_lifetime_seconds=lifetime,
                    files=request.files,
                    packages=request.packages,
                    install=spb.InstallOptions(
                        allow_sdist=request.install.allow_sdist,
                        allow_install_scripts=request.install.allow_install_scripts,
                    ),
                ),
                timeout=CREATE_TIMEOUT_SECONDS + (INSTALL_TIMEOUT_SECONDS if packages else 0),
            )
        except grpc.RpcError as exc:
            raise _refusal(exc) from None
        now = self.sessions.clock()
        row = SessionRow(
            key=key,
            tenant=tenant,
            session_id=session_id,
            language=request.language,
            variant=variant,
            status=OPEN,
            spawner=spawner.address,
            memory_bytes=request.limits.memory_bytes,
            cpus=request.limits.cpus,
            timeout_ms=timeout_ms,
            idle_seconds=idle,
            lifetime_seconds=lifetime,
            created_at_ms=now,
            last_used_at_ms=now,
            packages_json=messages.packages_json(packages),
        )
        try:
            self.sessions.insert(row, self.max_open)
        except Exception:
            self._close_on_spawner(row)
            raise
        return messages.session(row)

    def get(self, tenant: str, session_id: str) -> pb.Session:
        row = self.sessions.get(tenant, session_id)
        return messages.session(row, busy=self.is_busy(row.key))

    def list(self, tenant: str, request: pb.ListSessionsRequest) -> pb.ListSessionsResponse:
        page = PageRequest.parse(request.page_size, request.page_token, max_size=MAX_PAGE_SIZE)
        rows, token = self.sessions.list(tenant, request.open_only, page)
        return pb.ListSessionsResponse(
            sessions=[messages.session(row, busy=self.is_busy(row.key)) for row in rows], next_page_token=token
        )

    def close(self, tenant: str, session_id: str) -> pb.Session:
        row = self.sessions.get(tenant, session_id)
        if row.status == OPEN:
            self.sessions.end(row.key, CLOSED, "closed by the caller")
        self._close_on_spawner(row)  # an expired one may still be there for a moment
        return self.get(tenant, session_id)

    # ---- calls ---------------------------------------------------------------

    def run_cell(self, tenant: str, request: pb.RunCellRequest) -> CellCall:
        """Checks and admits the call before the first event (raising what
        refuses it, with nothing recorded), then relays it."""
        row = self.sessions.get(tenant, request.session_id)
        if row.status != OPEN:
            raise FailedPrecondition(
                "session_id", f"the session has ended ({row.status}: {row.end_reason})", kind="SESSION_STATE"
            )
        code = check_code(request.code, check_language(row.language))
        timeout_ms = check_timeout_ms(request.timeout_ms, default=row.timeout_ms, maximum=self.limits.max_timeout_ms)
        execution_id = request.execution_id or f"ex-{secrets.token_hex(GENERATED_ID_BYTES)}"
        check_id("execution_id", execution_id)
        spawner = self.pool.by_address(row.spawner)
        if spawner is None:
            self._fail(row, "its spawner is no longer one of control's")
            raise FailedPrecondition("session_id", "the session has ended (failed)", kind="SESSION_STATE")
        with self._lock:
            if row.key in self._busy:
                raise FailedPrecondition("session_id", BUSY, kind="SESSION_STATE")
            self._busy.add(row.key)
        try:
            admission = Admission(execution_id, "", row.language, timeout_ms, row.variant, RUNC, row.session_id)
            with self.store.db.write() as transaction:  # one write: admitted, assigned, running, used
                call_row = self.executions.admit(transaction, tenant, admission)
                statements.start_running(transaction.connection(), call_row.key, spawner.address, self.store.clock())
                self.sessions.used(row.key, calls=1, transaction=transaction)
        except BaseException:
            self._release(row.key)
            raise
        cell = CellCall()
        cell.events = self._relay(cell, row, spawner, call_row.key, execution_id, code, timeout_ms)
        return cell

    def _relay(
        self, cell: CellCall, row: SessionRow, spawner: Spawner, key: str, execution_id: str, code: str, timeout_ms: int
    ) -> Iterator[pb.CellEvent]:
        started = time.monotonic()
        outputs = {"stdout": bytearray(), "stderr": bytearray()}
        verdict = Verdict(CANCELLED, "CANCELLED", "the caller went away; the call ran on in the session")
        call = None
        settled = False

        def settle(final: Verdict) -> None:
            """Records the call's verdict and frees the session, once."""
            nonlocal settled
            if settled:
                return
            settled = True
            try:
                self.running.ended(row.key, key)
                wall_ms = int((time.monotonic() - started) * 1000)
                self.store.finalize(key, _with_previews(final, outputs, self.limits.preview_bytes, wall_ms))
                self.sessions.used(row.key)
            finally:
                self._release(row.key)

        try:
            call = spawner.stub.RunCell(
                spb.RunCellRequest(session_key=row.key, tenant=row.tenant, code=code, timeout_ms=timeout_ms),
                timeout=timeout_ms / 1000 + CALL_SLACK_SECONDS,
            )
            cell.relaying(call)
            self.running.started(row.key, key)
            yield pb.CellEvent(accepted=pb.Accepted(execution_id=execution_id, status=common.EXECUTION_STATUS_RUNNING))
            result = None
            for event in call:
                kind = event.WhichOneof("event")
                if kind in ("stdout", "stderr"):
                    data = getattr(event, kind)
                    kept = outputs[kind]
                    kept += data[: max(0, self.limits.preview_bytes - len(kept))]
                    yield pb.CellEvent(stdout=data) if kind == "stdout" else pb.CellEvent(stderr=data)
                elif kind == "value":
                    yield pb.CellEvent(value=event.value)
                elif kind == "result":
                    result = event.result
            if result is None:
                result = cells.CellResult(status=cells.CELL_STATUS_SESSION_ENDED, exit_code=-1)
            result.duration_ms = result.duration_ms or int((time.monotonic() - started) * 1000)
            verdict = _verdict(result, timeout_ms)
            interrupted = self.running.interrupted(key)
            if result.status == cells.CELL_STATUS_SESSION_ENDED:
                self._fail(row, "its sandbox went away during a call")
            elif interrupted:
                message = f"{interrupted}; the call was interrupted, the session goes on"
                verdict = Verdict(CANCELLED, "CANCELLED", message, exit_code=result.exit_code)
            elif result.status == cells.CELL_STATUS_KERNEL_DIED:
                self.sessions.restarted(row.key)  # the next call starts a fresh interpreter
            settle(verdict)  # before the result: a next call sent on seeing it finds the session free
            yield pb.CellEvent(result=result)
        except grpc.RpcError as exc:
            if cell.gone.is_set():
                return  # the caller went away: recorded as such below
            ended = exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE)
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                verdict = Verdict(FAILED, "INPUT_REJECTED", BUSY, cpu_seconds=0.0)
            else:
                verdict = Verdict(FAILED, "SPAWNER_UNAVAILABLE", "the session's sandbox is gone", cpu_seconds=0.0)
            if ended:
                self._fail(row, "its sandbox or spawner went away")
            settle(verdict)
            if ended:
                yield pb.CellEvent(result=cells.CellResult(status=cells.CELL_STATUS_SESSION_ENDED, exit_code=-1))
            else:  # busy through another control replica, or the spawner failed this call
                error = cells.CellError(name="CallRefused", value=verdict.error_message)
                yield pb.CellEvent(result=cells.CellResult(status=cells.CELL_STATUS_ERROR, error=error, exit_code=-1))
        finally:
            if call is not None:
                call.cancel()
            settle(verdict)  # the caller went away, or something failed: once, whatever happened

    # ---- helpers -------------------------------------------------------------

    def is_busy(self, key: str) -> bool:
        with self._lock:
            return key in self._busy

    def _release(self, key: str) -> None:
        with self._lock:
            self._busy.discard(key)

    def _fail(self, row: SessionRow, reason: str) -> None:
        if self.sessions.end(row.key, SESSION_FAILED, reason):
            log.warning("session %s of tenant %s failed: %s", row.session_id, row.tenant, reason)
        self._close_on_spawner(row)

    def _close_on_spawner(self, row: SessionRow) -> None:
        spawner = self.pool.by_address(row.spawner)
        if spawner is None:
            return
        try:
            spawner.stub.CloseSession(
                spb.CloseSessionRequest(session_key=row.key, tenant=row.tenant), timeout=CLOSE_TIMEOUT_SECONDS
            )
        except grpc.RpcError as exc:
            log.warning("closing session %s on %s failed: %s", row.session_id, row.spawner, exc.code().name)


class CellCall:
    """One call being relayed: its events for the caller, and what to do
    when the caller goes away (stop relaying; the call itself runs on to its
    end in the sandbox, so the session stays in step)."""

    def __init__(self) -> None:
        self.events: Iterator[pb.CellEvent] = iter(())
        self.gone = threading.Event()
        self._lock = threading.Lock()
        self._call: grpc.Future | None = None

    def relaying(self, call: grpc.Future) -> None:
        with self._lock:
            self._call = call
            gone = self.gone.is_set()
        if gone:
            call.cancel()

    def listener_gone(self) -> None:
        """The caller's RPC ended (for any reason: a no-op after the result)."""
        with self._lock:
            self.gone.set()
            call = self._call
        if call is not None:
            call.cancel()


def _refusal(exc: grpc.RpcError) -> Exception:
    """A spawner's refusal of CreateSession, as control's own error."""
    code, details = exc.code(), exc.details() or ""
    install_failure = install_failure_of(rpc_status.from_call(exc))
    if install_failure is not None:
        return InstallFailed(*install_failure)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        field, _, description = details.partition(": ")
        return InvalidArgument(field or "limits", description or details)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return LimitExceeded("slots", "no free slot in the mesh for a session now; retry later")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition("session", details, kind="SESSION_STATE")
    return Unavailable(f"the spawner could not open the session ({code.name})")


def _verdict(result: cells.CellResult, timeout_ms: int) -> Verdict:
    status = result.status
    if status == cells.CELL_STATUS_OK:
        return Verdict(COMPLETED, exit_code=0)
    if status == cells.CELL_STATUS_TIMEOUT:
        message = f"time limit of {timeout_ms} ms reached; the call was interrupted, the session goes on"
        return Verdict(FAILED, "TIMEOUT", message, exit_code=result.exit_code)
    if status == cells.CELL_STATUS_ERROR:
        if result.error.name:
            message = f"{result.error.name}: {result.error.value}"
        else:
            message = f"exited with code {result.exit_code}"
        return Verdict(FAILED, "RUNTIME_ERROR", message, exit_code=result.exit_code)
    if status == cells.CELL_STATUS_KERNEL_DIED:
        message = "the interpreter died (out of memory?); the next call starts a fresh one, files kept"
        return Verdict(FAILED, "RUNTIME_ERROR", message, exit_code=result.exit_code)
    return Verdict(FAILED, "SPAWNER_UNAVAILABLE", "the session's sandbox went away", exit_code=-1)


def _with_previews(verdict: Verdict, outputs: dict[str, bytearray], limit: int, wall_ms: int) -> Verdict:
    """The call's record: previews, its wall time, and its CPU charged at
    its wall time (a call's own CPU is not measured apart from its session's)."""
    return Verdict(
        status=verdict.status,
        error_code=verdict.error_code,
        error_message=verdict.error_message,
        exit_code=verdict.exit_code,
        cpu_seconds=wall_ms / 1000 if verdict.cpu_seconds is None else verdict.cpu_seconds,
        usage_json=usage_json(common.Usage(wall_ms=wall_ms)),
        stdout_preview=bytes(outputs["stdout"]),
        stderr_preview=bytes(outputs["stderr"]),
        stdout_truncated=len(outputs["stdout"]) >= limit,
        stderr_truncated=len(outputs["stderr"]) >= limit,
    )
