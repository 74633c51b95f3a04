"""Domain errors of control and the one place they become gRPC statuses.

Every servicer of control (Control, Artifacts) wears `grpc_errors`, so one
`to_status` maps the errors of executions, artifacts and runs alike.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from services.common.contract.errors import InvalidArgument, bad_request_status
from services.common.contract.install_failures import install_failure_status
from services.common.grpc_errors import error_mapper, rich_status
from services.control.db import DatabaseUnavailable

__all__ = [
    "AlreadyExists",
    "FailedPrecondition",
    "InstallFailed",
    "InvalidArgument",
    "LimitExceeded",
    "NotFound",
    "QuotaExceeded",
    "StaleRevision",
    "Unavailable",
    "grpc_errors",
    "to_status",
]


class NotFound(Exception):
    pass


class AlreadyExists(Exception):
    pass


class Unavailable(Exception):
    """No spawner can serve the request now (retry later)."""


class QuotaExceeded(Exception):
    """A tenant limit; `subject` and `description` fill the QuotaFailure detail."""

    def __init__(self, tenant: str, subject: str, description: str):
        super().__init__(f"quota exceeded for tenant {tenant!r}: {description}")
        self.subject = subject
        self.description = description


class StaleRevision(Exception):
    """The write named a revision the artifact has moved past (ABORTED)."""

    def __init__(self, artifact_id: str, expected: int, current: int):
        super().__init__(
            f"expected_revision: artifact {artifact_id!r} is at revision {current}, not {expected};"
            " read it again and retry"
        )
        self.current = current


class FailedPrecondition(Exception):
    """The request is valid but the state of what it names (an artifact, a
    session: `kind`) forbids it."""

    def __init__(self, subject: str, description: str, kind: str = "ARTIFACT_STATE"):
        super().__init__(f"{subject}: {description}")
        self.subject = subject
        self.description = description
        self.kind = kind


class RuntimeUnavailable(Exception):
    """No spawner of the mesh offers the sandbox runtime the execution needs."""

    def __init__(self, runtime: str, offered: list[str], raised: bool = False):
        why = " (this tenant always runs on it)" if raised else ""
        super().__init__(
            f"runtime: {runtime!r}{why} is not offered by any spawner of this mesh "
            f"(offered: {', '.join(offered) or 'none reachable'})"
        )
        self.runtime = runtime


class LimitExceeded(Exception):
    """The write would take the artifact over one of its caps
    (RESOURCE_EXHAUSTED with a QuotaFailure detail)."""

    def __init__(self, subject: str, description: str):
        super().__init__(description)
        self.subject = subject
        self.description = description


class InstallFailed(Exception):
    """A session's packages did not install on its spawner (the status the
    spawner gave, relayed: services/common/contract/install_failures.py)."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"packages: {message}")
        self.reason = reason
        self.message = message


def _quota_failure(exc: QuotaExceeded | LimitExceeded) -> status_pb2.Status:
    violation = error_details_pb2.QuotaFailure.Violation(subject=exc.subject, description=exc.description)
    return rich_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), error_details_pb2.QuotaFailure(violations=[violation])
    )


def to_status(exc: Exception) -> status_pb2.Status | None:
    if isinstance(exc, InvalidArgument):
        return bad_request_status(exc)
    if isinstance(exc, NotFound):
        return rich_status(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, AlreadyExists):
        return rich_status(grpc.StatusCode.ALREADY_EXISTS, str(exc))
    if isinstance(exc, Unavailable):
        return rich_status(grpc.StatusCode.UNAVAILABLE, str(exc))
    if isinstance(exc, (QuotaExceeded, LimitExceeded)):
        return _quota_failure(exc)
    if isinstance(exc, StaleRevision):
        return rich_status(grpc.StatusCode.ABORTED, str(exc))
    if isinstance(exc, FailedPrecondition):
        violation = error_details_pb2.PreconditionFailure.Violation(
            type=exc.kind, subject=exc.subject, description=exc.description
        )
        return rich_status(
            grpc.StatusCode.FAILED_PRECONDITION, str(exc), error_details_pb2.PreconditionFailure(violations=[violation])
        )
    if isinstance(exc, InstallFailed):
        return install_failure_status(exc.reason, exc.message)
    if isinstance(exc, DatabaseUnavailable):
        return rich_status(grpc.StatusCode.UNAVAILABLE, str(exc))
    if isinstance(exc, RuntimeUnavailable):
        violation = error_details_pb2.PreconditionFailure.Violation(
            type="RUNTIME", subject="runtime", description=str(exc)
        )
        return rich_status(
            grpc.StatusCode.FAILED_PRECONDITION, str(exc), error_details_pb2.PreconditionFailure(violations=[violation])
        )
    return None


grpc_errors = error_mapper(to_status)
