"""Turning domain errors into rich gRPC statuses: shared by every servicer.

Each service keeps its own `to_status(exc)` (the one place its domain errors
map to codes and details); `error_mapper(to_status)` makes the decorator its
servicer methods wear.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

log = logging.getLogger(__name__)

ToStatus = Callable[[Exception], "status_pb2.Status | None"]


def rich_status(code: grpc.StatusCode, message: str, *details) -> status_pb2.Status:
    """A google.rpc.Status with the given detail messages packed in."""
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=packed)


def error_mapper(to_status: ToStatus):
    """A decorator for servicer methods (unary or server-streaming): domain
    errors abort the call with their status; anything else is logged and
    becomes INTERNAL without leaking its text."""

    def decorate(method):
        def abort(context, exc):
            status = to_status(exc)
            if status is None:
                # called from the except clauses below, hence exc_info given explicitly
                log.error("unexpected error in %s", method.__name__, exc_info=exc)
                status = rich_status(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
            context.abort_with_status(rpc_status.to_status(status))

        def already_a_status(exc, context) -> bool:
            return isinstance(exc, grpc.RpcError) or context.code() is not None

        if inspect.isgeneratorfunction(method):

            @functools.wraps(method)
            def streaming(self, request, context):
                try:
                    yield from method(self, request, context)
                except Exception as exc:  # mapped or logged in abort()
                    if already_a_status(exc, context):
                        raise
                    abort(context, exc)

            return streaming

        @functools.wraps(method)
        def unary(self, request, context):
            try:
                return method(self, request, context)
            except Exception as exc:  # mapped or logged in abort()
                if already_a_status(exc, context):
                    raise
                abort(context, exc)

        return unary

    return decorate
