"""Trace context through gRPC with the OpenTelemetry API alone: a client
sends the current context, a server serves the call under it (unary and
streaming) and sends it on, log records name the trace."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import threading

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from services.common import grpc_server
from services.common.logs import setup_logging
from services.common.tracing import (
    ClientTraceInterceptor,
    ServerTraceInterceptor,
    TraceLogFilter,
    current_ids,
    incoming_context,
    outgoing_metadata,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
SERVICE = "sandbox.test.v1.Trace"


def _raw(value: bytes) -> bytes:
    return value


def _seen() -> bytes:
    """What a handler sees: its trace id and the traceparent it would send on."""
    ids = current_ids()
    onward = dict(outgoing_metadata()).get("traceparent", "")
    return json.dumps({"trace_id": ids[0] if ids else "", "onward": onward}).encode()


def _unary(request, context):
    return _seen()


def _streaming(request, context):
    yield _seen()
    yield _seen()


def _start_server():
    handlers = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(_unary, _raw, _raw),
            "Stream": grpc.unary_stream_rpc_method_handler(_streaming, _raw, _raw),
        },
    )
    server = grpc_server.thread_pool_server(workers=2, interceptors=[ServerTraceInterceptor()])
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def _calls(channel):
    unary = channel.unary_unary(f"/{SERVICE}/Unary", request_serializer=_raw, response_deserializer=_raw)
    stream = channel.unary_stream(f"/{SERVICE}/Stream", request_serializer=_raw, response_deserializer=_raw)
    return unary, stream


def test_no_trace_outside_a_context():
    assert current_ids() is None
    assert outgoing_metadata() == []


def test_the_incoming_traceparent_is_the_current_trace():
    token = otel_context.attach(incoming_context([("traceparent", TRACEPARENT), ("other", "x")]))
    try:
        assert current_ids() == (TRACE_ID, SPAN_ID)
        assert dict(outgoing_metadata())["traceparent"] == TRACEPARENT
    finally:
        otel_context.detach(token)


def test_a_forged_or_malformed_traceparent_is_no_trace_and_never_reaches_a_log_line():
    # A caller controls its metadata: whatever is not a well-formed W3C
    # traceparent is dropped, not logged, not sent on.
    forged = [
        "00-" + "0" * 32 + "-" + SPAN_ID + "-01",  # the invalid all-zero trace id
        "00-" + TRACE_ID + '", "tenant": "someone-else' + "-" + SPAN_ID + "-01",
        "00-" + TRACE_ID + '\n{"level": "ERROR"}-' + SPAN_ID + "-01",
        "ff-" + TRACE_ID + "-" + SPAN_ID + "-01",
        "x" * 100_000,
        "",
    ]
    for value in forged:
        token = otel_context.attach(incoming_context([("traceparent", value)]))
        try:
            assert current_ids() is None, value[:80]
            assert outgoing_metadata() == [], value[:80]
        finally:
            otel_context.detach(token)


def test_a_call_carries_the_callers_trace_to_the_handler_and_onward():
    server, port = _start_server()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as raw:
            unary, stream = _calls(grpc.intercept_channel(raw, ClientTraceInterceptor()))
            token = otel_context.attach(incoming_context([("traceparent", TRACEPARENT)]))
            try:
                answers = [json.loads(unary(b"", timeout=10))] + [json.loads(a) for a in stream(b"", timeout=10)]
            finally:
                otel_context.detach(token)
            untraced = json.loads(unary(b"", timeout=10))
    finally:
        server.stop(grace=None).wait()
    assert len(answers) == 3
    for answer in answers:
        assert answer == {"trace_id": TRACE_ID, "onward": TRACEPARENT}
    # Nothing of the traced calls stays with the server's threads.
    assert untraced == {"trace_id": "", "onward": ""}


def test_a_thread_started_in_a_copy_of_the_context_keeps_the_trace():
    seen: list = []
    token = otel_context.attach(incoming_context([("traceparent", TRACEPARENT)]))
    try:
        worker = threading.Thread(target=contextvars.copy_context().run, args=(lambda: seen.append(current_ids()),))
    finally:
        otel_context.detach(token)
    worker.start()
    worker.join()
    assert seen == [(TRACE_ID, SPAN_ID)]


def test_log_lines_inside_a_trace_name_it():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging(stream=stream, filters=[TraceLogFilter()])
    try:
        logging.getLogger("test.tracing").info("outside")
        token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(_span_context())))
        try:
            logging.getLogger("test.tracing").info("inside")
        finally:
            otel_context.detach(token)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "trace_id" not in outside
    assert (inside["trace_id"], inside["span_id"]) == (TRACE_ID, SPAN_ID)


def _span_context() -> trace.SpanContext:
    return trace.SpanContext(int(TRACE_ID, 16), int(SPAN_ID, 16), is_remote=True, trace_flags=trace.TraceFlags(1))
