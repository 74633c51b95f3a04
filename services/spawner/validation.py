"""Validation of ExecuteRequest into a defaulted, immutable ExecutionSpec.

Everything a request says is checked here, before any container, workspace or
record exists. Fields are checked in the order they appear in the proto and
the first violation is reported, naming the field the way the proto does
("files[2].path"), so a caller can find what to fix. The rules control
enforces too (ids, languages, paths, package names, size and count caps) come
from services/common/contract/; env names, timeouts, memory and cpus are the
spawner's own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sandbox.common.v1 import execution_pb2
from sandbox.spawner.v1 import spawner_pb2
from services.common.contract import packages as package_rules
from services.common.contract.errors import InvalidArgument
from services.common.contract.ids import check_id
from services.common.contract.languages import check_language
from services.common.contract.limits import MAX_ARG_BYTES, MAX_STEPS, RequestLimits
from services.common.contract.paths import check_path, find_collisions, path_key
from services.spawner.config import SpawnerSettings

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}\Z")

MIN_TIMEOUT_MS = 100

# Set by the spawner itself (proxy with per-execution credentials, runner
# control); a request must not override them. Compared upper-cased.
RESERVED_ENV = frozenset(
    {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "LD_PRELOAD", "LD_LIBRARY_PATH"}
)
RESERVED_ENV_PREFIX = "SANDBOX_"

@dataclass(frozen=True)
class Step:
    path: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Package:
    name: str
    version: str = ""


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


def validate_execute(
    request: spawner_pb2.ExecuteRequest, settings: SpawnerSettings
) -> ExecutionSpec:
    """Check `request` against the rules and caps in `settings`.

    Raises InvalidArgument for the first violation found.
    """
    caps = settings.limits
    execution_id = check_id("execution_id", request.execution_id)
    tenant = check_id("tenant", request.tenant)
    language = check_language(request.language)
    files = _check_files("files", request.files, caps, required=True)
    steps = _check_entry_and_steps(request, {path for path, _ in files}, caps)
    packages = _check_packages(language, request.packages, caps)
    timeout_ms, memory_bytes, cpus = _check_limits(request.limits, settings)
    env = _check_env(request.env, caps)
    if len(request.stdin) > caps.max_stdin_bytes:
        raise InvalidArgument("stdin", f"must be at most {caps.max_stdin_bytes} bytes")
    # Request-level args belong to `entry`; with steps they would be silently
    # ignored, so refuse them.
    if request.args and request.steps:
        raise InvalidArgument("args", "only used with entry; give each step its own args")
    args = _check_args("args", request.args, caps)
    if request.entry:
        steps = (Step(request.entry, args),)
    prior_outputs = _check_files("prior_outputs", request.prior_outputs, caps, required=False)
    return ExecutionSpec(
        execution_id=execution_id,
        tenant=tenant,
        language=language,
        files=files,
        steps=steps,
        env=env,
        stdin=bytes(request.stdin),
        timeout_ms=timeout_ms,
        memory_bytes=memory_bytes,
        cpus=cpus,
        prior_outputs=prior_outputs,
        packages=packages,
        allow_sdist=request.install.allow_sdist,
        allow_install_scripts=request.install.allow_install_scripts,
        network=request.network or bool(packages),
    )


def _check_packages(language: str, requested, caps: RequestLimits) -> tuple[Package, ...]:
    if len(requested) > caps.max_packages:
        raise InvalidArgument("packages", f"at most {caps.max_packages} packages")
    seen = set()
    for index, package in enumerate(requested):
        refusal = package_rules.check(language, package.name, package.version)
        if refusal:
            field_name = package_rules.refused_field(language, package.name)
            raise InvalidArgument(f"packages[{index}].{field_name}", refusal)
        key = package_rules.package_key(language, package.name)
        if key in seen:
            raise InvalidArgument(f"packages[{index}].name", f"{package.name!r} is listed twice")
        seen.add(key)
    return tuple(Package(p.name, p.version) for p in requested)


def _check_files(
    name: str,
    files: Sequence[execution_pb2.File],
    caps: RequestLimits,
    *,
    required: bool,
) -> tuple[tuple[str, bytes], ...]:
    """Shared by `files` and `prior_outputs`: each has its own count and total."""
    if required and not files:
        raise InvalidArgument(name, "at least one file is required")
    if len(files) > caps.max_files:
        raise InvalidArgument(name, f"at most {caps.max_files} files allowed")
    total = 0
    for i, f in enumerate(files):
        reason = check_path(f.path, max_length=caps.max_path_length)
        if reason:
            raise InvalidArgument(f"{name}[{i}].path", reason)
        if len(f.content) > caps.max_file_bytes:
            raise InvalidArgument(
                f"{name}[{i}].content", f"must be at most {caps.max_file_bytes} bytes"
            )
        total += len(f.content)
    if total > caps.max_total_file_bytes:
        raise InvalidArgument(
            name, f"total content must be at most {caps.max_total_file_bytes} bytes"
        )
    collisions = find_collisions(f.path for f in files)
    if collisions:
        a, b = collisions[0]
        if path_key(a) == path_key(b):
            why = f'"{a}" and "{b}" collide: paths must differ in more than case or Unicode form'
        else:
            why = f'"{a}" and "{b}" collide: one would be both a file and a directory'
        raise InvalidArgument(name, why)
    return tuple((f.path, bytes(f.content)) for f in files)


def _check_entry_and_steps(
    request: spawner_pb2.ExecuteRequest, staged: set[str], caps: RequestLimits
) -> tuple[Step, ...]:
    # Which of the two is given is decided first: a path check on one of them
    # would be beside the point when the pair itself is wrong.
    if not request.entry and not request.steps:
        raise InvalidArgument("entry", "required (or steps)")
    if request.entry and request.steps:
        raise InvalidArgument("steps", "give entry or steps, not both")
    if request.entry:
        if request.entry not in staged:
            raise InvalidArgument("entry", "must be the path of one of the files")
        return ()  # the entry step is built once `args` (field 11) is checked
    if len(request.steps) > MAX_STEPS:
        raise InvalidArgument("steps", f"at most {MAX_STEPS} steps allowed")
    steps = []
    for i, step in enumerate(request.steps):
        if step.path not in staged:
            raise InvalidArgument(f"steps[{i}].path", "must be the path of one of the files")
        steps.append(Step(step.path, _check_args(f"steps[{i}].args", step.args, caps)))
    return tuple(steps)


def _check_args(name: str, args: Sequence[str], caps: RequestLimits) -> tuple[str, ...]:
    if len(args) > caps.max_args:
        raise InvalidArgument(name, f"at most {caps.max_args} arguments allowed")
    for i, arg in enumerate(args):
        # argv entries are C strings: a NUL would silently cut the argument.
        if "\x00" in arg:
            raise InvalidArgument(f"{name}[{i}]", "must not contain NUL")
        if len(arg.encode("utf-8")) > MAX_ARG_BYTES:
            raise InvalidArgument(f"{name}[{i}]", f"must be at most {MAX_ARG_BYTES} bytes")
    return tuple(args)


def _check_limits(
    limits: execution_pb2.Limits, settings: SpawnerSettings
) -> tuple[int, int, float]:
    # An unset Limits message reads as all zeros, i.e. all defaults.
    timeout_ms = limits.timeout_ms or settings.default_timeout_ms
    if not MIN_TIMEOUT_MS <= timeout_ms <= settings.max_timeout_ms:
        raise InvalidArgument(
            "limits.timeout_ms",
            f"must be between {MIN_TIMEOUT_MS} and {settings.max_timeout_ms}"
            f" (0 for the default {settings.default_timeout_ms})",
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
            f"must be greater than 0 and at most {settings.max_cpus}"
            f" (0 for the default {settings.default_cpus})",
        )
    return timeout_ms, memory_bytes, cpus or settings.default_cpus


def _check_env(env: dict[str, str], caps: RequestLimits) -> dict[str, str]:
    if len(env) > caps.max_env:
        raise InvalidArgument("env", f"at most {caps.max_env} variables allowed")
    total = 0
    # Map order is unspecified on the wire; sort so the error is deterministic.
    for name in sorted(env):
        value = env[name]
        where = _env_field(name)
        if not ENV_NAME_RE.match(name):
            raise InvalidArgument(where, "name must match [A-Za-z_][A-Za-z0-9_]{0,127}")
        upper = name.upper()
        if upper in RESERVED_ENV or upper.startswith(RESERVED_ENV_PREFIX):
            raise InvalidArgument(where, "reserved: set by the spawner")
        if "\x00" in value:
            raise InvalidArgument(where, "value must not contain NUL")
        total += len(name.encode("utf-8")) + len(value.encode("utf-8"))
    if total > caps.max_env_bytes:
        raise InvalidArgument(
            "env", f"names and values must total at most {caps.max_env_bytes} bytes"
        )
    return dict(env)


def _env_field(name: str) -> str:
    # JSON-quoted so odd names cannot forge the message; shortened because the
    # message travels in gRPC trailers, which have a small size limit.
    shown = name if len(name) <= 64 else name[:64] + "..."
    return f"env[{json.dumps(shown)}]"
