"""CreateSessionRequest and RunCellRequest checked into what a session and a
call run with; every violation names the field, before anything is made."""

from __future__ import annotations

import dataclasses

from sandbox.spawner.v1 import spawner_pb2 as pb
from services.common.contract.errors import InvalidArgument
from services.common.contract.ids import check_id
from services.common.contract.languages import check_language
from services.common.contract.requests import Package, check_files, check_packages
from services.common.contract.runtimes import check_variant
from services.common.contract.sessions import check_code, check_lifetimes
from services.spawner.config import SpawnerSettings
from services.spawner.validation import check_limits


@dataclasses.dataclass(frozen=True)
class SessionSpec:
    session_key: str
    tenant: str
    language: str  # "python" | "node"
    variant: str
    memory_bytes: int
    cpus: float
    idle_seconds: int
    lifetime_seconds: int
    # Staged into /workspace/code before the interpreter starts, as an
    # execution's files; packages installed before it too (through the egress).
    files: tuple[tuple[str, bytes], ...] = ()
    packages: tuple[Package, ...] = ()
    allow_sdist: bool = False
    allow_install_scripts: bool = False


def check_session(request: pb.CreateSessionRequest, settings: SpawnerSettings) -> SessionSpec:
    session_key = check_id("session_key", request.session_key)
    tenant = check_id("tenant", request.tenant)
    language = check_language(request.language)
    variant = check_variant(language, request.variant)
    _, memory_bytes, cpus = check_limits(request.limits, settings)
    idle, lifetime = check_lifetimes(request.idle_timeout_seconds, request.max_lifetime_seconds)
    files = check_files("files", request.files, settings.limits, required=False)
    packages = check_packages(language, request.packages, settings.limits.max_packages)
    return SessionSpec(
        session_key,
        tenant,
        language,
        variant,
        memory_bytes,
        cpus,
        idle,
        lifetime,
        files=files,
        packages=packages,
        allow_sdist=request.install.allow_sdist,
        allow_install_scripts=request.install.allow_install_scripts,
    )


def check_cell(request: pb.RunCellRequest, settings: SpawnerSettings, language: str) -> tuple[str, int]:
    """The call's code and timeout (ms)."""
    code = check_code(request.code, language)
    timeout_ms = request.timeout_ms or settings.default_timeout_ms
    if timeout_ms > settings.max_timeout_ms:
        raise InvalidArgument("timeout_ms", f"must be at most {settings.max_timeout_ms} (0 for the default)")
    return code, timeout_ms
