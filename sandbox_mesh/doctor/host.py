"""Checks of the machine the mesh runs on: the engine, compose, runtimes,
clock, the secrets in .env, free disk and inodes."""

from __future__ import annotations

import datetime
import os
import pathlib
import shutil
import stat
import subprocess
from collections.abc import Mapping
from typing import Any

import docker

from sandbox_mesh.doctor.report import FAIL, PASS, WARN, Check

GVISOR_RUNTIMES = ("runsc", "runsc-network")
DEFAULT_WORKSPACE_ROOT = "/var/lib/sandbox-mesh/workspaces"
MIN_FREE_BYTES = 2 * 1024**3
MIN_FREE_INODES_RATIO = 0.10
# Signatures are good for 60 s; a skew this large already eats into that.
MAX_CLOCK_SKEW_SECONDS = 5.0
COMPOSE_TIMEOUT_SECONDS = 10.0
# What scripts/env_secrets.sh keeps in .env; compose refuses to start without them.
REQUIRED_SECRETS = ("SERVICE_SECRET", "EGRESS_SECRET", "CONTROL_TENANT_KEYS")
# The services refuse shorter shared secrets.
MIN_SECRET_BYTES = 16
PRIVATE_MODE_BITS = stat.S_IRWXG | stat.S_IRWXO


# ---- the engine ------------------------------------------------------------------


def engine_check(engine: docker.DockerClient | None, error: str = "") -> Check:
    if engine is None:
        return Check("engine", FAIL, f"the Docker engine is unreachable: {error}", "start it: make docker")
    try:
        version = engine.version()
    except docker.errors.DockerException as exc:
        return Check("engine", FAIL, f"the Docker engine is unreachable: {exc}", "start it: make docker")
    return Check("engine", PASS, f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})")


def _version_of(argv: list[str], path: str | None) -> str | None:
    """The output of a `... version --short`, None when it is not there or fails."""
    if shutil.which(argv[0], path=path) is None:
        return None
    env = dict(os.environ) if path is None else {**os.environ, "PATH": path}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMPOSE_TIMEOUT_SECONDS, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or "?" if done.returncode == 0 else None


def compose_check(path: str | None = None) -> Check:
    """`make up` runs whichever compose there is, the v2 plugin first.
    ``path``: the PATH to look in (default: ours)."""
    plugin = _version_of(["docker", "compose", "version", "--short"], path)
    if plugin is not None:
        return Check("compose", PASS, f"docker compose {plugin} (v2 plugin)")
    standalone = _version_of(["docker-compose", "version", "--short"], path)
    if standalone is not None:
        return Check("compose", PASS, f"docker-compose {standalone} (v1)")
    return Check(
        "compose",
        FAIL,
        "neither `docker compose` nor `docker-compose` found",
        "install the Docker Compose plugin (or docker-compose >= 1.27)",
    )


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


# ---- secrets ---------------------------------------------------------------------


def env_file_check(env_file: pathlib.Path | None) -> Check:
    if env_file is None or not env_file.exists():
        return Check("env file", WARN, "no .env found (fine if the mesh is configured otherwise)", "make up writes one")
    mode = stat.S_IMODE(env_file.stat().st_mode)
    if mode & PRIVATE_MODE_BITS:
        return Check("env file", FAIL, f"{env_file} has mode {mode:04o}: others may read its keys", "chmod 600 .env")
    return Check("env file", PASS, f"{env_file} (mode {mode:04o})")


def read_env_file(env_file: pathlib.Path) -> dict[str, str]:
    """NAME=value lines as compose reads them (the last one wins)."""
    values: dict[str, str] = {}
    for line in env_file.read_text(errors="replace").splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def secrets_check(env_file: pathlib.Path | None, environ: Mapping[str, str] | None = None) -> Check:
    """The shared secrets and tenant keys the mesh starts with, from the
    environment or .env, and every `*_SECRET_FILE` named there: present,
    long enough, and files readable by their owner only."""
    env = dict(os.environ if environ is None else environ)
    found = read_env_file(env_file) if env_file is not None and env_file.exists() else {}
    merged = {**found, **{k: v for k, v in env.items() if v}}
    problems, fixes = [], []
    missing = [name for name in REQUIRED_SECRETS if not merged.get(name)]
    short = [
        name
        for name in REQUIRED_SECRETS
        if name.endswith("_SECRET") and 0 < len(merged.get(name, "").encode()) < MIN_SECRET_BYTES
    ]
    if short:
        problems.append(f"{', '.join(short)} shorter than {MIN_SECRET_BYTES} bytes")
        fixes.append("set longer ones in .env (make up makes 64 hex digits)")
    files = sorted((name, value) for name, value in merged.items() if name.endswith("_SECRET_FILE") and value)
    loose = []
    for name, value in files:
        path = pathlib.Path(value)
        if not path.is_file():
            problems.append(f"{name}: no file {path}")
            fixes.append(f"write the secret to {path} or unset {name}")
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & PRIVATE_MODE_BITS:
            problems.append(f"{name}: {path} has mode {mode:04o}, others may read it")
            loose.append(str(path))
    if loose:
        fixes.append(f"chmod 600 {' '.join(loose)}")
    if problems:
        return Check("secrets", FAIL, "; ".join(problems), "; ".join(fixes))
    if missing:
        # Before the first `make up`, which makes them: not broken yet.
        return Check("secrets", WARN, f"{', '.join(missing)} not set", "make up generates them into .env")
    named = ", ".join([*REQUIRED_SECRETS, *(name for name, _ in files)])
    return Check("secrets", PASS, f"{named} set" + (" (files mode 0600 or stricter)" if files else ""))


# ---- disk ------------------------------------------------------------------------


def nearest_existing(path: pathlib.Path) -> pathlib.Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return pathlib.Path("/")


def disk_status(
    where: pathlib.Path, free_bytes: int, free_inodes: int, total_inodes: int, *, name: str = "disk", fix: str = ""
) -> Check:
    gib = free_bytes / 1024**3
    # Some filesystems (btrfs, overlay on some hosts) report no inode counts.
    inode_ratio = free_inodes / total_inodes if total_inodes else 1.0
    detail = f"{where}: {gib:.1f} GiB free, {inode_ratio:.0%} inodes free"
    low = [
        what
        for what, short in (("space", free_bytes < MIN_FREE_BYTES), ("inodes", inode_ratio < MIN_FREE_INODES_RATIO))
        if short
    ]
    if low:
        return Check(name, WARN, f"{detail} (low {' and '.join(low)})", fix or f"free space and inodes under {where}")
    return Check(name, PASS, detail)


def disk_check(workspace_root: pathlib.Path) -> Check:
    where = nearest_existing(workspace_root)
    found = os.statvfs(where)
    return disk_status(
        where,
        found.f_bavail * found.f_frsize,
        found.f_favail,
        found.f_files,
        fix=f"free space under {where}, or set SPAWNER_WORKSPACE_ROOT",
    )


def data_disk_check(data_dir: pathlib.Path | None) -> Check:
    """Control's data (its SQLite file and output blobs): a volume of the
    engine's, or a directory; space and inodes as for the workspaces."""
    if data_dir is None:
        return Check("data disk", WARN, "control's data volume not found", "make up creates it")
    where = nearest_existing(data_dir)
    try:
        found = os.statvfs(where)
    except OSError as exc:
        return Check("data disk", WARN, f"{where}: {exc}", "run doctor as a user who may read it")
    return disk_status(
        where,
        found.f_bavail * found.f_frsize,
        found.f_favail,
        found.f_files,
        name="data disk",
        fix=f"free space and inodes under {where} (control's database and output files)",
    )
