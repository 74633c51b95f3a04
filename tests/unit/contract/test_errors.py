"""A refused request's gRPC form (services/common/contract/errors.py)."""

from __future__ import annotations

from google.rpc import code_pb2, error_details_pb2

from services.common.contract.errors import InvalidArgument, bad_request_status


def test_bad_request_status_names_the_field():
    status = bad_request_status(InvalidArgument("files[2].path", "must be relative"))
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert status.message == "files[2].path: must be relative"
    (detail,) = status.details
    bad_request = error_details_pb2.BadRequest()
    assert detail.Unpack(bad_request)
    (violation,) = bad_request.field_violations
    assert (violation.field, violation.description) == ("files[2].path", "must be relative")
