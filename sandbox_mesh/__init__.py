"""A Python client for the Sandbox mesh, and `sandboxctl` (sandbox_mesh.cli).

from sandbox_mesh import Client

with Client.from_env() as client:
    result = client.run({"main.py": 'print("hello")'})
    print(result.status, result.stdout)
"""

from sandbox_mesh.aio import AsyncClient
from sandbox_mesh.client import Client, ExecutionStream
from sandbox_mesh.config import ConfigError, Connection
from sandbox_mesh.errors import MeshError
from sandbox_mesh.events import (
    Accepted,
    Event,
    Execution,
    Finished,
    Output,
    Quota,
    Result,
    StatusChanged,
    StepFinished,
    Usage,
)
from sandbox_mesh.request import UsageError, build_request

__all__ = [
    "Accepted",
    "AsyncClient",
    "Client",
    "ConfigError",
    "Connection",
    "Event",
    "Execution",
    "ExecutionStream",
    "Finished",
    "MeshError",
    "Output",
    "Quota",
    "Result",
    "StatusChanged",
    "StepFinished",
    "Usage",
    "UsageError",
    "build_request",
]
