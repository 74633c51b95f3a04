"""Trace context across the mesh, with the OpenTelemetry API only.

A caller's W3C `traceparent` (and `tracestate`, baggage) travels as gRPC
metadata: the client puts the current context on each call
(`ClientTraceInterceptor`), a server takes it from the call
(`ServerTraceInterceptor`), starts its span for the call under it, and the
calls it makes while serving are sent with that context again
(`AsyncServerTraceInterceptor` does the same for grpc.aio servers: the
egress's). Control and
the spawner run an execution on a thread of its own: the thread is started
in a copy of the serving thread's context (`contextvars.copy_context()`), so
it carries the trace too.

Without an SDK the API's spans record nothing, but a span started under an
incoming context keeps that context's trace id and span id: the trace id
reaches every service's log lines (`TraceLogFilter`) and every onward call.
An operator who installs opentelemetry-sdk and an exporter gets real spans
(README, "Tracing"); nothing here changes for that.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from services.common.auth import CallDetails

TRACER_NAME = "sandbox-mesh"
_tracer = trace.get_tracer(TRACER_NAME)


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, None outside a trace."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return trace.format_trace_id(span_context.trace_id), trace.format_span_id(span_context.span_id)


def outgoing_metadata() -> list[tuple[str, str]]:
    """The current trace context as gRPC metadata (empty outside a trace)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())


def incoming_context(metadata) -> otel_context.Context:
    """The trace context a caller sent in its metadata (empty when it sent none)."""
    return propagate.extract({key: value for key, value in metadata or ()})


class TraceLogFilter(logging.Filter):
    """Adds `trace_id` and `span_id` to every record logged inside a trace, so
    the JSON line of each service names the trace it belongs to."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_ids()
        if ids is not None and not hasattr(record, "trace_id"):
            record.trace_id, record.span_id = ids
        return True


class ClientTraceInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Sends the current trace context with every call of a channel."""

    @staticmethod
    def _details(details):
        extra = outgoing_metadata()
        if not extra:
            return details
        names = {name for name, _ in extra}
        metadata = [(k, v) for k, v in (details.metadata or []) if k not in names]
        return CallDetails(details, metadata + extra)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)


class ServerTraceInterceptor(grpc.ServerInterceptor):
    """Serves each call inside a span of its own, a child of the context the
    caller sent. Each call runs in a context copy of its own: nothing it
    attaches outlives it or leaks into the next call on the same thread."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.request_streaming:
            return handler
        method = handler_call_details.method
        metadata = tuple(handler_call_details.invocation_metadata or ())
        if handler.response_streaming:
            return handler._replace(unary_stream=_streaming(handler.unary_stream, method, metadata))
        return handler._replace(unary_unary=_unary(handler.unary_unary, method, metadata))


def _scope(method: str, metadata) -> tuple[contextvars.Context, trace.Span]:
    parent = incoming_context(metadata)
    span = _tracer.start_span(method, context=parent, kind=trace.SpanKind.SERVER)
    scope = contextvars.copy_context()
    scope.run(otel_context.attach, trace.set_span_in_context(span, parent))
    return scope, span


def _unary(behavior: Callable[[Any, Any], Any], method: str, metadata) -> Callable[[Any, Any], Any]:
    def serve(request, context):
        scope, span = _scope(method, metadata)
        try:
            return scope.run(behavior, request, context)
        finally:
            span.end()

    return serve


def _streaming(behavior: Callable[[Any, Any], Iterator], method: str, metadata) -> Callable[[Any, Any], Iterator]:
    def serve(request, context):
        scope, span = _scope(method, metadata)
        responses = scope.run(lambda: iter(behavior(request, context)))
        try:
            while True:
                try:
                    item = scope.run(next, responses)
                except StopIteration:
                    return
                yield item
        finally:
            close = getattr(responses, "close", None)
            if close is not None:
                scope.run(close)
            span.end()

    return serve


class AsyncServerTraceInterceptor(grpc.aio.ServerInterceptor):
    """ServerTraceInterceptor for grpc.aio servers (the egress serves on
    mitmproxy's event loop); unary-unary calls only, which is all it serves.
    grpc.aio serves each call in a task of its own, which runs in a copy of
    the context: what is attached here stays with that call."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or not handler.unary_unary:
            return handler
        method = handler_call_details.method
        metadata = tuple(handler_call_details.invocation_metadata or ())
        inner = handler.unary_unary

        async def unary_unary(request, context):
            parent = incoming_context(metadata)
            span = _tracer.start_span(method, context=parent, kind=trace.SpanKind.SERVER)
            token = otel_context.attach(trace.set_span_in_context(span, parent))
            try:
                return await inner(request, context)
            finally:
                otel_context.detach(token)
                span.end()

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer
        )
