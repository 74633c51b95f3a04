"""The request-error hierarchy and its one gRPC form.

A refused request names the field at fault, the way the proto does
("files[2].path"), so a caller can find what to fix. Each service's
`to_status` (see services/common/grpc_errors.py) turns an InvalidArgument
into `bad_request_status(exc)`.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from services.common.grpc_errors import rich_status


class RequestError(Exception):
    """A request refused because of one field."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(field, description)
        self.field = field
        self.description = description

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


class InvalidArgument(RequestError):
    """The request is malformed or over a cap (gRPC INVALID_ARGUMENT)."""


def bad_request_status(exc: InvalidArgument) -> status_pb2.Status:
    """INVALID_ARGUMENT with a BadRequest detail naming the field."""
    violation = error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=exc.description)
    return rich_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        str(exc),
        error_details_pb2.BadRequest(field_violations=[violation]),
    )
