"""The spawners control may use: picks the one with the most free slots
(`Info`), knows the mesh's slots (the sum of what the healthy spawners
report as their capacity), skips one whose call failed for a while, signs
every call."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import grpc

from sandbox.spawner.v1 import spawner_pb2 as spb
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.common.tracing import ClientTraceInterceptor

log = logging.getLogger(__name__)

MAX_MESSAGE = 256 * 1024 * 1024
INFO_TIMEOUT = 3.0
# A spawner's reported capacity is asked again when older than this.
CAPACITY_TTL_SECONDS = 5.0


@dataclasses.dataclass
class Spawner:
    address: str
    channel: grpc.Channel
    stub: spawner_pb2_grpc.SpawnerStub
    unhealthy_until: float = 0.0
    # Its slots as it last reported them (Info), and when.
    capacity: int = 0
    capacity_at: float = float("-inf")
    # The sandbox runtimes it offered then, and what "" meant there.
    sandbox_runtimes: frozenset[str] = frozenset()
    default_runtime: str = ""


class SpawnerPool:
    def __init__(self, addresses: tuple[str, ...], secret: bytes | None, unhealthy_seconds: float):
        self.unhealthy_seconds = unhealthy_seconds
        self._lock = threading.Lock()
        # Held by the one thread asking stale spawners for their capacity.
        self._refreshing = threading.Lock()
        self._spawners: dict[str, Spawner] = {}
        for address in addresses:
            channel = grpc.insecure_channel(
                address,
                options=[
                    ("grpc.max_receive_message_length", MAX_MESSAGE),
                    ("grpc.max_send_message_length", MAX_MESSAGE),
                ],
            )
            raw = channel
            # Every call carries the trace of the execution it serves (tracing.py).
            channel = grpc.intercept_channel(raw, ClientTraceInterceptor())
            if secret:
                channel = grpc.intercept_channel(channel, ClientAuthInterceptor(secret))
            self._spawners[address] = Spawner(address, raw, spawner_pb2_grpc.SpawnerStub(channel))

    def healthy(self) -> list[Spawner]:
        now = time.monotonic()
        with self._lock:
            return [s for s in self._spawners.values() if s.unhealthy_until <= now]

    def mark_unhealthy(self, address: str, reason: str) -> None:
        log.warning("spawner %s marked unhealthy for %.0fs: %s", address, self.unhealthy_seconds, reason)
        with self._lock:
            spawner = self._spawners.get(address)
            if spawner is not None:
                spawner.unhealthy_until = time.monotonic() + self.unhealthy_seconds

    def _info(self, spawner: Spawner) -> spb.InfoResponse | None:
        """The spawner's Info (its capacity noted), or None when the call failed."""
        try:
            info = spawner.stub.Info(spb.InfoRequest(), timeout=INFO_TIMEOUT)
        except grpc.RpcError as exc:
            self.mark_unhealthy(spawner.address, f"Info failed: {exc.code().name}")
            return None
        spawner.capacity, spawner.capacity_at = info.capacity, time.monotonic()
        spawner.sandbox_runtimes = frozenset(info.sandbox_runtimes)
        spawner.default_runtime = info.default_runtime
        return info

    def pick(self, runtime: str = "") -> Spawner | None:
        """The healthy spawner with the most free slots that offers the
        sandbox `runtime` (any, for ""), or None when none has one. With one
        healthy spawner there is nothing to compare: it is called at once (a
        full one refuses with no free slot, and the relay asks again), which
        saves an Info round trip per execution."""
        healthy = [s for s in self.healthy() if not runtime or not s.sandbox_runtimes or runtime in s.sandbox_runtimes]
        if len(healthy) == 1:
            return healthy[0]
        best, best_free = None, 0
        for spawner in healthy:
            info = self._info(spawner)
            if info is not None and info.free_slots > best_free:
                best, best_free = spawner, info.free_slots
        return best

    def capacity(self) -> int:
        """The mesh's slots: what the healthy spawners reported as their
        capacity, asked again when older than CAPACITY_TTL_SECONDS (by one
        thread at a time; the others take the last answers)."""
        self._refresh()
        return sum(spawner.capacity for spawner in self.healthy())

    def sandbox_runtimes(self) -> tuple[frozenset[str], str]:
        """The sandbox runtimes the healthy spawners offer, and what "" means
        on them (the first one's default), as last reported (asked again as
        capacity() does, and at once by the one thread asking when none has
        answered yet)."""
        self._refresh(wait=True)
        healthy = self.healthy()
        offered = frozenset().union(*(s.sandbox_runtimes for s in healthy))
        default = next((s.default_runtime for s in healthy if s.default_runtime), "")
        return offered, default

    def _refresh(self, wait: bool = False) -> None:
        now = time.monotonic()
        stale = [s for s in self.healthy() if now - s.capacity_at > CAPACITY_TTL_SECONDS]
        if stale and self._refreshing.acquire(blocking=wait):
            try:
                for spawner in stale:
                    if time.monotonic() - spawner.capacity_at > CAPACITY_TTL_SECONDS:  # another thread may have asked
                        self._info(spawner)
            finally:
                self._refreshing.release()

    def by_address(self, address: str) -> Spawner | None:
        return self._spawners.get(address)

    def cancel(self, address: str, execution_key: str, tenant: str) -> bool:
        spawner = self._spawners.get(address)
        if spawner is None:
            return False
        try:
            response = spawner.stub.Cancel(
                spb.CancelRequest(execution_id=execution_key, tenant=tenant), timeout=INFO_TIMEOUT
            )
        except grpc.RpcError as exc:
            log.warning("cancel on spawner %s failed: %s", address, exc.code().name)
            return False
        return response.cancelled

    def executions(self, address: str) -> spb.ListExecutionsResponse | None:
        """What the spawner at `address` runs now and how its latest
        executions ended; None when it is not one of ours or did not answer
        (it is not marked unhealthy for that: the relay's own calls judge)."""
        spawner = self._spawners.get(address)
        if spawner is None:
            return None
        try:
            return spawner.stub.ListExecutions(spb.ListExecutionsRequest(), timeout=INFO_TIMEOUT)
        except grpc.RpcError as exc:
            log.info("ListExecutions on spawner %s failed: %s", address, exc.code().name)
            return None

    def close(self) -> None:
        for spawner in self._spawners.values():
            spawner.channel.close()
