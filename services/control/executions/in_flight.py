"""The executions this control replica relays right now, each with its live
event buffer for the caller and its coalesced output previews."""

from __future__ import annotations

import threading
import time

import grpc

from sandbox.control.v1 import control_pb2 as pb
from services.common.channel import EventChannel
from services.control.executions.models import ExecutionRow, Previews

# Events buffered between the relay and a slow caller; past it the relay
# waits, and so (through its stream) does the spawner: memory stays bounded.
EVENT_CAPACITY = 256


class InFlightExecution:
    """One execution relayed by this process: the buffer of events its caller
    reads, the first `preview_bytes` of stdout and stderr (flushed to the
    record by the heartbeat flusher), what a cancel needs to reach it (the
    spawner's address, the spawner call, the reason), and how long it may
    wait for a slot (`queue_seconds` from now: its queue deadline)."""

    def __init__(self, row: ExecutionRow, preview_bytes: int, queue_seconds: float):
        self.key = row.key
        self.tenant = row.tenant
        self.execution_id = row.execution_id
        self.accepted_at = time.monotonic()
        self.queue_deadline = self.accepted_at + queue_seconds
        self.events: EventChannel[pb.ExecuteEvent] = EventChannel(EVENT_CAPACITY)
        self.preview_bytes = preview_bytes
        self.lock = threading.Lock()
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.stdout_cut = False
        self.stderr_cut = False
        self.dirty = False
        self.spawner = ""
        self.call: grpc.Call | None = None
        self.cancel_reason: str | None = None
        self.wake = threading.Event()
        self.done = threading.Event()

    def push(self, event: pb.ExecuteEvent) -> None:
        """Passes an event to the caller; dropped once the caller has gone."""
        self.events.put(event)

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.accepted_at) * 1000)

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

    def previews(self, clear: bool = True) -> Previews | None:
        """The previews; with `clear`, only when they changed since the last call."""
        with self.lock:
            if not self.dirty and clear:
                return None
            if clear:
                self.dirty = False
            return Previews(bytes(self.stdout), self.stdout_cut, bytes(self.stderr), self.stderr_cut)


class InFlightExecutions:
    """The in-flight executions of this replica by key (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, InFlightExecution] = {}

    def add(self, execution: InFlightExecution) -> None:
        with self._lock:
            self._by_key[execution.key] = execution

    def remove(self, key: str) -> None:
        with self._lock:
            self._by_key.pop(key, None)

    def get(self, key: str) -> InFlightExecution | None:
        with self._lock:
            return self._by_key.get(key)

    def all(self) -> list[InFlightExecution]:
        with self._lock:
            return list(self._by_key.values())
