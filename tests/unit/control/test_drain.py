"""Control's drain (services/control/drain.py): which calls it refuses, and
how it waits for, then cancels, the executions in flight."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import grpc
import pytest

from services.control.drain import DRAINING_MESSAGE, Drain, DrainInterceptor, cancel_message, drain

EXECUTE = "/sandbox.control.v1.Control/Execute"
RUN_ARTIFACT = "/sandbox.control.v1.Artifacts/RunArtifact"


class Aborted(Exception):
    pass


class Context:
    def abort(self, code, details):
        self.code, self.details = code, details
        raise Aborted


def _served(request, context):
    yield "served"


def _deserialize(data):
    return data


def _intercept(drain_state: Drain, method: str):
    handler = grpc.unary_stream_rpc_method_handler(_served, _deserialize, None)
    return handler, DrainInterceptor(drain_state).intercept_service(lambda _: handler, SimpleNamespace(method=method))


def test_admitting_calls_are_served_until_the_drain_begins():
    handler, intercepted = _intercept(Drain(), EXECUTE)
    assert intercepted is handler


@pytest.mark.parametrize("method", [EXECUTE, RUN_ARTIFACT])
def test_admitting_calls_are_refused_unavailable_while_draining(method):
    stopping = Drain()
    stopping.begin()
    handler, intercepted = _intercept(stopping, method)
    # The method's own deserializer stays (authentication reads the request).
    assert intercepted.request_deserializer is handler.request_deserializer
    context = Context()
    with pytest.raises(Aborted):
        list(intercepted.unary_stream(b"", context))
    assert (context.code, context.details) == (grpc.StatusCode.UNAVAILABLE, DRAINING_MESSAGE)
    assert "draining" in DRAINING_MESSAGE


@pytest.mark.parametrize(
    "method", ["/sandbox.control.v1.Control/GetExecution", "/sandbox.control.v1.Control/CancelExecution"]
)
def test_other_calls_are_served_while_draining(method):
    stopping = Drain()
    stopping.begin()
    handler, intercepted = _intercept(stopping, method)
    assert intercepted is handler


class InFlight:
    def __init__(self, *executions):
        self.executions = list(executions)

    def all(self):
        return list(self.executions)


class Execution:
    def __init__(self, in_flight: InFlight, key: str):
        self.key, self.in_flight, self.done = key, in_flight, threading.Event()

    def end(self):
        self.in_flight.executions.remove(self)
        self.done.set()


class Relay:
    """Records each cancel and ends the execution, as the relay's worker does."""

    def __init__(self):
        self.cancelled: list[tuple[str, str]] = []

    def cancel(self, execution, reason):
        self.cancelled.append((execution.key, reason))
        execution.end()


def test_executions_that_end_within_the_drain_are_not_cancelled():
    in_flight = InFlight()
    quick = Execution(in_flight, "quick")
    in_flight.executions.append(quick)
    threading.Timer(0.2, quick.end).start()
    relay = Relay()
    assert drain(in_flight, relay, seconds=30, record_seconds=5) == []
    assert relay.cancelled == []


def test_executions_still_running_when_the_drain_ends_are_cancelled_with_its_reason():
    in_flight = InFlight()
    slow = Execution(in_flight, "slow")
    in_flight.executions.append(slow)
    relay = Relay()
    assert drain(in_flight, relay, seconds=0.3, record_seconds=5) == ["slow"]
    assert relay.cancelled == [("slow", cancel_message(0.3))]
    assert cancel_message(0.3) == "control shut down: the execution had not ended when the 0.3 s drain did"


def test_nothing_in_flight_returns_at_once():
    relay = Relay()
    assert drain(InFlight(), relay, seconds=3600, record_seconds=5) == []
