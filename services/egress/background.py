"""What the egress runs beside the proxy on mitmproxy's event loop: the gRPC
service (decisions of an execution, admissions) and the timer that reports
suppressed refusals when their interval is over, also when a flood stopped
and no further refusal comes to trigger the report."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from services.egress.admissions import Admissions
from services.egress.audit import DecisionLog
from services.egress.grpc_service import DecisionSource, serve_decisions

log = logging.getLogger(__name__)

# Seconds the gRPC server gives calls in progress when the proxy stops.
GRPC_STOP_GRACE_SECONDS = 1


class Background:
    def __init__(self, decision_log: Callable[[], DecisionLog], clock: Callable[[], float]):
        # A callable: configure() may replace the addon's decision log.
        self._decision_log = decision_log
        self._clock = clock
        self._summaries: asyncio.Future | None = None
        self.grpc_server: grpc.aio.Server | None = None
        self.grpc_port: int | None = None

    async def start(
        self, grpc_listen: str, secret: bytes, decisions: DecisionSource, admissions: Admissions, interval: float
    ) -> None:
        if self._summaries is None:
            self._summaries = asyncio.ensure_future(self._write_refusal_summaries(interval))
        if grpc_listen and self.grpc_server is None:
            self.grpc_server, self.grpc_port = await serve_decisions(decisions, grpc_listen, secret, admissions)
            log.info("egress gRPC service listening on %s", grpc_listen)

    async def stop(self) -> None:
        if self._summaries is not None:
            self._summaries.cancel()
            self._summaries = None
        self._decision_log().flush(self._clock(), everything=True)  # whatever was counted is reported
        if self.grpc_server is not None:
            server, self.grpc_server = self.grpc_server, None
            await server.stop(GRPC_STOP_GRACE_SECONDS)

    async def _write_refusal_summaries(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self._decision_log().flush(self._clock())
