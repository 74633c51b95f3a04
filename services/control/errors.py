"""Domain errors of control and the one place they become gRPC statuses."""

from __future__ import annotations


import grpc
from google.rpc import error_details_pb2, status_pb2

from services.common.contract.errors import InvalidArgument, bad_request_status
from services.common.grpc_errors import error_mapper, rich_status


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


def to_status(exc: Exception) -> status_pb2.Status | None:
    if isinstance(exc, InvalidArgument):
        return bad_request_status(exc)
    if isinstance(exc, NotFound):
        return rich_status(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, AlreadyExists):
        return rich_status(grpc.StatusCode.ALREADY_EXISTS, str(exc))
    if isinstance(exc, QuotaExceeded):
        violation = error_details_pb2.QuotaFailure.Violation(subject=exc.subject, description=exc.description)
        return rich_status(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), error_details_pb2.QuotaFailure(violations=[violation]))
    if isinstance(exc, Refused):
        return exc.status
    return None


grpc_errors = error_mapper(to_status)
