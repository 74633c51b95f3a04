"""The control domain object: admits executions against the tenant's quota,
runs each on a worker thread that drives a spawner and records what happens,
cancels, and keeps a heartbeat flusher and a watchdog. The gRPC servicer is a
thin layer on this."""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import grpc
from google.rpc import status_pb2
from grpc_status import rpc_status

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from sandbox.spawner.v1 import spawner_pb2 as spb
from services.control import convert, states
from services.control.blobs import BlobStore
from services.control.config import ControlSettings
from services.control.errors import InvalidArgument, Refused
from services.control.models import CANCELLED, COMPLETED, FAILED, INSTALLING, RUNNING, ExecutionRow
from services.control.pagination import PageRequest
from services.control.spawners import SpawnerPool
from services.control.store import Store, StoredFile, Verdict
from services.spawner.validation import ID_RE

log = logging.getLogger(__name__)

# Spawner statuses that mean "the request itself was refused": relayed to the
# caller, the record discarded.
REFUSALS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)
_PHASES = {spb.PHASE_INSTALLING: INSTALLING, spb.PHASE_RUNNING: RUNNING}
_END = object()
CANCEL_WAIT_SECONDS = 10.0
# Executions per ListExecutions page (control.proto).
MAX_PAGE_SIZE = 500


class Live:
    """An execution running in this process: its worker, caller queue and
    coalesced previews."""

    def __init__(self, row: ExecutionRow, preview_bytes: int):
        self.key = row.key
        self.tenant = row.tenant
        self.execution_id = row.execution_id
        self.accepted_at = time.monotonic()
        self.events: queue.Queue = queue.Queue()
        self.preview_bytes = preview_bytes
        self.lock = threading.Lock()
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.stdout_cut = False
        self.stderr_cut = False
        self.dirty = False
        self.spawner = ""
        self.call = None
        self.cancel_reason: str | None = None
        self.wake = threading.Event()
        self.done = threading.Event()
        self.listener_present = True

    def push(self, item) -> None:
        # Once the caller is gone only the end marker is queued: it releases
        # the server thread still waiting in events().
        if self.listener_present or item is _END:
            self.events.put(item)

    def add_output(self, stream: str, data: bytes) -> None:
        with self.lock:
            buffer = self.stdout if stream == "stdout" else self.stderr
            room = self.preview_bytes - len(buffer)
            if room > 0:
                buffer += data[:room]
                self.dirty = True
            if len(data) > max(room, 0):
                if stream == "stdout":
                    self.stdout_cut = True
                else:
                    self.stderr_cut = True
                self.dirty = True

    def previews(self, clear: bool = True) -> tuple[bytes, bool, bytes, bool] | None:
        with self.lock:
            if not self.dirty and clear:
                return None
            if clear:
                self.dirty = False
            return bytes(self.stdout), self.stdout_cut, bytes(self.stderr), self.stderr_cut


