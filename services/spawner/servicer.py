"""gRPC servicer: translates between protobuf and the Spawner domain object."""

from __future__ import annotations

from sandbox.spawner.v1 import spawner_pb2 as pb
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.spawner.errors import grpc_errors, to_status
from services.spawner.spawner import Spawner


class SpawnerServicer(spawner_pb2_grpc.SpawnerServicer):
    def __init__(self, spawner: Spawner):
        self.spawner = spawner

    @grpc_errors
    def Execute(self, request, context):
        try:
            execution = self.spawner.execute(request)
        except Exception as exc:
            status = to_status(exc)
            self.spawner.metrics.refused.labels(str(status.code) if status else "internal").inc()
            raise
        # Fires when the call ends for any reason: a no-op after the result,
        # a kill when the caller cancelled, disconnected or its deadline passed.
        context.add_callback(execution.listener_gone)
        yield from execution.events()

    @grpc_errors
    def Cancel(self, request, context):
        return pb.CancelResponse(cancelled=self.spawner.cancel(request.execution_id, request.tenant))

    @grpc_errors
    def Info(self, request, context):
        return self.spawner.info()

    @grpc_errors
    def ListExecutions(self, request, context):
        return self.spawner.executions()

    @grpc_errors
    def CreateSession(self, request, context):
        response = self.spawner.sessions.create(request)
        if not context.is_active():
            # Its caller gave up meanwhile (a long install past its deadline):
            # nobody knows of this session, so it ends now rather than idle.
            self.spawner.sessions.close(pb.CloseSessionRequest(session_key=request.session_key, tenant=request.tenant))
        return response

    @grpc_errors
    def RunCell(self, request, context):
        events = self.spawner.sessions.run(request)
        # The call runs to its end whoever listens (docs/sessions.md).
        context.add_callback(events.abandon)
        yield from events

    @grpc_errors
    def CloseSession(self, request, context):
        return pb.CloseSessionResponse(closed=self.spawner.sessions.close(request))

    @grpc_errors
    def PutSessionFile(self, request, context):
        return self.spawner.sessions.put_file(request)

    @grpc_errors
    def GetSessionFile(self, request, context):
        yield from self.spawner.sessions.get_file(request)

    @grpc_errors
    def ListSessionFiles(self, request, context):
        return self.spawner.sessions.list_files(request)

    @grpc_errors
    def InterruptCell(self, request, context):
        return pb.InterruptCellResponse(interrupted=self.spawner.sessions.interrupt(request))

    @grpc_errors
    def RestartSession(self, request, context):
        return self.spawner.sessions.restart(request)

    @grpc_errors
    def ListSessions(self, request, context):
        return self.spawner.sessions.listing()
