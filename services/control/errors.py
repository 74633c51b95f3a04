"""Domain errors of control and the one place they become gRPC statuses."""

from __future__ import annotations

import functools
import inspect
import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.spawner.validation import InvalidArgument

log = logging.getLogger(__name__)

__all__ = ["InvalidArgument", "NotFound", "AlreadyExists", "QuotaExceeded", "Refused", "grpc_errors"]


class NotFound(Exception):
    pass


class AlreadyExists(Exception):
    pass


class QuotaExceeded(Exception):
    """A tenant limit; `subject` and `description` fill the QuotaFailure detail."""

    def __init__(self, tenant: str, subject: str, description: str):
        super().__init__(f"quota exceeded for tenant {tenant!r}: {description}")
        self.subject = subject
        self.description = description


class Refused(Exception):
    """The spawner refused the request before anything started; its status
    (with details) is relayed to the caller as it came."""

    def __init__(self, status: status_pb2.Status):
        super().__init__(status.message)
        self.status = status


def _status(code: grpc.StatusCode, message: str, *details) -> status_pb2.Status:
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=packed)


def to_status(exc: Exception) -> status_pb2.Status | None:
    if isinstance(exc, InvalidArgument):
        violation = error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=exc.description)
        return _status(grpc.StatusCode.INVALID_ARGUMENT, str(exc), error_details_pb2.BadRequest(field_violations=[violation]))
    if isinstance(exc, NotFound):
        return _status(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, AlreadyExists):
        return _status(grpc.StatusCode.ALREADY_EXISTS, str(exc))
    if isinstance(exc, QuotaExceeded):
        violation = error_details_pb2.QuotaFailure.Violation(subject=exc.subject, description=exc.description)
        return _status(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), error_details_pb2.QuotaFailure(violations=[violation]))
    if isinstance(exc, Refused):
        return exc.status
    return None


def grpc_errors(method):
    """Decorates a servicer method (unary or streaming): domain errors abort
    the call with their status, anything else is logged and INTERNAL."""

    def abort(context, exc):
        status = to_status(exc)
        if status is None:
            log.exception("unexpected error in %s", method.__name__)
            status = _status(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
        context.abort_with_status(rpc_status.to_status(status))

    if inspect.isgeneratorfunction(method):

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
