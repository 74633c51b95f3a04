"""A Python client for the Sandbox mesh, and `sandboxctl` (sandbox_mesh.cli).

from sandbox_mesh import Client

with Client.from_env() as client:
    result = client.run({"main.py": 'print("hello")'})
    print(result.status, result.stdout)

    artifact = client.artifacts.create("python", entry="main.py")
    client.artifacts.put(artifact.artifact_id, "main.py", 'print("kept")')
    print(client.artifacts.run(artifact.artifact_id).stdout)

    with client.session("python") as session:  # a live interpreter
        session.run("x = 41")
        print(session.run("x + 1").text)
"""

from sandbox_mesh.aio import AsyncClient
from sandbox_mesh.artifact_records import Artifact, ArtifactFile, FileListing, Package, Run, RunResult
from sandbox_mesh.artifacts import Artifacts, RunStream
from sandbox_mesh.client import Client, ExecutionStream
from sandbox_mesh.config import ConfigError, Connection
from sandbox_mesh.errors import MeshError
from sandbox_mesh.events import (
    Accepted,
    Event,
    Execution,
    Finished,
    Logs,
    Output,
    Quota,
    Result,
    StatusChanged,
    StepFinished,
    Usage,
)
from sandbox_mesh.request import UsageError, build_request
from sandbox_mesh.session_records import (
    CellAccepted,
    CellError,
    CellEvent,
    CellFinished,
    CellOutcome,
    CellOutput,
    CellValue,
    SessionInfo,
    ValuePart,
)
from sandbox_mesh.sessions import CellStream, Session

__all__ = [
    "Accepted",
    "Artifact",
    "ArtifactFile",
    "Artifacts",
    "AsyncClient",
    "CellAccepted",
    "CellError",
    "CellEvent",
    "CellFinished",
    "CellOutcome",
    "CellOutput",
    "CellStream",
    "CellValue",
    "Client",
    "ConfigError",
    "Connection",
    "Event",
    "Execution",
    "ExecutionStream",
    "FileListing",
    "Finished",
    "Logs",
    "MeshError",
    "Output",
    "Package",
    "Quota",
    "Result",
    "Run",
    "RunResult",
    "RunStream",
    "Session",
    "SessionInfo",
    "StatusChanged",
    "StepFinished",
    "Usage",
    "UsageError",
    "ValuePart",
    "build_request",
]
