"""How a failed install of a session's packages travels from the spawner,
through control, to the caller of CreateSession: a status whose code says
what kind of failure it is (FAILED_PRECONDITION for the packages themselves
or the egress refusing them, RESOURCE_EXHAUSTED for memory or the workspace,
UNAVAILABLE for the mesh's own fault), with an ErrorInfo whose reason is the
execution error code an install step of Execute would have had
(PACKAGE_NOT_FOUND, EGRESS_DENIED, MEMORY_LIMIT, ...) and a
PreconditionFailure or QuotaFailure naming `packages`.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from services.common.contract.capacity import DOMAIN
from services.common.grpc_errors import rich_status

FIELD = "packages"
_RESOURCES = frozenset({"MEMORY_LIMIT", "OUTPUT_LIMIT"})
_MESH = frozenset({"SPAWNER_UNAVAILABLE"})


def install_failure_status(reason: str, message: str) -> status_pb2.Status:
    """`reason`: the ErrorCode's name without its ERROR_CODE_ prefix."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata={"field": FIELD})
    text = f"{FIELD}: {message}"
    if reason in _RESOURCES:
        quota = error_details_pb2.QuotaFailure(
            violations=[error_details_pb2.QuotaFailure.Violation(subject=FIELD, description=message)]
        )
        return rich_status(grpc.StatusCode.RESOURCE_EXHAUSTED, text, info, quota)
    if reason in _MESH:
        return rich_status(grpc.StatusCode.UNAVAILABLE, text, info)
    violation = error_details_pb2.PreconditionFailure.Violation(type=reason, subject=FIELD, description=message)
    return rich_status(
        grpc.StatusCode.FAILED_PRECONDITION, text, info, error_details_pb2.PreconditionFailure(violations=[violation])
    )


def install_failure_of(status: status_pb2.Status | None) -> tuple[str, str] | None:
    """(reason, message) of an install failure's status; None for any other."""
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == DOMAIN and info.metadata.get("field") == FIELD:
            return info.reason, status.message.removeprefix(f"{FIELD}: ")
    return None
