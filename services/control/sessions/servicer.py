"""The session methods of sandbox.control.v1.Control: translates between
protobuf and the session service, for the authenticated tenant only."""

from __future__ import annotations

from services.control.auth import tenant_of
from services.control.errors import grpc_errors
from services.control.sessions.service import SessionService


class SessionMethods:
    """Mixed into the Control servicer (services/control/server.py)."""

    sessions: SessionService

    @grpc_errors
    def CreateSession(self, request, context):
        return self.sessions.create(tenant_of(context), request)

    @grpc_errors
    def RunCell(self, request, context):
        cell = self.sessions.run_cell(tenant_of(context), request)
        # Fires when the call ends for any reason: a no-op after the result;
        # when the caller went away, the relay stops and records it so.
        context.add_callback(cell.listener_gone)
        yield from cell.events

    @grpc_errors
    def GetSession(self, request, context):
        return self.sessions.get(tenant_of(context), request.session_id)

    @grpc_errors
    def ListSessions(self, request, context):
        return self.sessions.list(tenant_of(context), request)

    @grpc_errors
    def CloseSession(self, request, context):
        return self.sessions.close(tenant_of(context), request.session_id)

    @grpc_errors
    def PutSessionFile(self, request, context):
        return self.sessions.files.put(tenant_of(context), request)

    @grpc_errors
    def GetSessionFile(self, request, context):
        yield from self.sessions.files.get(tenant_of(context), request)

    @grpc_errors
    def ListSessionFiles(self, request, context):
        return self.sessions.files.list(tenant_of(context), request)

    @grpc_errors
    def RestartSession(self, request, context):
        return self.sessions.restart(tenant_of(context), request.session_id)
