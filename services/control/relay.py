"""The relay of an admitted execution to a spawner: wait for a slot in the
fair queue (services/control/slots.py), pick a spawner, call it, retry
elsewhere while nothing started, stream its events to the caller's buffer
and the record, and record the verdict.

One worker thread per execution owns the spawner call, so the record gets
its verdict even when the caller is gone. Admission and cancellation are the
execution service's (services/control/executions/service.py); the relay only
carries out a cancel it is asked for (`cancel`).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence

import grpc
from grpc_status import rpc_status

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from sandbox.spawner.v1 import spawner_pb2 as spb
from services.common.contract import failures
from services.common.contract.capacity import is_no_free_slot
from services.control.blobs import BlobStore
from services.control.executions import messages, states
from services.control.executions.fields import execution_fields
from services.control.executions.in_flight import InFlightExecution, InFlightExecutions
from services.control.executions.models import (
    CANCELLED,
    COMPLETED,
    FAILED,
    INSTALLING,
    RUNNING,
    ExecutionRow,
    StoredFile,
    Verdict,
)
from services.control.executions.store import ExecutionStore
from services.control.metrics import ControlMetrics
from services.control.slots import SlotScheduler
from services.control.spawners import SpawnerPool

log = logging.getLogger(__name__)

# Why a spawner's call ended before anything started, by its status:
# NO_SLOT: its last slot went to someone else (contract/capacity.py): ask again.
# DOWN: the spawner, not the request, failed: skip it for a while, try another.
# REJECTED: the request's content (a rule, or a message over the size limit):
#   every spawner would refuse it, so it ends at once, INPUT_REJECTED.
# BROKEN: anything else went wrong there on this request: it ends at once
#   too (retrying elsewhere would let one request knock out every spawner).
NO_SLOT, DOWN, REJECTED, BROKEN = "no_slot", "down", "rejected", "broken"
SPAWNER_DOWN = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.CANCELLED,
    }
)
REQUEST_REJECTED = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
# A spawner's refusal text is recorded (it names the field at fault), cut to this.
MAX_REFUSAL_CHARS = 1000
SPAWNER_FAILED_MESSAGE = "the spawner could not start the execution"
CONTROL_FAILED_MESSAGE = "control could not relay the execution"
PHASES = {spb.PHASE_INSTALLING: INSTALLING, spb.PHASE_RUNNING: RUNNING}

# Deadline of one spawner call: twice the execution's timeout (installing
# packages counts against its own budget on the spawner) plus slack for the
# spawner to prepare the sandbox and hand back the output files.
CALL_TIMEOUT_FACTOR = 2
CALL_SLACK_SECONDS = 120
# Pause before asking the spawners again when none has a free slot.
NO_SLOT_PAUSE_SECONDS = 0.2
# Pause before the next attempt after a spawner turned the call down.
RETRY_PAUSE_SECONDS = 0.1


class Relay:
    def __init__(
        self,
        store: ExecutionStore,
        blobs: BlobStore,
        pool: SpawnerPool,
        in_flight: InFlightExecutions,
        slots: SlotScheduler,
        metrics: ControlMetrics | None = None,
    ):
        self.store = store
        self.blobs = blobs
        self.pool = pool
        self.in_flight = in_flight
        self.slots = slots
        self.metrics = metrics or ControlMetrics()

    def start(self, execution: InFlightExecution, request: spb.ExecuteRequest) -> None:
        """Relays `request` on a worker thread of its own, in a copy of the
        caller's context (its trace goes on to the spawner and into the logs)."""
        work = functools.partial(contextvars.copy_context().run, self._work, execution, request)
        worker = threading.Thread(target=work, name=f"relay-{execution.key[:8]}", daemon=True)
        worker.start()

    def cancel(self, execution: InFlightExecution, reason: str) -> None:
        """Asks the spawner to kill the execution (or, failing that, drops
        the call); the worker then records the cancellation."""
        if execution.cancel_reason is None:
            execution.cancel_reason = reason
        execution.wake.set()
        if execution.spawner and not self.pool.cancel(execution.spawner, execution.key, execution.tenant):
            call = execution.call
            if call is not None:
                call.cancel()

    def cancel_elsewhere(self, row: ExecutionRow) -> None:
        """Asks the spawner of an execution another replica relays to kill it;
        that replica's relay records the cancellation."""
        self.pool.cancel(row.spawner, row.key, row.tenant)

    def record(self, key: str, verdict: Verdict, files: Sequence[tuple[str, bytes]] = ()) -> bool:
        """All-or-nothing: blobs first (temp + rename), then the rows and the
        quota settlement in one transaction; blobs this call created are
        removed again when no row took them (the transaction failed or was a
        no-op, or the files were dropped over the tenant's storage quota)."""
        digests, created = self.blobs.put_all([content for _, content in files])
        stored = [
            StoredFile(path, len(content), digest) for (path, content), digest in zip(files, digests, strict=True)
        ]
        applied = False
        try:
            # A verdict outlives a short database outage: retried, each try
            # a whole transaction, so a broken one applied nothing.
            applied = self.store.db.retrying(lambda: self.store.finalize(key, verdict, stored))
        finally:
            if created:
                still_used = self.store.db.retrying(lambda: self.store.referenced(created))
                self.blobs.remove([d for d in created if d not in still_used])
        return applied

    # ---- the worker --------------------------------------------------------

    def _work(self, execution: InFlightExecution, request: spb.ExecuteRequest) -> None:
        try:
            if self.slots.acquire(execution):
                self._run(execution, request)
            else:
                self._queue_deadline_passed(execution)
        except Exception:  # whatever broke, the record gets a verdict
            self.metrics.relay_error("control")
            log.exception("relay of execution %s failed", execution.key, extra=_fields(execution))
            try:
                self._finalize(execution, Verdict(FAILED, "SPAWNER_UNAVAILABLE", CONTROL_FAILED_MESSAGE))
            except Exception:  # the reconciler settles it once this relay is gone
                log.exception("no verdict recorded for execution %s", execution.key, extra=_fields(execution))
        finally:
            self.slots.release(execution)
            self.in_flight.remove(execution.key)
            execution.done.set()
            execution.events.close()

    def _run(self, execution: InFlightExecution, request: spb.ExecuteRequest) -> None:
        """Picks a spawner and calls it until one has taken the execution (or
        it is cancelled, refused, or no spawner takes it by its queue deadline)."""
        while True:
            if execution.cancel_reason is not None:
                self._finalize(execution, Verdict(CANCELLED, "CANCELLED", execution.cancel_reason, cpu_seconds=0.0))
                return
            if time.monotonic() > execution.queue_deadline:
                self._queue_deadline_passed(execution)
                return
            spawner = self.pool.pick(request.runtime)
            if spawner is None:
                execution.wake.wait(NO_SLOT_PAUSE_SECONDS)
                continue
            assign = functools.partial(self.store.assign_spawner, execution.key, spawner.address)
            if not self.store.db.retrying(assign):
                self._finish_event(execution)  # cancelled (or failed) while queued
                return
            execution.spawner = spawner.address
            timeout = request.limits.timeout_ms / 1000 * CALL_TIMEOUT_FACTOR + CALL_SLACK_SECONDS
            call = spawner.stub.Execute(request, timeout=timeout)
            execution.call = call
            if execution.cancel_reason is not None:
                self.cancel(execution, execution.cancel_reason)
            try:
                first = next(call)
            except StopIteration:
                self._spawner_failed(spawner.address, "no_events", "stream ended without events")
                continue
            except grpc.RpcError as exc:
                outcome = why_not_started(exc)
                if outcome == NO_SLOT:
                    execution.wake.wait(RETRY_PAUSE_SECONDS)
                    continue
                if exc.code() == grpc.StatusCode.CANCELLED and execution.cancel_reason is not None:
                    continue  # loop top records the cancellation
                if outcome == DOWN:
                    self._spawner_failed(spawner.address, "spawner_down", f"Execute failed: {exc.code().name}")
                    execution.wake.wait(RETRY_PAUSE_SECONDS)
                    continue
                self._not_started(execution, spawner.address, exc, outcome)
                return
            self._stream(execution, spawner.address, call, first)
            return

    def _queue_deadline_passed(self, execution: InFlightExecution) -> None:
        """The queue deadline came before a spawner took the execution. A
        full mesh or share refuses it (RESOURCE_EXHAUSTED, the record
        discarded, its debits returned); with no spawner up at all it fails."""
        refusal = self.slots.refusal(execution)
        if refusal is None:
            waited = time.monotonic() - execution.accepted_at
            message = f"no spawner took the execution within {waited:.0f}s"
            self._finalize(execution, Verdict(FAILED, "SPAWNER_UNAVAILABLE", message, cpu_seconds=0.0))
        elif self.store.discard(execution.key):
            self.metrics.refused(refusal)
            execution.events.close(refusal)  # the caller raises it after what was sent
        else:
            self._finish_event(execution)  # a verdict came first (a cancel)

    def _not_started(self, execution: InFlightExecution, address: str, exc: grpc.RpcError, outcome: str) -> None:
        """The spawner refused the request, or failed on it: it ends now,
        FAILED with nothing charged. A refusal's text is our own (the field
        at fault, or gRPC's size refusal) and is recorded; anything else is
        only logged."""
        details = exc.details() or ""
        if outcome == REJECTED:
            message = f"the spawner refused the request ({exc.code().name}): {details}"[:MAX_REFUSAL_CHARS]
            verdict = Verdict(FAILED, "INPUT_REJECTED", message, cpu_seconds=0.0)
        else:
            self.metrics.relay_error("spawner_failed")
            log.warning(
                "execution %s: spawner %s failed: %s %s",
                execution.key,
                address,
                exc.code().name,
                details,
                extra=_fields(execution),
            )
            verdict = Verdict(FAILED, "SPAWNER_UNAVAILABLE", SPAWNER_FAILED_MESSAGE, cpu_seconds=0.0)
        self._finalize(execution, verdict)

    def _stream(self, execution: InFlightExecution, address: str, call, first: spb.ExecuteEvent) -> None:
        """Passes the spawner's events on until its result, then records it."""
        chunks: dict[str, bytearray] = {}
        try:
            for event in _chain(first, call):
                kind = event.WhichOneof("event")
                if kind == "phase":
                    target = PHASES.get(event.phase.phase)
                    if target is None:
                        continue
                    # Retried through a short database outage: the sandbox runs on regardless.
                    if self.store.db.retrying(functools.partial(self.store.advance, execution.key, target)):
                        status = pb.StatusChange(status=states.to_proto(target), elapsed_ms=execution.elapsed_ms())
                        execution.push(pb.ExecuteEvent(status=status))
                    elif states.has_ended(self.store.by_key(execution.key)):
                        # A verdict is already in (cancel, watchdog): stop the run.
                        call.cancel()
                        self._finish_event(execution)
                        return
                elif kind in ("stdout", "stderr"):
                    chunk = getattr(event, kind)
                    execution.add_output(kind, chunk.data)
                    output = pb.OutputChunk(data=chunk.data, step_index=chunk.step_index)
                    stream = pb.ExecuteEvent(stdout=output) if kind == "stdout" else pb.ExecuteEvent(stderr=output)
                    execution.push(stream)
                elif kind == "step":
                    execution.push(pb.ExecuteEvent(step=event.step))
                elif kind == "output_file":
                    part = event.output_file
                    chunks.setdefault(part.path, bytearray()).extend(part.content)
                elif kind == "result":
                    verdict, files = verdict_of(event.result, chunks)
                    if verdict.error_message != event.result.error_message:
                        log.warning(
                            "execution %s: spawner %s's message not relayed: %r",
                            execution.key,
                            address,
                            event.result.error_message,
                            extra=_fields(execution),
                        )
                    if verdict.status == CANCELLED and execution.cancel_reason is not None:
                        # The spawner only knows it was asked to; control knows why.
                        verdict = dataclasses.replace(verdict, error_message=execution.cancel_reason)
                    self._finalize(execution, verdict, files)
                    return
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED and execution.cancel_reason is not None:
                self._finalize(execution, Verdict(CANCELLED, "CANCELLED", execution.cancel_reason))
                return
            self._spawner_failed(address, "stream_broken", f"stream broke: {exc.code().name}")
            message = f"the spawner's stream broke: {exc.code().name}"
            self._finalize(execution, Verdict(FAILED, "SPAWNER_UNAVAILABLE", message))
            return
        self._spawner_failed(address, "no_result", "stream ended without a result")
        self._finalize(execution, Verdict(FAILED, "SPAWNER_UNAVAILABLE", "the spawner's stream ended without a result"))

    def _finalize(
        self, execution: InFlightExecution, verdict: Verdict, files: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        """Records the verdict with the latest previews, then tells the caller."""
        previews = execution.previews(clear=False)
        if verdict.stdout_preview is None and previews is not None:
            verdict = dataclasses.replace(
                verdict,
                stdout_preview=previews.stdout,
                stdout_truncated=previews.stdout_truncated,
                stderr_preview=previews.stderr,
                stderr_truncated=previews.stderr_truncated,
            )
        if self.record(execution.key, verdict, files):
            fields = _fields(execution, verdict)
            log.info(
                "execution %s (tenant %s) finished: %s %s",
                execution.execution_id,
                execution.tenant,
                fields["status"],
                fields["error_code"],
                extra=fields,
            )
        self._finish_event(execution)

    def _spawner_failed(self, address: str, kind: str, reason: str) -> None:
        self.metrics.relay_error(kind)
        self.pool.mark_unhealthy(address, reason)

    def _finish_event(self, execution: InFlightExecution) -> None:
        """The caller's last event: the record as stored."""
        found = self.store.db.retrying(lambda: self.store.finished(execution.key))
        if found is not None:
            execution.push(pb.ExecuteEvent(finished=messages.execution(*found)))


def _fields(execution: InFlightExecution, verdict: Verdict | None = None) -> dict[str, str]:
    return execution_fields(execution.execution_id, execution.tenant, verdict)


def why_not_started(exc: grpc.RpcError) -> str:
    """NO_SLOT, DOWN, REJECTED or BROKEN for a call that failed before its
    first event."""
    code = exc.code()
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and is_no_free_slot(rpc_status.from_call(exc)):
        return NO_SLOT
    if code in SPAWNER_DOWN:
        return DOWN
    if code in REQUEST_REJECTED:
        return REJECTED
    return BROKEN


def _chain(first: spb.ExecuteEvent, rest: Iterator[spb.ExecuteEvent]) -> Iterator[spb.ExecuteEvent]:
    yield first
    yield from rest


def verdict_of(result: spb.ExecuteResult, chunks: dict[str, bytearray]) -> tuple[Verdict, list[tuple[str, bytes]]]:
    """The verdict a spawner's result records, and the output files: those
    streamed in `chunks` completed by the result's own parts."""
    files: dict[str, bytes] = {path: bytes(data) for path, data in chunks.items()}
    for output in result.output_files:
        if output.path in chunks:
            chunks[output.path].extend(output.content)
            files[output.path] = bytes(chunks[output.path])
        else:
            files[output.path] = bytes(output.content)
    status = states.from_proto(result.status) if result.status else FAILED
    if status not in states.TERMINAL:
        status = FAILED
    error_code = states.error_name(result.error_code) if status != COMPLETED else ""
    message = result.error_message
    if result.error_code == common.ERROR_CODE_SPAWNER_UNAVAILABLE:
        # Only the spawner's fixed sentences reach the tenant, never an engine's text.
        message = failures.stable_message(message)
    verdict = Verdict(
        status=status,
        error_code=error_code,
        error_message=message,
        exit_code=result.exit_code,
        cpu_seconds=result.usage.cpu_seconds,
        usage_json=messages.usage_json(result.usage),
        steps_json=messages.steps_json(result.steps),
        dropped_json=json.dumps(list(result.dropped_output_files)),
    )
    return verdict, sorted(files.items())
