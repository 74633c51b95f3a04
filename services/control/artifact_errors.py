"""Errors of the artifact domain and the one place they become gRPC statuses.

Extends services.control.errors without changing it: the artifact errors
are mapped here, everything else (InvalidArgument, NotFound, AlreadyExists,
QuotaExceeded) falls through to `errors.to_status`.
"""

from __future__ import annotations

import functools
import inspect
import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.control import errors

log = logging.getLogger(__name__)


class StaleRevision(Exception):
    """The write named a revision the artifact has moved past (ABORTED)."""

    def __init__(self, artifact_id: str, expected: int, current: int):
        super().__init__(
            f"expected_revision: artifact {artifact_id!r} is at revision {current}, not {expected};"
            " read it again and retry"
        )
        self.current = current


class FailedPrecondition(Exception):
    """The write is valid but the artifact's state forbids it."""

    def __init__(self, subject: str, description: str):
        super().__init__(f"{subject}: {description}")
        self.subject = subject
        self.description = description


class LimitExceeded(Exception):
    """The write would take the artifact over one of its caps
    (RESOURCE_EXHAUSTED with a QuotaFailure detail)."""

    def __init__(self, subject: str, description: str):
        super().__init__(description)
        self.subject = subject
        self.description = description


def _status(code: grpc.StatusCode, message: str, detail=None) -> status_pb2.Status:
    details = []
    if detail is not None:
        holder = any_pb2.Any()
        holder.Pack(detail)
        details.append(holder)
    return status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)


def to_status(exc: Exception) -> status_pb2.Status | None:
    if isinstance(exc, StaleRevision):
        return _status(grpc.StatusCode.ABORTED, str(exc))
    if isinstance(exc, FailedPrecondition):
        violation = error_details_pb2.PreconditionFailure.Violation(
            type="ARTIFACT_STATE", subject=exc.subject, description=exc.description
        )
        return _status(
            grpc.StatusCode.FAILED_PRECONDITION, str(exc), error_details_pb2.PreconditionFailure(violations=[violation])
        )
    if isinstance(exc, LimitExceeded):
        violation = error_details_pb2.QuotaFailure.Violation(subject=exc.subject, description=exc.description)
        return _status(
            grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), error_details_pb2.QuotaFailure(violations=[violation])
        )
    return errors.to_status(exc)


def grpc_errors(method):
    """Decorates a servicer method (unary or server-streaming): domain errors
    abort the call with their status, anything else is logged and INTERNAL."""

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
        except Exception as exc:  # noqa: BLE001 - mapped or logged in abort()
            if isinstance(exc, grpc.RpcError) or context.code() is not None:
                raise  # already a status (context.abort)
            abort(context, exc)

    return unary
