"""What an execution request asks to run, judged alike by control at its
door and by the spawner before it runs anything: language, files, entry or
steps and their arguments, packages, environment, stdin, the image variant,
and the timeout's shape.

Pure functions over the request message: control's ExecuteRequest and the
spawner's carry these fields under the same names and numbers. Each raises
InvalidArgument naming the first field at fault, in proto order. Memory and
CPUs are a spawner's own ranges (services/spawner/validation.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.common.contract import packages as package_rules
from services.common.contract.errors import InvalidArgument
from services.common.contract.languages import check_language
from services.common.contract.limits import MAX_ARG_BYTES, MAX_STEPS, MIN_TIMEOUT_MS, RequestLimits
from services.common.contract.paths import check_path, find_collisions, path_key
from services.common.contract.runtimes import STANDARD, check_variant

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}\Z")

# Set by the spawner itself (proxy with per-execution credentials, runner
# control); a request must not override them. Compared upper-cased.
RESERVED_ENV = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "LD_PRELOAD", "LD_LIBRARY_PATH"})
RESERVED_ENV_PREFIX = "SANDBOX_"
# An env name shown in a field name is cut to this many characters: the
# message travels in gRPC trailers, which have a small size limit.
MAX_SHOWN_ENV_NAME = 64


@dataclass(frozen=True)
class Step:
    path: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Package:
    name: str
    version: str = ""


@dataclass(frozen=True)
class Program:
    """The checked parts of a request: what runs, with what."""

    language: str  # "python" | "node"
    files: tuple[tuple[str, bytes], ...]
    # The entry is one step with the request's `args`.
    steps: tuple[Step, ...]
    packages: tuple[Package, ...]
    env: dict[str, str] = field(hash=False)
    stdin: bytes = b""
    variant: str = STANDARD  # of the language's image (contract/runtimes.py)


def check_program(request, limits: RequestLimits) -> Program:
    """Checks fields 3 to 7, 9 to 11 and `variant` of an ExecuteRequest
    (control's or the spawner's); the caller checks the ids before and
    `limits` after."""
    language = check_language(request.language)
    files = check_files("files", request.files, limits, required=True)
    steps = check_entry_and_steps(request, {path for path, _ in files}, limits)
    packages = check_packages(language, request.packages, limits.max_packages)
    env = check_env(request.env, limits)
    stdin = check_stdin(request.stdin, limits)
    # Request-level args belong to `entry`; with steps they would be silently
    # ignored, so refuse them.
    if request.args and request.steps:
        raise InvalidArgument("args", "only used with entry; give each step its own args")
    args = check_args("args", request.args, limits)
    if request.entry:
        steps = (Step(request.entry, args),)
    # Its number is the last of the fields checked here in both messages.
    variant = check_variant(language, request.variant)
    return Program(language, files, steps, packages, env, stdin, variant)


def check_files(name: str, files: Sequence, limits: RequestLimits, *, required: bool) -> tuple[tuple[str, bytes], ...]:
    """`files` (common.v1.File) as (path, content) pairs. Shared by `files`
    and `prior_outputs`: each has its own count and total."""
    if required and not files:
        raise InvalidArgument(name, "at least one file is required")
    if len(files) > limits.max_files:
        raise InvalidArgument(name, f"at most {limits.max_files} files allowed")
    total = 0
    for i, f in enumerate(files):
        reason = check_path(f.path, max_length=limits.max_path_length)
        if reason:
            raise InvalidArgument(f"{name}[{i}].path", reason)
        if len(f.content) > limits.max_file_bytes:
            raise InvalidArgument(f"{name}[{i}].content", f"must be at most {limits.max_file_bytes} bytes")
        total += len(f.content)
    if total > limits.max_total_file_bytes:
        raise InvalidArgument(name, f"total content must be at most {limits.max_total_file_bytes} bytes")
    collisions = find_collisions(f.path for f in files)
    if collisions:
        a, b = collisions[0]
        if path_key(a) == path_key(b):
            why = f'"{a}" and "{b}" collide: paths must differ in more than case or Unicode form'
        else:
            why = f'"{a}" and "{b}" collide: one would be both a file and a directory'
        raise InvalidArgument(name, why)
    return tuple((f.path, bytes(f.content)) for f in files)


def check_entry_and_steps(request, staged: set[str], limits: RequestLimits) -> tuple[Step, ...]:
    """The steps; () for an entry (its step is made once `args` is checked)."""
    # Which of the two is given is decided first: a path check on one of them
    # would be beside the point when the pair itself is wrong.
    if not request.entry and not request.steps:
        raise InvalidArgument("entry", "required (or steps)")
    if request.entry and request.steps:
        raise InvalidArgument("steps", "give entry or steps, not both")
    if request.entry:
        if request.entry not in staged:
            raise InvalidArgument("entry", "must be the path of one of the files")
        return ()
    if len(request.steps) > MAX_STEPS:
        raise InvalidArgument("steps", f"at most {MAX_STEPS} steps allowed")
    steps = []
    for i, step in enumerate(request.steps):
        if step.path not in staged:
            raise InvalidArgument(f"steps[{i}].path", "must be the path of one of the files")
        steps.append(Step(step.path, check_args(f"steps[{i}].args", step.args, limits)))
    return tuple(steps)


def check_args(name: str, args: Sequence[str], limits: RequestLimits) -> tuple[str, ...]:
    if len(args) > limits.max_args:
        raise InvalidArgument(name, f"at most {limits.max_args} arguments allowed")
    for i, arg in enumerate(args):
        # argv entries are C strings: a NUL would silently cut the argument.
        if "\x00" in arg:
            raise InvalidArgument(f"{name}[{i}]", "must not contain NUL")
        if len(arg.encode("utf-8")) > MAX_ARG_BYTES:
            raise InvalidArgument(f"{name}[{i}]", f"must be at most {MAX_ARG_BYTES} bytes")
    return tuple(args)


def check_packages(language: str, requested: Sequence, max_packages: int) -> tuple[Package, ...]:
    """`requested` are common.v1.Package (or anything with name and version)."""
    if len(requested) > max_packages:
        raise InvalidArgument("packages", f"at most {max_packages} packages")
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


def check_env(env: Mapping[str, str], limits: RequestLimits) -> dict[str, str]:
    if len(env) > limits.max_env:
        raise InvalidArgument("env", f"at most {limits.max_env} variables allowed")
    total = 0
    # Map order is unspecified on the wire; sort so the error is deterministic.
    for name in sorted(env):
        value = env[name]
        where = env_field(name)
        if not ENV_NAME_RE.match(name):
            raise InvalidArgument(where, "name must match [A-Za-z_][A-Za-z0-9_]{0,127}")
        upper = name.upper()
        if upper in RESERVED_ENV or upper.startswith(RESERVED_ENV_PREFIX):
            raise InvalidArgument(where, "reserved: set by the spawner")
        if "\x00" in value:
            raise InvalidArgument(where, "value must not contain NUL")
        total += len(name.encode("utf-8")) + len(value.encode("utf-8"))
    if total > limits.max_env_bytes:
        raise InvalidArgument("env", f"names and values must total at most {limits.max_env_bytes} bytes")
    return dict(env)


def env_field(name: str) -> str:
    """The field name of one variable, JSON-quoted so odd names cannot forge
    the message, and shortened."""
    shown = name if len(name) <= MAX_SHOWN_ENV_NAME else name[:MAX_SHOWN_ENV_NAME] + "..."
    return f"env[{json.dumps(shown)}]"


def check_stdin(stdin: bytes, limits: RequestLimits) -> bytes:
    if len(stdin) > limits.max_stdin_bytes:
        raise InvalidArgument("stdin", f"must be at most {limits.max_stdin_bytes} bytes")
    return bytes(stdin)


def check_timeout_ms(requested: int, *, default: int, maximum: int) -> int:
    """The timeout a request gets: 0 means `default`; anything else must lie
    between MIN_TIMEOUT_MS and `maximum` (each service's own setting)."""
    timeout_ms = requested or default
    if not MIN_TIMEOUT_MS <= timeout_ms <= maximum:
        raise InvalidArgument(
            "limits.timeout_ms", f"must be between {MIN_TIMEOUT_MS} and {maximum} (0 for the default {default})"
        )
    return timeout_ms
