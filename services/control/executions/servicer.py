"""gRPC servicer of sandbox.control.v1.Control: translates between protobuf
and the execution service. Every method works for the authenticated tenant
only."""

from __future__ import annotations

from sandbox.control.v1 import control_pb2 as pb
from sandbox.control.v1 import control_pb2_grpc
from services.control.auth import tenant_of
from services.control.errors import grpc_errors
from services.control.executions.service import ExecutionService


class ControlServicer(control_pb2_grpc.ControlServicer):
    def __init__(self, executions: ExecutionService):
        self.executions = executions

    @grpc_errors
    def Execute(self, request, context):
        execution = self.executions.execute(tenant_of(context), request, context.time_remaining())
        context.add_callback(lambda: self.executions.listener_gone(execution))
        yield from self.executions.events(execution)

    @grpc_errors
    def GetExecution(self, request, context):
        return self.executions.get(tenant_of(context), request.execution_id)

    @grpc_errors
    def ListExecutions(self, request, context):
        return self.executions.list(tenant_of(context), request)

    @grpc_errors
    def CancelExecution(self, request, context):
        cancelled, row = self.executions.cancel(tenant_of(context), request.execution_id)
        return pb.CancelExecutionResponse(
            cancelled=cancelled, execution=self.executions.get(tenant_of(context), row.execution_id)
        )

    @grpc_errors
    def CancelGroup(self, request, context):
        ids = self.executions.cancel_group(tenant_of(context), request.group_id)
        return pb.CancelGroupResponse(cancelled_execution_ids=ids)

    @grpc_errors
    def GetOutputFile(self, request, context):
        yield from self.executions.output_file(tenant_of(context), request.execution_id, request.path)

    @grpc_errors
    def GetQuota(self, request, context):
        return self.executions.quota(tenant_of(context))
