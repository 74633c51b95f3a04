"""How the relay reads a spawner's refusal (services/control/relay.py): only
a capacity refusal or a spawner that is down is tried again; a request
refused for its content ends at once; an engine's text never reaches the
record."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import status_pb2
from grpc_status import rpc_status

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as spb
from services.common.contract import failures
from services.common.contract.capacity import no_free_slot_status
from services.common.contract.errors import InvalidArgument, bad_request_status
from services.common.grpc_errors import rich_status
from services.control.relay import BROKEN, DOWN, NO_SLOT, REJECTED, verdict_of, why_not_started

C = grpc.StatusCode
CODES = {code.value[0]: code for code in grpc.StatusCode}


class FailedCall(grpc.RpcError):
    """What a failed spawner call raises, carrying `status`."""

    def __init__(self, status: status_pb2.Status):
        self.status = status

    def code(self):
        return CODES[self.status.code]

    def details(self):
        return self.status.message

    def trailing_metadata(self):
        return ((rpc_status.GRPC_DETAILS_METADATA_KEY, self.status.SerializeToString()),)


@pytest.mark.parametrize(
    "status, outcome",
    [
        (no_free_slot_status("all 4 execution slots are busy; retry later"), NO_SLOT),
        (rich_status(C.RESOURCE_EXHAUSTED, "Received message larger than max (41943100 vs. 24842058)"), REJECTED),
        (bad_request_status(InvalidArgument("files[0].path", "must be relative")), REJECTED),
        (rich_status(C.FAILED_PRECONDITION, "packages: this spawner has no sandbox network"), REJECTED),
        (rich_status(C.ALREADY_EXISTS, "execution_id: 'x' is already in flight"), REJECTED),
        (rich_status(C.UNAVAILABLE, "the spawner is shutting down"), DOWN),
        (rich_status(C.UNAVAILABLE, "failed to connect to all addresses"), DOWN),
        (rich_status(C.DEADLINE_EXCEEDED, "Deadline Exceeded"), DOWN),
        (rich_status(C.UNAUTHENTICATED, "bad signature"), DOWN),
        (rich_status(C.INTERNAL, "internal error: APIError"), BROKEN),
        (rich_status(C.UNKNOWN, "Exception iterating responses"), BROKEN),
    ],
    ids=[
        "no-slot",
        "too-large",
        "invalid",
        "no-network",
        "duplicate",
        "shutting-down",
        "unreachable",
        "deadline",
        "unauthenticated",
        "internal",
        "unknown",
    ],
)
def test_why_not_started(status, outcome):
    assert why_not_started(FailedCall(status)) == outcome


def _result(error_code: int, message: str) -> spb.ExecuteResult:
    return spb.ExecuteResult(status=common.EXECUTION_STATUS_FAILED, error_code=error_code, error_message=message)


def test_an_engine_text_from_a_spawner_is_not_recorded():
    engine = '404 Client Error for http+docker://localhost/v1.41/containers/create: Not Found ("No such image")'
    verdict, _ = verdict_of(_result(common.ERROR_CODE_SPAWNER_UNAVAILABLE, engine), {})
    assert (verdict.error_code, verdict.error_message) == ("SPAWNER_UNAVAILABLE", failures.SPAWNER_FAILED)
    verdict, _ = verdict_of(_result(common.ERROR_CODE_SPAWNER_UNAVAILABLE, failures.SANDBOX_NOT_STARTED), {})
    assert verdict.error_message == failures.SANDBOX_NOT_STARTED


def test_other_messages_are_recorded_as_sent():
    verdict, _ = verdict_of(_result(common.ERROR_CODE_RUNTIME_ERROR, "main.py exited 3"), {})
    assert (verdict.error_code, verdict.error_message) == ("RUNTIME_ERROR", "main.py exited 3")
