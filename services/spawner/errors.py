"""Domain errors of the spawner and the one place they become gRPC statuses."""

from __future__ import annotations

import functools
import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.spawner.validation import InvalidArgument, Unsupported

log = logging.getLogger(__name__)


class CapacityExhausted(Exception):
    def __init__(self, capacity: int):
        super().__init__(f"all {capacity} execution slots are busy; retry later")
        self.capacity = capacity


class DuplicateExecution(Exception):
    def __init__(self, execution_id: str):
        super().__init__(f"execution_id: {execution_id!r} is already in flight")


class NetworkUnavailable(Exception):
    def __init__(self, field: str):
        super().__init__(
            f"{field}: this spawner has no sandbox network (SPAWNER_PACKAGE_NETWORK); "
            "run without packages and network or use a spawner that has one"
        )


class ShuttingDown(Exception):
    def __init__(self):
        super().__init__("the spawner is shutting down and accepts no new executions")


def _status(code: grpc.StatusCode, message: str, *details) -> status_pb2.Status:
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=packed)


def to_status(exc: Exception) -> status_pb2.Status | None:
    """Maps a domain error to a rich gRPC status, or None for a bug."""
    if isinstance(exc, InvalidArgument):
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=exc.field, description=exc.description
        )
        return _status(
            grpc.StatusCode.INVALID_ARGUMENT,
            str(exc),
            error_details_pb2.BadRequest(field_violations=[violation]),
        )
    if isinstance(exc, Unsupported):
        return _status(grpc.StatusCode.UNIMPLEMENTED, str(exc))
    if isinstance(exc, CapacityExhausted):
        return _status(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, DuplicateExecution):
        return _status(grpc.StatusCode.ALREADY_EXISTS, str(exc))
    if isinstance(exc, NetworkUnavailable):
        return _status(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    if isinstance(exc, ShuttingDown):
        return _status(grpc.StatusCode.UNAVAILABLE, str(exc))
    return None


def grpc_errors(method):
    """Decorates a servicer method (unary or streaming) so that domain errors
    abort the call with their status and anything else is logged as INTERNAL."""

    def abort(context, exc):
        status = to_status(exc)
        if status is None:
            log.exception("unexpected error in %s", method.__name__)
            status = _status(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
        context.abort_with_status(rpc_status.to_status(status))

    if _is_generator(method):

        @functools.wraps(method)
        def streaming(self, request, context):
            try:
                yield from method(self, request, context)
            except Exception as exc:  # noqa: BLE001 - mapped or logged in abort()
                if isinstance(exc, grpc.RpcError) or context.code() is not None:
                    raise
                abort(context, exc)

        return streaming

    @functools.wraps(method)
    def unary(self, request, context):
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001
            if isinstance(exc, grpc.RpcError):
                raise
            abort(context, exc)

    return unary


def _is_generator(function) -> bool:
    import inspect

    return inspect.isgeneratorfunction(function)
