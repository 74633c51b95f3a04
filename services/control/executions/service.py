"""The execution service: admits executions against the tenant's quota,
hands them to the relay (which waits for a fair slot, slots.py), cancels
them, and answers the reads. The gRPC
servicer (servicer.py) is a thin layer on this; the relay to the spawners is
services/control/relay.py."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Iterator, Sequence

from sqlmodel import Session

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from services.common.contract.ids import ID_RE, check_id
from services.common.contract.requests import check_program, check_timeout_ms
from services.common.contract.sandbox_runtimes import check_sandbox_runtime
from services.control.blobs import BlobStore
from services.control.config import ExecutionLimits
from services.control.errors import InvalidArgument
from services.control.executions import messages, states
from services.control.executions.fair_queue import queue_seconds
from services.control.executions.heartbeats import Heartbeats
from services.control.executions.in_flight import InFlightExecution, InFlightExecutions
from services.control.executions.messages import spawner_request
from services.control.executions.models import CANCELLED, ExecutionRow, Verdict
from services.control.executions.reconcile import Reconciler
from services.control.executions.retention import RetentionSweeper
from services.control.executions.store import ExecutionStore
from services.control.metrics import ControlMetrics
from services.control.pagination import PageRequest
from services.control.relay import Relay
from services.control.sandbox_runtimes import RuntimePolicy
from services.control.slots import SlotScheduler

# How long a cancel waits for the spawner's CANCELLED result before control
# records the cancellation itself.
CANCEL_WAIT_SECONDS = 10.0
# How often a cancel looks whether the verdict is in.
CANCEL_POLL_SECONDS = 0.05
# How often the caller's reader wakes up to see whether the relay is done.
# Random bytes of an execution's key, and of an execution id control makes
# up when the caller gives none.
KEY_BYTES = 16
GENERATED_ID_BYTES = 8
# Executions per ListExecutions page (control.proto).
MAX_PAGE_SIZE = 500


@dataclasses.dataclass(frozen=True)
class Admission:
    """An ExecuteRequest that passed control's own checks."""

    execution_id: str
    group_id: str
    language: int
    timeout_ms: int
    variant: str = ""
    runtime: str = ""  # as asked ("" for the default); admit() decides
    session_id: str = ""  # the session it is a call of (services/control/sessions/)


def new_execution_key() -> str:
    """Control's own id of an execution, the one the spawner sees (32 hex)."""
    return secrets.token_hex(KEY_BYTES)


