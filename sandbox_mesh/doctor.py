"""`sandboxctl doctor`: is this machine ready to run the mesh, and is the mesh up?

Each check gives pass, warn or fail and, unless it passed, the one fix to
apply. Every check takes what it looks at (an engine, paths, an address) as
arguments, so a test can point it at something broken.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
import stat
from collections.abc import Callable, Mapping
from typing import Any

import docker
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandbox_mesh import config
from sandbox_mesh.client import Client
from sandbox_mesh.errors import MeshError

PASS, WARN, FAIL = "pass", "warn", "fail"
RUNTIME_IMAGES = ("sandbox-mesh/runtime:local", "sandbox-mesh/runtime-datascience:local")
GVISOR_RUNTIMES = ("runsc", "runsc-network")
DEFAULT_WORKSPACE_ROOT = "/var/lib/sandbox-mesh/workspaces"
DEFAULT_SPAWNER = "127.0.0.1:50051"
MIN_FREE_BYTES = 2 * 1024**3
MIN_FREE_INODES_RATIO = 0.10
# Signatures are good for 60 s; a skew this large already eats into that.
MAX_CLOCK_SKEW_SECONDS = 5.0
CALL_TIMEOUT_SECONDS = 3.0


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == FAIL for c in checks) else 0


def format_check(check: Check) -> str:
    line = f"{check.status:<4}  {check.name:<10} {check.detail}"
    if check.status != PASS and check.fix:
        line += f"\n      fix: {check.fix}"
    return line


def as_json(checks: list[Check]) -> dict[str, Any]:
    return {"ok": exit_code(checks) == 0, "checks": [dataclasses.asdict(c) for c in checks]}


# ---- the engine ------------------------------------------------------------------


def engine_check(engine: docker.DockerClient | None, error: str = "") -> Check:
    if engine is None:
        return Check("engine", FAIL, f"the Docker engine is unreachable: {error}", "start it: make docker")
    try:
        version = engine.version()
    except docker.errors.DockerException as exc:
        return Check("engine", FAIL, f"the Docker engine is unreachable: {exc}", "start it: make docker")
    return Check("engine", PASS, f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})")


def images_check(engine: docker.DockerClient, images: tuple[str, ...] = RUNTIME_IMAGES) -> Check:
    missing = []
    for image in images:
        try:
            engine.images.get(image)
        except docker.errors.ImageNotFound:
            missing.append(image)
    if missing:
        return Check("images", FAIL, f"missing: {', '.join(missing)}", "make images")
    return Check("images", PASS, ", ".join(images))


def runtimes_status(runtimes: Mapping[str, Any]) -> Check:
    """From `docker info`'s Runtimes: runc is needed, gVisor is optional."""
    if "runc" not in runtimes:
        return Check("runtimes", FAIL, f"the engine has no runc runtime ({', '.join(runtimes)})", "reinstall Docker")
    missing = [name for name in GVISOR_RUNTIMES if name not in runtimes]
    if missing:
        return Check(
            "runtimes",
            WARN,
            f"gVisor not registered ({', '.join(missing)} missing): sandboxes run on runc only",
            "scripts/ensure_gvisor.sh registers it",
        )
    return Check("runtimes", PASS, "runc, " + ", ".join(GVISOR_RUNTIMES))


def parse_engine_time(text: str) -> datetime.datetime:
    """Docker's SystemTime has nanoseconds ("...T14:17:42.5662348Z") that
    datetime does not take: cut to microseconds."""
    head, _, rest = text.partition(".")
    if not rest:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    digits = "".join(ch for ch in rest if ch.isdigit())
    zone = rest[len(digits) :].replace("Z", "+00:00") or "+00:00"
    return datetime.datetime.fromisoformat(f"{head}.{digits[:6].ljust(6, '0')}{zone}")


def clock_status(engine_time: datetime.datetime, local_time: datetime.datetime) -> Check:
    skew = abs((engine_time - local_time).total_seconds())
    if skew > MAX_CLOCK_SKEW_SECONDS:
        return Check(
            "clock",
            FAIL,
            f"the engine's clock is {skew:.1f} s off ours (signatures are good for 60 s)",
            "sync the clocks (e.g. timedatectl set-ntp true)",
        )
    return Check("clock", PASS, f"the engine's clock is within {skew:.1f} s of ours")


def engine_info(engine: docker.DockerClient) -> dict[str, Any]:
    try:
        return dict(engine.info())
    except docker.errors.DockerException:
        return {}


def engine_runtimes_check(info: Mapping[str, Any]) -> Check:
    if not info:
        return Check("runtimes", FAIL, "docker info failed", "start it: make docker")
    return runtimes_status(info.get("Runtimes") or {})


def engine_clock_check(info: Mapping[str, Any]) -> Check:
    try:
        engine_time = parse_engine_time(str(info.get("SystemTime", "")))
    except ValueError:
        return Check("clock", WARN, f"cannot read the engine's time {info.get('SystemTime')!r}", "docker info")
    return clock_status(engine_time, datetime.datetime.now(datetime.UTC))


# ---- files and disk --------------------------------------------------------------


