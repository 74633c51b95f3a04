"""Control's drain on SIGTERM: it stops admitting (Execute and RunArtifact
are refused UNAVAILABLE, naming the drain), lets the executions it relays
finish for up to the drain's grace period, then cancels the rest with a
reason their records keep (CANCELLED, `cancel_message`). Reads, cancels and
artifact edits are still served meanwhile; server.py then stops the server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import grpc

from services.control.executions.in_flight import InFlightExecutions
from services.control.relay import Relay

log = logging.getLogger(__name__)

# The calls that admit an execution; everything else is served to the end.
ADMITTING_METHODS = frozenset({"/sandbox.control.v1.Control/Execute", "/sandbox.control.v1.Artifacts/RunArtifact"})
DRAINING_MESSAGE = (
    "control is draining (shutting down) and admits no new executions; retry on another replica or once it is back"
)
# How often the drain looks whether the executions in flight are done.
POLL_SECONDS = 0.1


def cancel_message(seconds: float) -> str:
    return f"control shut down: the execution had not ended when the {seconds:g} s drain did"


class Drain:
    """Whether control is draining; the interceptor and the stop share it."""

    def __init__(self) -> None:
        self._draining = threading.Event()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def begin(self) -> None:
        self._draining.set()


class DrainInterceptor(grpc.ServerInterceptor):
    """Refuses the admitting calls once the drain began. It keeps the method's
    own (de)serializers, so the interceptors before it (authentication) see
    the request as always: an unsigned call is still UNAUTHENTICATED."""

    def __init__(self, drain: Drain):
        self._drain = drain

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method not in ADMITTING_METHODS or not self._drain.draining:
            return handler
        return grpc.unary_stream_rpc_method_handler(_refuse, handler.request_deserializer, handler.response_serializer)


def _refuse(request, context):
    context.abort(grpc.StatusCode.UNAVAILABLE, DRAINING_MESSAGE)
    yield  # pragma: no cover - abort raises; the yield makes this a stream


def drain(
    in_flight: InFlightExecutions,
    relay: Relay,
    seconds: float,
    record_seconds: float,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Waits up to `seconds` for the executions in flight to end, then
    cancels the rest and waits up to `record_seconds` for their records.
    Returns the keys of the executions it cancelled."""
    deadline = clock() + seconds
    if in_flight.all():
        log.info("draining: %d executions in flight, up to %g s", len(in_flight.all()), seconds)
    while clock() < deadline:
        live = in_flight.all()
        if not live:
            return []
        live[0].done.wait(min(POLL_SECONDS, max(0.0, deadline - clock())))
    left = in_flight.all()
    reason = cancel_message(seconds)
    for execution in left:
        relay.cancel(execution, reason)
    record_deadline = clock() + record_seconds
    for execution in left:
        execution.done.wait(max(0.0, record_deadline - clock()))
    if left:
        log.warning("drain over: %d executions cancelled (%s)", len(left), reason)
    return [execution.key for execution in left]
