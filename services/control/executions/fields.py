"""The fields control's log lines carry about an execution (`extra=` of
services/common/logs.py): its id and tenant, and a verdict's status and error
code as the proto enums' names, the same names the spawner logs."""

from __future__ import annotations

from sandbox.common.v1 import execution_pb2 as common
from services.control.executions import states
from services.control.executions.models import Verdict


def execution_fields(execution_id: str, tenant: str, verdict: Verdict | None = None) -> dict[str, str]:
    fields = {"execution_id": execution_id, "tenant": tenant}
    if verdict is not None:
        fields["status"] = common.ExecutionStatus.Name(states.to_proto(verdict.status))
        fields["error_code"] = common.ErrorCode.Name(states.error_code(verdict.error_code))
    return fields
