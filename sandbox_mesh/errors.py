"""gRPC failures as one readable error: the status name, control's message
and the field or subject its details name (BadRequest, PreconditionFailure,
QuotaFailure)."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

DETAILS_KEY = "grpc-status-details-bin"


class MeshError(Exception):
    """A call to control failed. `code` is the gRPC status name
    ("INVALID_ARGUMENT"); `field` what the details name, if anything."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def __str__(self) -> str:
        line = f"{self.code}: {self.message}"
        if self.field and not self.message.startswith(self.field):
            line += f" (field {self.field})"
        return line


def field_of(details: bytes | None) -> str | None:
    """The first field or subject named in a google.rpc.Status's details."""
    if not details:
        return None
    try:
        status = status_pb2.Status.FromString(details)
    except Exception:  # a malformed trailer must not hide the error itself
        return None
    for detail in status.details:
        for kind, attribute, name in (
            (error_details_pb2.BadRequest, "field_violations", "field"),
            (error_details_pb2.PreconditionFailure, "violations", "subject"),
            (error_details_pb2.QuotaFailure, "violations", "subject"),
        ):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                for violation in getattr(message, attribute):
                    if getattr(violation, name):
                        return str(getattr(violation, name))
    return None


def mesh_error(error: grpc.RpcError) -> MeshError:
    """From a failed call, sync or grpc.aio (both are grpc.Call-like)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    trailers: Any = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    details = None
    for item in trailers or ():
        key, value = item[0], item[1]
        if key == DETAILS_KEY and isinstance(value, bytes):
            details = value
    name = code.name if isinstance(code, grpc.StatusCode) else str(code)
    return MeshError(name, message or name.lower().replace("_", " "), field_of(details))
