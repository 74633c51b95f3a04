"""Validation of ExecuteRequest into a defaulted, immutable ExecutionSpec.

Everything a request says is checked here, before any container, workspace or
record exists, and the first violation is reported, naming the field the way
the proto does ("files[2].path"), so a caller can find what to fix. What
control checks at its door too (ids, language, files, entry and steps,
arguments, packages, environment, stdin, the image variant, the timeout's
shape) is one set of functions in services/common/contract/requests.py; the
memory and CPU ranges are the spawner's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sandbox.common.v1 import execution_pb2
from sandbox.spawner.v1 import spawner_pb2
from services.common.contract.errors import InvalidArgument
from services.common.contract.ids import check_id
from services.common.contract.requests import Package, Step, check_files, check_program, check_timeout_ms
from services.common.contract.sandbox_runtimes import check_sandbox_runtime
from services.spawner.config import SpawnerSettings


@dataclass(frozen=True)
class ExecutionSpec:
    execution_id: str
    tenant: str
    language: str  # "python" | "node"
    files: tuple[tuple[str, bytes], ...]
    steps: tuple[Step, ...]
    env: dict[str, str] = field(hash=False)
    stdin: bytes
    timeout_ms: int
    memory_bytes: int
    cpus: float
    prior_outputs: tuple[tuple[str, bytes], ...]
    packages: tuple[Package, ...] = ()
    allow_sdist: bool = False
    allow_install_scripts: bool = False
    network: bool = False  # joins the egress-only network (always with packages)
    variant: str = ""  # of the language's image: "" standard, "datascience" (contract/runtimes.py)
    sandbox_runtime: str = "runc"  # "runc" | "gvisor" (contract/sandbox_runtimes.py), defaulted


def validate_execute(request: spawner_pb2.ExecuteRequest, settings: SpawnerSettings) -> ExecutionSpec:
    """Check `request` against the rules and caps in `settings`.

    Raises InvalidArgument for the first violation found: the ids, then
    what runs (contract), then the numeric limits, then the prior outputs.
    """
    caps = settings.limits
    execution_id = check_id("execution_id", request.execution_id)
    tenant = check_id("tenant", request.tenant)
    program = check_program(request, caps)
    sandbox_runtime = check_sandbox_runtime(request.runtime) or settings.default_runtime
    timeout_ms, memory_bytes, cpus = check_limits(request.limits, settings)
    prior_outputs = check_files("prior_outputs", request.prior_outputs, caps, required=False)
    return ExecutionSpec(
        execution_id=execution_id,
        tenant=tenant,
        language=program.language,
        files=program.files,
        steps=program.steps,
        env=program.env,
        stdin=program.stdin,
        timeout_ms=timeout_ms,
        memory_bytes=memory_bytes,
        cpus=cpus,
        prior_outputs=prior_outputs,
        packages=program.packages,
        allow_sdist=request.install.allow_sdist,
        allow_install_scripts=request.install.allow_install_scripts,
        network=request.network or bool(program.packages),
        variant=program.variant,
        sandbox_runtime=sandbox_runtime,
    )


def check_limits(limits: execution_pb2.Limits, settings: SpawnerSettings) -> tuple[int, int, float]:
    # An unset Limits message reads as all zeros, i.e. all defaults.
    timeout_ms = check_timeout_ms(
        limits.timeout_ms, default=settings.default_timeout_ms, maximum=settings.max_timeout_ms
    )
    memory_bytes = limits.memory_bytes or settings.default_memory_bytes
    if not settings.min_memory_bytes <= memory_bytes <= settings.max_memory_bytes:
        raise InvalidArgument(
            "limits.memory_bytes",
            f"must be between {settings.min_memory_bytes} and {settings.max_memory_bytes}"
            f" (0 for the default {settings.default_memory_bytes})",
        )
    cpus = limits.cpus
    # NaN compares false with everything, so test finiteness explicitly.
    if not math.isfinite(cpus) or cpus < 0 or cpus > settings.max_cpus:
        raise InvalidArgument(
            "limits.cpus",
            f"must be greater than 0 and at most {settings.max_cpus} (0 for the default {settings.default_cpus})",
        )
    return timeout_ms, memory_bytes, cpus or settings.default_cpus