class Control:
    def __init__(self, settings: ControlSettings, store: Store, blobs: BlobStore, pool: SpawnerPool):
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.pool = pool
        self._live: dict[str, Live] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ---- background ------------------------------------------------------

    def start(self) -> None:
        for name, target in (("flusher", self._flusher), ("watchdog", self._watchdog)):
            thread = threading.Thread(target=target, name=f"control-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Cancels what is in flight here and waits for the records."""
        with self._lock:
            live = list(self._live.values())
        for item in live:
            self._request_cancel(item, "control is shutting down")
        deadline = time.monotonic() + grace_seconds
        for item in live:
            item.done.wait(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._flush_once()

    def _flusher(self) -> None:
        while not self._stop.wait(self.settings.flush_interval_seconds):
            try:
                self._flush_once()
            except Exception:  # noqa: BLE001 - keep flushing; the watchdog covers real trouble
                log.exception("heartbeat flush failed")

    def _flush_once(self) -> None:
        with self._lock:
            live = [item for item in self._live.values() if not item.done.is_set()]
        previews = {item.key: p for item in live if (p := item.previews()) is not None}
        self.store.flush([item.key for item in live], previews)

    def _watchdog(self) -> None:
        while not self._stop.wait(self.settings.watchdog_interval_seconds):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001
                log.exception("watchdog sweep failed")

    def sweep(self) -> list[str]:
        """Fails executions whose heartbeat stopped; returns their keys."""
        failed = []
        for row in self.store.stale(int(self.settings.watchdog_min_seconds * 1000)):
            verdict = Verdict(
                status=FAILED,
                error_code="SPAWNER_UNAVAILABLE",
                error_message="no heartbeat from the execution's relay; the watchdog gave up on it",
            )
            if self.store.finalize(row.key, verdict):
                log.warning("watchdog failed execution %s of tenant %s", row.execution_id, row.tenant)
                failed.append(row.key)
                if row.spawner:
                    self.pool.cancel(row.spawner, row.key, row.tenant)
        return failed

    # ---- execute ---------------------------------------------------------

    def execute(
        self,
        tenant: str,
        request: pb.ExecuteRequest,
        *,
        prior_outputs: Sequence[common.File] = (),
        stderr_notice: bytes = b"",
        also: Callable | None = None,
    ) -> Live:
        """Admits (raises QuotaExceeded, AlreadyExists, InvalidArgument) and
        starts the worker; the caller reads `events(live)`.

        Internal extras (not in the public ExecuteRequest), used by artifact
        runs: `prior_outputs` are pre-staged into /workspace/output/ by the
        spawner; `stderr_notice` is sent as the first stderr chunk and kept in
        the stderr preview; `also(session, row)` writes rows that belong to the
        execution in its admission transaction (Store.reserve)."""
        execution_id = request.execution_id or f"ex-{secrets.token_hex(8)}"
        if not ID_RE.match(execution_id):
            raise InvalidArgument("execution_id", "must match [A-Za-z0-9_-]{1,64}")
        if request.session_id and not ID_RE.match(request.session_id):
            raise InvalidArgument("session_id", "must match [A-Za-z0-9_-]{1,64}")
        if request.language not in (common.LANGUAGE_PYTHON, common.LANGUAGE_NODE):
            raise InvalidArgument("language", "must be LANGUAGE_PYTHON or LANGUAGE_NODE")
        timeout_ms = request.limits.timeout_ms or self.settings.default_timeout_ms
        if not 100 <= timeout_ms <= self.settings.max_timeout_ms:
            raise InvalidArgument("limits.timeout_ms", f"must be between 100 and {self.settings.max_timeout_ms}")
        row = self.store.reserve(
            key=secrets.token_hex(16),
            tenant=tenant,
            execution_id=execution_id,
            session_id=request.session_id,
            language=request.language,
            timeout_ms=timeout_ms,
            also=also,
        )
        live = Live(row, self.settings.preview_bytes)
        with self._lock:
            self._live[row.key] = live
        live.push(pb.ExecuteEvent(accepted=pb.Accepted(execution_id=execution_id, status=common.EXECUTION_STATUS_QUEUED)))
        if stderr_notice:
            live.add_output("stderr", stderr_notice)
            live.push(pb.ExecuteEvent(stderr=pb.OutputChunk(data=stderr_notice)))
        spawner_request = spb.ExecuteRequest(
            execution_id=row.key,
            tenant=tenant,
            language=request.language,
            files=request.files,
            entry=request.entry,
            steps=request.steps,
            packages=request.packages,
            limits=common.Limits(
                timeout_ms=timeout_ms, memory_bytes=request.limits.memory_bytes, cpus=request.limits.cpus
            ),
            env=request.env,
            stdin=request.stdin,
            args=request.args,
            prior_outputs=prior_outputs,
            install=spb.InstallOptions(
                allow_sdist=request.install.allow_sdist,
                allow_install_scripts=request.install.allow_install_scripts,
            ),
        )
        worker = threading.Thread(target=self._work, args=(live, spawner_request), name=f"relay-{row.key[:8]}", daemon=True)
        worker.start()
        return live

    @staticmethod
    def events(live: Live) -> Iterator[pb.ExecuteEvent]:
        """The caller's view: events until `finished`; raises Refused."""
        while True:
            try:
                item = live.events.get(timeout=1.0)
            except queue.Empty:
                if live.done.is_set() and live.events.empty():
                    return
                continue
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def listener_gone(self, live: Live) -> None:
        """The caller hung up: a running execution is cancelled."""
        live.listener_present = False
        if not live.done.is_set():
            self._request_cancel(live, "the caller went away")

    def _work(self, live: Live, request: spb.ExecuteRequest) -> None:
        try:
            self._run(live, request)
        except Exception as exc:  # noqa: BLE001 - whatever broke, the record gets a verdict
            log.exception("relay of execution %s failed", live.key)
            self._finalize(live, Verdict(FAILED, "SPAWNER_UNAVAILABLE", f"control error: {exc}"))
        finally:
            with self._lock:
                self._live.pop(live.key, None)
            live.done.set()
            live.push(_END)

    def _finish_event(self, live: Live) -> None:
        row = self.store.by_key(live.key)
        if row is not None:
            live.push(pb.ExecuteEvent(finished=convert.execution(row, self.store.files(row.key))))

    def _finalize(self, live: Live, verdict: Verdict, files: list[tuple[str, bytes]] = ()) -> None:
        previews = live.previews(clear=False)
        if verdict.stdout_preview is None and previews is not None:
            out, out_cut, err, err_cut = previews
            verdict = dataclasses.replace(
                verdict, stdout_preview=out, stdout_truncated=out_cut, stderr_preview=err, stderr_truncated=err_cut
            )
        self.record(live.key, verdict, files)
        self._finish_event(live)

    def record(self, key: str, verdict: Verdict, files: list[tuple[str, bytes]] = ()) -> bool:
        """All-or-nothing: blobs first (temp + rename), then the rows and the
        quota settlement in one transaction; blobs this call created are
        removed again when that transaction fails or is a no-op."""
        digests, created = self.blobs.put_all([content for _, content in files])
        stored = [StoredFile(path, len(content), digest) for (path, content), digest in zip(files, digests)]
        applied = False
        try:
            applied = self.store.finalize(key, verdict, stored)
        finally:
            if not applied and created:
                still_used = self.store.referenced(created)
                self.blobs.remove([d for d in created if d not in still_used])
        return applied

    def _run(self, live: Live, request: spb.ExecuteRequest) -> None:
        deadline = time.monotonic() + self.settings.queue_timeout_seconds
        while True:
            if live.cancel_reason is not None:
                self._finalize(live, Verdict(CANCELLED, "CANCELLED", live.cancel_reason, cpu_seconds=0.0))
                return
            if time.monotonic() > deadline:
                message = f"no spawner took the execution within {self.settings.queue_timeout_seconds:.0f}s"
                self._finalize(live, Verdict(FAILED, "SPAWNER_UNAVAILABLE", message, cpu_seconds=0.0))
                return
            spawner = self.pool.pick()
            if spawner is None:
                live.wake.wait(0.2)
                continue
            if not self.store.assign_spawner(live.key, spawner.address):
                self._finish_event(live)  # cancelled (or failed) while queued
                return
            live.spawner = spawner.address
            timeout = request.limits.timeout_ms / 1000 * 2 + 120
            call = spawner.stub.Execute(request, timeout=timeout)
            live.call = call
            if live.cancel_reason is not None:
                self._request_cancel(live, live.cancel_reason)
            try:
                first = next(call)
            except StopIteration:
                self.pool.mark_unhealthy(spawner.address, "stream ended without events")
                continue
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    live.wake.wait(0.1)  # its last slot went to someone else
                    continue
                if code == grpc.StatusCode.CANCELLED and live.cancel_reason is not None:
                    continue  # loop top records the cancellation
                if code in REFUSALS or code == grpc.StatusCode.ALREADY_EXISTS:
                    status = rpc_status.from_call(exc) or status_pb2.Status(
                        code=code.value[0], message=exc.details() or ""
                    )
                    if self.store.discard(live.key):
                        live.push(Refused(status))
                    else:
                        self._finish_event(live)
                    return
                # Nothing started there: try another spawner.
                self.pool.mark_unhealthy(spawner.address, f"Execute failed: {code.name}")
                live.wake.wait(0.1)
                continue
            self._relay(live, spawner.address, call, first)
            return

    def _relay(self, live: Live, address: str, call, first: spb.ExecuteEvent) -> None:
        chunks: dict[str, bytearray] = {}
        try:
            for event in _chain(first, call):
                kind = event.WhichOneof("event")
                if kind == "phase":
                    target = _PHASES.get(event.phase.phase)
                    if target is not None:
                        if self.store.advance(live.key, target):
                            live.push(
                                pb.ExecuteEvent(
                                    status=pb.StatusChange(
                                        status=states.to_proto(target), elapsed_ms=_elapsed(live)
                                    )
                                )
                            )
                        elif _terminal(self.store.by_key(live.key)):
                            # A verdict is already in (cancel, watchdog): stop the run.
                            call.cancel()
                            self._finish_event(live)
                            return
                elif kind in ("stdout", "stderr"):
                    chunk = getattr(event, kind)
                    live.add_output(kind, chunk.data)
                    live.push(pb.ExecuteEvent(**{kind: pb.OutputChunk(data=chunk.data, step_index=chunk.step_index)}))
                elif kind == "step":
                    live.push(pb.ExecuteEvent(step=event.step))
                elif kind == "output_file":
                    part = event.output_file
                    chunks.setdefault(part.path, bytearray()).extend(part.content)
                elif kind == "result":
                    verdict, files = _verdict(event.result, chunks)
                    if verdict.status == CANCELLED and live.cancel_reason is not None:
                        # The spawner only knows it was asked to; control knows why.
                        verdict = dataclasses.replace(verdict, error_message=live.cancel_reason)
                    self._finalize(live, verdict, files)
                    return
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED and live.cancel_reason is not None:
                self._finalize(live, Verdict(CANCELLED, "CANCELLED", live.cancel_reason))
                return
            self.pool.mark_unhealthy(address, f"stream broke: {exc.code().name}")
            self._finalize(live, Verdict(FAILED, "SPAWNER_UNAVAILABLE", f"the spawner's stream broke: {exc.code().name}"))
            return
        self.pool.mark_unhealthy(address, "stream ended without a result")
        self._finalize(live, Verdict(FAILED, "SPAWNER_UNAVAILABLE", "the spawner's stream ended without a result"))

    # ---- cancel ----------------------------------------------------------

    def _request_cancel(self, live: Live, reason: str) -> None:
        if live.cancel_reason is None:
            live.cancel_reason = reason
        live.wake.set()
        if live.spawner and not self.pool.cancel(live.spawner, live.key, live.tenant):
            call = live.call
            if call is not None:
                call.cancel()

    def cancel(self, tenant: str, execution_id: str) -> tuple[bool, ExecutionRow]:
        row = self.store.get(tenant, execution_id)
        return self._cancel_rows([row], "cancelled by the caller")[0]

    def cancel_session(self, tenant: str, session_id: str) -> list[str]:
        if not ID_RE.match(session_id):
            raise InvalidArgument("session_id", "must match [A-Za-z0-9_-]{1,64}")
        rows = self.store.live_in_session(tenant, session_id)
        results = self._cancel_rows(rows, "the session was cancelled")
        return [row.execution_id for cancelled, row in results if cancelled]

    def _cancel_rows(self, rows: list[ExecutionRow], reason: str) -> list[tuple[bool, ExecutionRow]]:
        pending = []
        for row in rows:
            if row.status in states.TERMINAL:
                continue
            with self._lock:
                live = self._live.get(row.key)
            if live is not None:
                self._request_cancel(live, reason)
            elif row.spawner:
                self.pool.cancel(row.spawner, row.key, row.tenant)  # another replica relays it
            pending.append(row.key)
        # The relay records the spawner's CANCELLED result (usage, partial
        # files); a verdict is forced when none arrives in time.
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        for key in pending:
            while time.monotonic() < deadline and not _terminal(self.store.by_key(key)):
                time.sleep(0.05)
            row = self.store.by_key(key)
            if not _terminal(row):
                self.store.finalize(key, Verdict(CANCELLED, "CANCELLED", reason, cpu_seconds=None if row.started_at_ms else 0.0))
        results = []
        for row in rows:
            current = self.store.by_key(row.key)
            results.append((row.key in pending and current.status == CANCELLED, current))
        return results

    # ---- reads -----------------------------------------------------------

    def get(self, tenant: str, execution_id: str) -> pb.Execution:
        row = self.store.get(tenant, execution_id)
        return convert.execution(row, self.store.files(row.key))

    def list(self, tenant: str, request: pb.ListExecutionsRequest) -> pb.ListExecutionsResponse:
        if request.session_id and not ID_RE.match(request.session_id):
            raise InvalidArgument("session_id", "must match [A-Za-z0-9_-]{1,64}")
        try:
            statuses = [states.from_proto(s) for s in request.statuses]
        except ValueError as exc:
            raise InvalidArgument("statuses", str(exc)) from None
        page = PageRequest.parse(request.page_size, request.page_token, max_size=MAX_PAGE_SIZE)
        rows, token = self.store.list(tenant, statuses=statuses, session_id=request.session_id, page=page)
        return pb.ListExecutionsResponse(
            executions=[convert.execution(row, detail=False) for row in rows], next_page_token=token
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
        return pb.Quota(
            tenant=tenant,
            max_in_flight=usage.limits.max_in_flight,
            in_flight=usage.in_flight,
            daily_cpu_seconds=usage.limits.daily_cpu_seconds,
            cpu_seconds_used=usage.cpu_seconds_used,
            day=usage.day,
        )


def _chain(first, rest):
    yield first
    yield from rest


def _elapsed(live: Live) -> int:
    return int((time.monotonic() - live.accepted_at) * 1000)


def _terminal(row: ExecutionRow | None) -> bool:
    return row is None or row.status in states.TERMINAL


def _verdict(result: spb.ExecuteResult, chunks: dict[str, bytearray]) -> tuple[Verdict, list[tuple[str, bytes]]]:
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
    verdict = Verdict(
        status=status,
        error_code=states.error_name(result.error_code) if status != COMPLETED else "",
        error_message=result.error_message,
        exit_code=result.exit_code,
        cpu_seconds=result.usage.cpu_seconds,
        usage_json=convert.usage_json(result.usage),
        steps_json=convert.steps_json(result.steps),
        dropped_json=json.dumps(list(result.dropped_output_files)),
    )
    return verdict, sorted(files.items())
