"""The grpc.aio side of trace context (the egress's server): a call is
served under the caller's trace and nothing of it stays for the next call."""

from __future__ import annotations

import asyncio
import json

import grpc

from services.common.tracing import AsyncServerTraceInterceptor, current_ids, outgoing_metadata

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
METHOD = "/sandbox.test.v1.Trace/Unary"


def _raw(value: bytes) -> bytes:
    return value


async def _seen(request, context) -> bytes:
    ids = current_ids()
    onward = dict(outgoing_metadata()).get("traceparent", "")
    return json.dumps({"trace_id": ids[0] if ids else "", "onward": onward}).encode()


async def _serve_and_call() -> list[dict]:
    handlers = grpc.method_handlers_generic_handler(
        "sandbox.test.v1.Trace", {"Unary": grpc.unary_unary_rpc_method_handler(_seen, _raw, _raw)}
    )
    server = grpc.aio.server(interceptors=[AsyncServerTraceInterceptor()])
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(METHOD, request_serializer=_raw, response_deserializer=_raw)
            traced = await call(b"", metadata=[("traceparent", TRACEPARENT)], timeout=10)
            untraced = await call(b"", timeout=10)
    finally:
        await server.stop(None)
    return [json.loads(traced), json.loads(untraced)]


def test_an_async_call_is_served_in_the_callers_trace_and_only_it():
    traced, untraced = asyncio.run(_serve_and_call())
    assert traced == {"trace_id": TRACE_ID, "onward": TRACEPARENT}
    assert untraced == {"trace_id": "", "onward": ""}
