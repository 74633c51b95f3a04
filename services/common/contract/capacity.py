"""How a spawner says it has no free slot, so that a caller can tell it from
every other refusal.

Both come as RESOURCE_EXHAUSTED: "every slot is busy" (ask again, or ask
another spawner) and "the message is over the size limit" (gRPC's own
refusal, final: the same request will be refused everywhere). Only the
first carries an ErrorInfo with reason NO_FREE_SLOT.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from services.common.grpc_errors import rich_status

DOMAIN = "sandbox-mesh"
NO_FREE_SLOT = "NO_FREE_SLOT"


def no_free_slot_status(message: str) -> status_pb2.Status:
    """RESOURCE_EXHAUSTED marked as a capacity refusal."""
    return rich_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED, message, error_details_pb2.ErrorInfo(reason=NO_FREE_SLOT, domain=DOMAIN)
    )


def is_no_free_slot(status: status_pb2.Status | None) -> bool:
    """True for a spawner's capacity refusal, False for any other status."""
    if status is None or status.code != grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]:
        return False
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and (info.reason, info.domain) == (NO_FREE_SLOT, DOMAIN):
            return True
    return False
