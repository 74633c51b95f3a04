"""Errors of the artifact domain and the one place they become gRPC statuses.

Extends services.control.errors without changing it: the artifact errors
are mapped here, everything else (InvalidArgument, NotFound, AlreadyExists,
QuotaExceeded) falls through to `errors.to_status`.
"""

from __future__ import annotations


import grpc
from google.rpc import error_details_pb2, status_pb2

from services.common.grpc_errors import error_mapper, rich_status
from services.control import errors



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


def to_status(exc: Exception) -> status_pb2.Status | None:
    if isinstance(exc, StaleRevision):
        return rich_status(grpc.StatusCode.ABORTED, str(exc))
    if isinstance(exc, FailedPrecondition):
        violation = error_details_pb2.PreconditionFailure.Violation(
            type="ARTIFACT_STATE", subject=exc.subject, description=exc.description
        )
        return rich_status(
            grpc.StatusCode.FAILED_PRECONDITION, str(exc), error_details_pb2.PreconditionFailure(violations=[violation])
        )
    if isinstance(exc, LimitExceeded):
        violation = error_details_pb2.QuotaFailure.Violation(subject=exc.subject, description=exc.description)
        return rich_status(
            grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), error_details_pb2.QuotaFailure(violations=[violation])
        )
    return errors.to_status(exc)


grpc_errors = error_mapper(to_status)