class ExecutionService:
    def __init__(
        self,
        limits: ExecutionLimits,
        store: ExecutionStore,
        blobs: BlobStore,
        relay: Relay,
        in_flight: InFlightExecutions,
        heartbeats: Heartbeats,
        slots: SlotScheduler,
        retention: RetentionSweeper,
        runtimes: RuntimePolicy,
        reconciler: Reconciler,
        metrics: ControlMetrics | None = None,
    ):
        self.limits = limits
        self.store = store
        self.blobs = blobs
        self.relay = relay
        self.in_flight = in_flight
        self.heartbeats = heartbeats
        self.slots = slots
        self.retention = retention
        self.runtimes = runtimes
        self.reconciler = reconciler
        self.metrics = metrics or ControlMetrics()
        # Interrupts a running call of a session (services/control/sessions/ops.py).
        self.interrupt_session_call: Callable[[ExecutionRow, str], None] | None = None

    def start(self) -> None:
        self.reconciler.start()
        self.heartbeats.start()
        self.retention.start()

    def stop(self, grace_seconds: float) -> None:
        """Cancels what is in flight here and waits for the records."""
        live = self.in_flight.all()
        for execution in live:
            self.relay.cancel(execution, "control is shutting down")
        deadline = time.monotonic() + grace_seconds
        for execution in live:
            execution.done.wait(max(0.0, deadline - time.monotonic()))
        self.heartbeats.stop()
        self.retention.stop()
        self.reconciler.stop()

    # ---- admission -----------------------------------------------------------

    def check(self, request: pb.ExecuteRequest) -> Admission:
        """Control's door: every rule of the mesh's contract that control can
        judge, before anything is recorded (raises InvalidArgument naming the
        field). Memory and CPUs are each spawner's own ranges: a request
        outside them is refused by the spawner (recorded INPUT_REJECTED)."""
        execution_id = request.execution_id or f"ex-{secrets.token_hex(GENERATED_ID_BYTES)}"
        check_id("execution_id", execution_id)
        if request.group_id:
            check_id("group_id", request.group_id)
        program = check_program(request, self.limits.requests)
        timeout_ms = check_timeout_ms(
            request.limits.timeout_ms, default=self.limits.default_timeout_ms, maximum=self.limits.max_timeout_ms
        )
        runtime = check_sandbox_runtime(request.runtime)
        return Admission(execution_id, request.group_id, request.language, timeout_ms, program.variant, runtime)

    def admit(self, session: Session, tenant: str, admission: Admission) -> ExecutionRow:
        """Reserves the execution inside the caller's write transaction
        (raises RuntimeUnavailable, QuotaExceeded, AlreadyExists)."""
        try:
            runtime = self.runtimes.resolve(tenant, admission.runtime)
            return self.store.reserve_in(
                session,
                key=new_execution_key(),
                tenant=tenant,
                execution_id=admission.execution_id,
                group_id=admission.group_id,
                language=admission.language,
                timeout_ms=admission.timeout_ms,
                variant=admission.variant,
                runtime=runtime,
                session_id=admission.session_id,
            )
        except Exception as exc:
            self.metrics.refused(exc)
            raise

    def launch(
        self,
        row: ExecutionRow,
        request: pb.ExecuteRequest,
        *,
        caller_seconds: float | None = None,
        prior_outputs: Sequence[common.File] = (),
        stderr_notice: bytes = b"",
    ) -> InFlightExecution:
        """Starts relaying an admitted execution; the caller reads `events()`.
        `caller_seconds` is what is left of the caller's deadline (None:
        none): the execution waits for a slot until just before it, at most
        the configured maximum.

        Extras of artifact runs, not in the public ExecuteRequest:
        `prior_outputs` are pre-staged into /workspace/output/ by the
        spawner; `stderr_notice` is sent as the first stderr chunk and kept
        in the stderr preview."""
        wait = queue_seconds(self.limits.max_queue_seconds, caller_seconds)
        execution = InFlightExecution(row, self.limits.preview_bytes, wait)
        self.in_flight.add(execution)
        self.metrics.admitted()
        accepted = pb.Accepted(execution_id=row.execution_id, status=common.EXECUTION_STATUS_QUEUED)
        execution.push(pb.ExecuteEvent(accepted=accepted))
        if stderr_notice:
            execution.add_output("stderr", stderr_notice)
            execution.push(pb.ExecuteEvent(stderr=pb.OutputChunk(data=stderr_notice)))
        self.relay.start(execution, spawner_request(row, request, prior_outputs))
        return execution

    def execute(
        self, tenant: str, request: pb.ExecuteRequest, caller_seconds: float | None = None
    ) -> InFlightExecution:
        """Checks, admits (in a transaction of its own) and launches."""
        try:
            admission = self.check(request)
        except InvalidArgument as exc:
            self.metrics.refused(exc)
            raise
        with self.store.db.write() as session:
            row = self.admit(session, tenant, admission)
        return self.launch(row, request, caller_seconds=caller_seconds)

    @staticmethod
    def events(execution: InFlightExecution) -> Iterator[pb.ExecuteEvent]:
        """The caller's view: events until `finished`; raises the refusal of
        an execution still waiting for a slot at its queue deadline
        (QuotaExceeded, relay.py)."""
        yield from execution.events

    def listener_gone(self, execution: InFlightExecution) -> None:
        """The caller hung up: a running execution is cancelled."""
        execution.events.abandon()
        if not execution.done.is_set():
            self.relay.cancel(execution, "the caller went away")

    # ---- cancellation --------------------------------------------------------

    def cancel(self, tenant: str, execution_id: str) -> tuple[bool, ExecutionRow]:
        row = self.store.get(tenant, execution_id)
        return self._cancel_rows([row], "cancelled by the caller")[0]

    def cancel_group(self, tenant: str, group_id: str) -> list[str]:
        if not ID_RE.match(group_id):
            raise InvalidArgument("group_id", "must match [A-Za-z0-9_-]{1,64}")
        rows = self.store.live_in_group(tenant, group_id)
        results = self._cancel_rows(rows, "the group was cancelled")
        return [row.execution_id for cancelled, row in results if cancelled]

    def _cancel_rows(self, rows: list[ExecutionRow], reason: str) -> list[tuple[bool, ExecutionRow]]:
        pending = []
        for row in rows:
            if row.status in states.TERMINAL:
                continue
            execution = self.in_flight.get(row.key)
            if row.session_id and self.interrupt_session_call is not None:
                self.interrupt_session_call(row, reason)  # the session goes on
            elif execution is not None:
                self.relay.cancel(execution, reason)
            elif row.spawner:
                self.relay.cancel_elsewhere(row)  # another replica relays it
            pending.append(row.key)
        # The relay records the spawner's CANCELLED result (usage, partial
        # files); a verdict is forced when none arrives in time.
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        for key in pending:
            while time.monotonic() < deadline and not states.has_ended(self.store.by_key(key)):
                time.sleep(CANCEL_POLL_SECONDS)
            current = self.store.by_key(key)
            if current is not None and not states.has_ended(current):
                cpu_seconds = None if current.started_at_ms else 0.0
                self.store.finalize(key, Verdict(CANCELLED, "CANCELLED", reason, cpu_seconds=cpu_seconds))
        results = []
        for row in rows:
            latest = self.store.by_key(row.key)
            if latest is None:  # discarded meanwhile (the spawner refused it): not cancelled
                results.append((False, row))
            else:
                results.append((row.key in pending and latest.status == CANCELLED, latest))
        return results

    # ---- reads ---------------------------------------------------------------

    def get(self, tenant: str, execution_id: str) -> pb.Execution:
        row = self.store.get(tenant, execution_id)
        return messages.execution(row, self.store.files(row.key))

    def list(self, tenant: str, request: pb.ListExecutionsRequest) -> pb.ListExecutionsResponse:
        for field in ("group_id", "session_id"):
            if getattr(request, field) and not ID_RE.match(getattr(request, field)):
                raise InvalidArgument(field, "must match [A-Za-z0-9_-]{1,64}")
        try:
            statuses = [states.from_proto(s) for s in request.statuses]
        except ValueError as exc:
            raise InvalidArgument("statuses", str(exc)) from None
        page = PageRequest.parse(request.page_size, request.page_token, max_size=MAX_PAGE_SIZE)
        rows, token = self.store.list(
            tenant, statuses=statuses, group_id=request.group_id, session_id=request.session_id, page=page
        )
        return pb.ListExecutionsResponse(
            executions=[messages.execution(row, detail=False) for row in rows], next_page_token=token
        )

    def output_file(self, tenant: str, execution_id: str, path: str) -> Iterator[pb.OutputFileChunk]:
        stored = self.store.file(tenant, execution_id, path)
        if stored.size == 0:
            yield pb.OutputFileChunk(data=b"", offset=0, size=0, sha256=stored.sha256)
            return
        for offset, data in self.blobs.read(stored.sha256):
            yield pb.OutputFileChunk(data=data, offset=offset, size=stored.size, sha256=stored.sha256)

    def quota(self, tenant: str) -> pb.Quota:
        usage = self.store.quota(tenant)
        limits, stored = usage.limits, usage.stored
        slots = self.slots.slots()
        return pb.Quota(
            tenant=tenant,
            max_in_flight=limits.max_in_flight,
            in_flight=usage.in_flight,
            daily_cpu_seconds=limits.daily_cpu_seconds,
            cpu_seconds_used=usage.cpu_seconds_used,
            day=usage.day,
            daily_slot_seconds=limits.daily_slot_seconds,
            slot_seconds_used=usage.slot_seconds_used,
            max_slots=self.slots.max_slots(tenant, slots),
            slots_held=usage.slots_held,
            mesh_slots=slots,
            max_stored_executions=limits.max_stored_executions,
            stored_executions=stored.executions,
            max_stored_output_bytes=limits.max_stored_output_bytes,
            stored_output_bytes=stored.output_bytes,
            max_stored_artifacts=limits.max_stored_artifacts,
            stored_artifacts=stored.artifacts,
            max_stored_artifact_bytes=limits.max_stored_artifact_bytes,
            stored_artifact_bytes=stored.artifact_bytes,
            retention_days=self.limits.retention_days,
        )