def env_file_check(env_file: pathlib.Path | None) -> Check:
    if env_file is None or not env_file.exists():
        return Check("env file", WARN, "no .env found (fine if the mesh is configured otherwise)", "make up writes one")
    mode = stat.S_IMODE(env_file.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return Check("env file", FAIL, f"{env_file} has mode {mode:04o}: others may read its keys", "chmod 600 .env")
    return Check("env file", PASS, f"{env_file} (mode {mode:04o})")


def nearest_existing(path: pathlib.Path) -> pathlib.Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return pathlib.Path("/")


def disk_status(where: pathlib.Path, free_bytes: int, free_inodes: int, total_inodes: int) -> Check:
    gib = free_bytes / 1024**3
    # Some filesystems (btrfs, overlay on some hosts) report no inode counts.
    inode_ratio = free_inodes / total_inodes if total_inodes else 1.0
    detail = f"{where}: {gib:.1f} GiB free, {inode_ratio:.0%} inodes free"
    if free_bytes < MIN_FREE_BYTES or inode_ratio < MIN_FREE_INODES_RATIO:
        return Check("disk", WARN, detail + " (low)", f"free space under {where}, or set SPAWNER_WORKSPACE_ROOT")
    return Check("disk", PASS, detail)


def disk_check(workspace_root: pathlib.Path) -> Check:
    where = nearest_existing(workspace_root)
    found = os.statvfs(where)
    return disk_status(where, found.f_bavail * found.f_frsize, found.f_favail, found.f_files)


# ---- the mesh --------------------------------------------------------------------


def key_source(key: str | None, environ: Mapping[str, str], env_file: pathlib.Path | None) -> str:
    if key is not None:
        return "--key"
    for name in ("SANDBOX_KEY", "SANDBOX_TENANT_KEY", "CONTROL_TENANT_KEYS"):
        if environ.get(name):
            return name
    return f"CONTROL_TENANT_KEYS in {env_file}" if env_file else "CONTROL_TENANT_KEYS"


def control_check(
    url: str | None,
    tenant: str | None,
    key: str | None,
    *,
    env_file: pathlib.Path | None,
    environ: Mapping[str, str] | None = None,
) -> Check:
    """An authenticated GetQuota with the client's own connection settings."""
    env = os.environ if environ is None else environ
    try:
        connection = config.resolve(url, tenant, key, environ=env, env_file=env_file)
    except config.ConfigError as exc:
        return Check("control", FAIL, str(exc), "set SANDBOX_KEY or pass --key")
    source = key_source(key, env, env_file)
    try:
        with Client(connection.url, connection.tenant, connection.key, call_timeout=CALL_TIMEOUT_SECONDS) as client:
            client.quota()
    except MeshError as exc:
        if exc.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            return Check("control", FAIL, f"{connection.url}: {exc}", "make up (or point --url/SANDBOX_URL at it)")
        if exc.code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return Check(
                "control",
                FAIL,
                f"{connection.url} refused tenant {connection.tenant!r}: {exc}",
                f"check the key for {connection.tenant!r} (from {source})",
            )
        return Check("control", FAIL, f"{connection.url}: {exc}", "see control's logs: make logs")
    return Check("control", PASS, f"{connection.url} accepts tenant {connection.tenant!r} (key from {source})")


def spawner_check(address: str) -> Check:
    """The spawner's gRPC health; a warning only when nothing answers (it may
    live elsewhere than this machine)."""
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_SECONDS
            )
        except grpc.RpcError as error:
            return Check("spawner", WARN, f"{address}: no health answer ({error.code().name})", "make up")
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        return Check("spawner", FAIL, f"{address}: {status}", "see the spawner's logs: make logs")
    return Check("spawner", PASS, f"{address}: {status}")


# ---- all of them -----------------------------------------------------------------


@dataclasses.dataclass
class Inputs:
    url: str | None = None
    tenant: str | None = None
    key: str | None = None
    env_file: pathlib.Path | None = None
    workspace_root: pathlib.Path = pathlib.Path(DEFAULT_WORKSPACE_ROOT)
    spawner: str = DEFAULT_SPAWNER
    images: tuple[str, ...] = RUNTIME_IMAGES
    engine: Callable[[], docker.DockerClient] = docker.from_env


def run_checks(inputs: Inputs) -> list[Check]:
    """All checks, in the order a person would fix things."""
    try:
        engine: docker.DockerClient | None = inputs.engine()
        error = ""
    except docker.errors.DockerException as exc:
        engine, error = None, str(exc)
    checks = [engine_check(engine, error)]
    info: dict[str, Any] = {}
    if engine is not None and checks[0].status == PASS:
        info = engine_info(engine)
        checks.append(images_check(engine, inputs.images))
        checks.append(engine_runtimes_check(info))
    checks.append(env_file_check(inputs.env_file))
    checks.append(disk_check(inputs.workspace_root))
    if info:
        checks.append(engine_clock_check(info))
    if engine is not None:
        engine.close()
    checks.append(control_check(inputs.url, inputs.tenant, inputs.key, env_file=inputs.env_file))
    checks.append(spawner_check(inputs.spawner))
    return checks
