"""gRPC servicer of the whole sandbox.control.v1.Artifacts service: the
artifact RPCs (services/control/artifacts/servicer.py) plus the run RPCs
here, which translate between protobuf and the run service."""

from __future__ import annotations

from sandbox.control.v1 import artifacts_pb2 as pb
from services.control.artifacts.service import ArtifactService
from services.control.artifacts.servicer import ArtifactsServicer
from services.control.auth import tenant_of
from services.control.errors import grpc_errors
from services.control.runs.service import RunService


class ArtifactsAndRunsServicer(ArtifactsServicer):
    def __init__(self, artifacts: ArtifactService, runs: RunService):
        super().__init__(artifacts)
        self.runs = runs

    @grpc_errors
    def RunArtifact(self, request, context):
        tenant = tenant_of(context)
        execution, run_id = self.runs.start(tenant, request, context.time_remaining())
        context.add_callback(lambda: self.runs.executions.listener_gone(execution))
        yield from self.runs.events(tenant, execution, run_id)

    @grpc_errors
    def GetRun(self, request, context):
        return self.runs.get(tenant_of(context), request.run_id)

    @grpc_errors
    def ListRuns(self, request, context):
        runs, token = self.runs.list(tenant_of(context), request.artifact_id, request.page_size, request.page_token)
        return pb.ListRunsResponse(runs=runs, next_page_token=token)

    @grpc_errors
    def GetLatestRuns(self, request, context):
        latest = self.runs.latest(tenant_of(context), request.artifact_id, request.paths)
        return pb.GetLatestRunsResponse(latest=latest)

    @grpc_errors
    def GetRunOutputFile(self, request, context):
        yield from self.runs.output_file(tenant_of(context), request.run_id, request.path)
