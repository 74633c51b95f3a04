"""Domain errors of the spawner and the one place they become gRPC statuses."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from services.common.contract.capacity import no_free_slot_status
from services.common.contract.errors import InvalidArgument, bad_request_status
from services.common.contract.install_failures import install_failure_status
from services.common.grpc_errors import error_mapper, rich_status
from services.spawner.engine import EngineUnavailable
from services.spawner.network import EgressUnavailable


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
            f"{field}: this spawner has no egress (SPAWNER_EGRESS_CONTAINER); "
            "run without packages and network or use a spawner that has one"
        )


class RuntimeUnavailable(Exception):
    def __init__(self, runtime: str, offered: list[str]):
        super().__init__(
            f"runtime: {runtime!r} is not offered by this spawner (it offers: {', '.join(offered)}); "
            "its engine has no such OCI runtime registered (docs/security.md)"
        )


class ShuttingDown(Exception):
    def __init__(self):
        super().__init__("the spawner is shutting down and accepts no new executions")


class SessionNotFound(Exception):
    def __init__(self) -> None:
        super().__init__("session_key: no such session is open here")


class SessionExists(Exception):
    def __init__(self) -> None:
        super().__init__("session_key: a session with this key is already open here")


class SessionsUnavailable(Exception):
    pass


class SessionNotStarted(Exception):
    def __init__(self) -> None:
        super().__init__("the session's interpreter did not start")


class SessionBusy(Exception):
    def __init__(self) -> None:
        super().__init__("session: a call is already running in this session; one call at a time")


class SessionEnded(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(f"session: it has ended ({reason})")


class SessionInstallFailed(Exception):
    """The session's packages did not install; `reason` is the error code an
    execution's install step would have had (services/common/contract/
    install_failures.py)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"packages: {message}")
        self.reason = reason
        self.message = message


class FileNotFound(Exception):
    def __init__(self, description: str) -> None:
        super().__init__(f"path: {description}")


class WorkspaceFull(Exception):
    def __init__(self, description: str) -> None:
        super().__init__(f"content: {description}")


def to_status(exc: Exception) -> status_pb2.Status | None:
    """Maps a domain error to a rich gRPC status, or None for a bug."""
    if isinstance(exc, InvalidArgument):
        return bad_request_status(exc)
    if isinstance(exc, CapacityExhausted):
        return no_free_slot_status(str(exc))
    if isinstance(exc, DuplicateExecution):
        return rich_status(grpc.StatusCode.ALREADY_EXISTS, str(exc))
    if isinstance(exc, (NetworkUnavailable, RuntimeUnavailable)):
        return rich_status(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    if isinstance(exc, (SessionNotFound, SessionEnded)):
        return rich_status(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, SessionExists):
        return rich_status(grpc.StatusCode.ALREADY_EXISTS, str(exc))
    if isinstance(exc, (SessionBusy, SessionsUnavailable)):
        return rich_status(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    if isinstance(exc, SessionNotStarted):
        return rich_status(grpc.StatusCode.UNAVAILABLE, str(exc))
    if isinstance(exc, SessionInstallFailed):
        return install_failure_status(exc.reason, exc.message)
    if isinstance(exc, FileNotFound):
        return rich_status(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, WorkspaceFull):
        violation = error_details_pb2.QuotaFailure.Violation(subject="content", description=str(exc))
        return rich_status(
            grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), error_details_pb2.QuotaFailure(violations=[violation])
        )
    if isinstance(exc, (ShuttingDown, EngineUnavailable, EgressUnavailable)):
        return rich_status(grpc.StatusCode.UNAVAILABLE, str(exc))
    return None


grpc_errors = error_mapper(to_status)
