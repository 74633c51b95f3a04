"""gRPC servicer of the artifact RPCs of sandbox.control.v1.Artifacts:
translates between protobuf and the artifact service. Every method works
for the authenticated tenant only (services.control.auth); errors become
statuses in services.control.errors. The run RPCs of the same gRPC service
are added by services/control/runs/servicer.py."""

from __future__ import annotations

import grpc

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import artifacts_pb2 as pb
from sandbox.control.v1 import artifacts_pb2_grpc
from services.common.contract.languages import as_language
from services.control.artifacts.models import ArtifactView, FileView
from services.control.artifacts.service import ArtifactService
from services.control.auth import tenant_of
from services.control.errors import grpc_errors

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Artifacts"].full_name


def artifact_message(view: ArtifactView) -> pb.Artifact:
    return pb.Artifact(
        artifact_id=view.artifact_id,
        language=as_language(view.language),
        title=view.title,
        entry=view.entry,
        packages=[common.Package(name=p.name, version=p.version) for p in view.packages],
        revision=view.revision,
        created_at_ms=view.created_at_ms,
        updated_at_ms=view.updated_at_ms,
        file_count=view.file_count,
        total_bytes=view.total_bytes,
    )


def file_message(view: FileView) -> pb.ArtifactFile:
    return pb.ArtifactFile(path=view.path, size=view.size, sha256=view.sha256, modified_revision=view.modified_revision)


def _written(result: tuple[ArtifactView, FileView]) -> pb.FileWriteResponse:
    artifact, file = result
    return pb.FileWriteResponse(artifact=artifact_message(artifact), file=file_message(file))


class ArtifactsServicer(artifacts_pb2_grpc.ArtifactsServicer):
    """The artifact RPCs; the run RPCs answer UNIMPLEMENTED here."""

    def __init__(self, artifacts: ArtifactService):
        self.artifacts = artifacts

    @grpc_errors
    def CreateArtifact(self, request, context):
        view = self.artifacts.create(
            tenant_of(context), request.language, request.title, request.entry, request.packages
        )
        return artifact_message(view)

    @grpc_errors
    def GetArtifact(self, request, context):
        return artifact_message(self.artifacts.get(tenant_of(context), request.artifact_id))

    @grpc_errors
    def ListArtifacts(self, request, context):
        views, token = self.artifacts.list(tenant_of(context), request.page_size, request.page_token)
        return pb.ListArtifactsResponse(artifacts=[artifact_message(v) for v in views], next_page_token=token)

    @grpc_errors
    def UpdateArtifact(self, request, context):
        view = self.artifacts.update(
            tenant_of(context),
            request.artifact_id,
            request.expected_revision,
            title=request.title if request.HasField("title") else None,
            entry=request.entry if request.HasField("entry") else None,
        )
        return artifact_message(view)

    @grpc_errors
    def CreateFile(self, request, context):
        return _written(
            self.artifacts.create_file(
                tenant_of(context), request.artifact_id, request.expected_revision, request.path, request.content
            )
        )

    @grpc_errors
    def UpdateFile(self, request, context):
        return _written(
            self.artifacts.update_file(
                tenant_of(context), request.artifact_id, request.expected_revision, request.path, request.content
            )
        )

    @grpc_errors
    def DeleteFile(self, request, context):
        return _written(
            self.artifacts.delete_file(tenant_of(context), request.artifact_id, request.expected_revision, request.path)
        )

    @grpc_errors
    def RenameFile(self, request, context):
        return _written(
            self.artifacts.rename_file(
                tenant_of(context), request.artifact_id, request.expected_revision, request.path, request.new_path
            )
        )

    @grpc_errors
    def ReadFile(self, request, context):
        file, content, revision = self.artifacts.read_file(tenant_of(context), request.artifact_id, request.path)
        return pb.ReadFileResponse(file=file_message(file), content=content, revision=revision)

    @grpc_errors
    def ListFiles(self, request, context):
        revision, entry, files = self.artifacts.list_files(tenant_of(context), request.artifact_id)
        return pb.ListFilesResponse(files=[file_message(f) for f in files], revision=revision, entry=entry)

    @grpc_errors
    def AddPackages(self, request, context):
        view = self.artifacts.add_packages(
            tenant_of(context), request.artifact_id, request.expected_revision, request.packages
        )
        return artifact_message(view)


def add_to_server(server: grpc.Server, servicer: ArtifactsServicer) -> str:
    """Registers the Artifacts service on `server` (which must carry the
    tenant interceptor); returns its full name for health and reflection."""
    artifacts_pb2_grpc.add_ArtifactsServicer_to_server(servicer, server)
    return SERVICE_NAME
