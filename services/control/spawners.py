"""The spawners control may use: picks the one with the most free slots
(`Info`), skips one whose call failed for a while, signs every call."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import grpc
from sandbox.spawner.v1 import spawner_pb2 as spb
from sandbox.spawner.v1 import spawner_pb2_grpc

from services.common.auth import ClientAuthInterceptor

log = logging.getLogger(__name__)

MAX_MESSAGE = 256 * 1024 * 1024
INFO_TIMEOUT = 3.0


@dataclasses.dataclass
class Spawner:
    address: str
    channel: grpc.Channel
    stub: spawner_pb2_grpc.SpawnerStub
    unhealthy_until: float = 0.0


class SpawnerPool:
    def __init__(self, addresses: tuple[str, ...], secret: bytes | None, unhealthy_seconds: float):
        self.unhealthy_seconds = unhealthy_seconds
        self._lock = threading.Lock()
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
            if secret:
                channel = grpc.intercept_channel(raw, ClientAuthInterceptor(secret))
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

    def pick(self) -> Spawner | None:
        """The healthy spawner with the most free slots, or None when none has one."""
        best, best_free = None, 0
        for spawner in self.healthy():
            try:
                info = spawner.stub.Info(spb.InfoRequest(), timeout=INFO_TIMEOUT)
            except grpc.RpcError as exc:
                self.mark_unhealthy(spawner.address, f"Info failed: {exc.code().name}")
                continue
            if info.free_slots > best_free:
                best, best_free = spawner, info.free_slots
        return best

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

    def close(self) -> None:
        for spawner in self._spawners.values():
            spawner.channel.close()
