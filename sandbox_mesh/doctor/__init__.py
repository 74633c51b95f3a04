"""`sandboxctl doctor`: is this machine ready to run the mesh, and is the mesh up?

Each check gives pass, warn or fail and, unless it passed, the one fix to
apply. Every check takes what it looks at (an engine, paths, an address) as
arguments, so a test can point it at something broken. `host` checks the
machine, `images` the images, `mesh` the running services.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable
from typing import Any

import docker

from sandbox_mesh.doctor.host import (
    DEFAULT_WORKSPACE_ROOT,
    GVISOR_RUNTIMES,
    clock_status,
    compose_check,
    data_disk_check,
    disk_check,
    disk_status,
    engine_check,
    engine_clock_check,
    engine_info,
    engine_runtimes_check,
    env_file_check,
    nearest_existing,
    parse_engine_time,
    read_env_file,
    runtimes_status,
    secrets_check,
)
from sandbox_mesh.doctor.images import MESH_IMAGES, RUNTIME_IMAGES, images_check, source_tree
from sandbox_mesh.doctor.mesh import (
    DEFAULT_PROJECT,
    DEFAULT_SPAWNER,
    control_check,
    data_dir,
    egress_check,
    egress_grpc_check,
    key_source,
    link_check,
    networks_check,
    service_container,
    spawner_check,
)
from sandbox_mesh.doctor.report import FAIL, PASS, WARN, Check, as_json, exit_code, format_check

__all__ = [
    "DEFAULT_SPAWNER",
    "DEFAULT_WORKSPACE_ROOT",
    "FAIL",
    "GVISOR_RUNTIMES",
    "MESH_IMAGES",
    "PASS",
    "RUNTIME_IMAGES",
    "WARN",
    "Check",
    "Inputs",
    "as_json",
    "clock_status",
    "compose_check",
    "control_check",
    "data_disk_check",
    "disk_check",
    "disk_status",
    "egress_check",
    "egress_grpc_check",
    "engine_check",
    "engine_clock_check",
    "engine_info",
    "engine_runtimes_check",
    "env_file_check",
    "exit_code",
    "format_check",
    "images_check",
    "key_source",
    "link_check",
    "nearest_existing",
    "networks_check",
    "parse_engine_time",
    "run_checks",
    "runtimes_status",
    "secrets_check",
    "spawner_check",
]


@dataclasses.dataclass
class Inputs:
    url: str | None = None
    tenant: str | None = None
    key: str | None = None
    env_file: pathlib.Path | None = None
    workspace_root: pathlib.Path = pathlib.Path(DEFAULT_WORKSPACE_ROOT)
    spawner: str = DEFAULT_SPAWNER
    images: tuple[str, ...] = MESH_IMAGES
    engine: Callable[[], docker.DockerClient] = docker.from_env
    # The compose project (COMPOSE_PROJECT_NAME, from the environment or .env).
    project: str = ""
    # The egress's gRPC address, when this machine reaches it (compose keeps
    # it on a socket only the spawner and the egress mount: not checked from
    # here then, but from inside the spawner).
    egress_grpc: str = ""
    # The checkout images are compared with; None: images/build.sh's own.
    tree: pathlib.Path | None = dataclasses.field(default_factory=source_tree)
    # Control's data directory; None: its compose volume.
    control_data: pathlib.Path | None = None


def _setting(name: str, env_values: dict[str, str], default: str = "") -> str:
    return os.environ.get(name) or env_values.get(name) or default


def run_checks(inputs: Inputs) -> list[Check]:
    """All checks, in the order a person would fix things."""
    env_values = read_env_file(inputs.env_file) if inputs.env_file and inputs.env_file.is_file() else {}
    project = inputs.project or _setting("COMPOSE_PROJECT_NAME", env_values, DEFAULT_PROJECT)
    try:
        engine: docker.DockerClient | None = inputs.engine()
        error = ""
    except docker.errors.DockerException as exc:
        engine, error = None, str(exc)
    checks = [engine_check(engine, error), compose_check()]
    info: dict[str, Any] = {}
    up = engine is not None and checks[0].status == PASS
    if up:
        assert engine is not None
        info = engine_info(engine)
        checks.append(images_check(engine, inputs.images, inputs.tree))
        checks.append(engine_runtimes_check(info))
    checks.append(env_file_check(inputs.env_file))
    checks.append(secrets_check(inputs.env_file))
    checks.append(disk_check(inputs.workspace_root))
    if up:
        assert engine is not None
        found = inputs.control_data or (pathlib.Path(p) if (p := data_dir(engine, project)) else None)
        checks.append(data_disk_check(found))
    if info:
        checks.append(engine_clock_check(info))
    checks.append(control_check(inputs.url, inputs.tenant, inputs.key, env_file=inputs.env_file))
    checks.append(spawner_check(inputs.spawner))
    if up:
        assert engine is not None
        checks.append(egress_check(engine, f"{project}-egress"))
        checks.append(networks_check(engine))
        control, spawner = service_container(engine, project, "control"), service_container(engine, project, "spawner")
        checks.append(
            link_check(engine, "control→spawner", control, "spawner", "CONTROL_SPAWNERS", "CONTROL_SPAWNER_SECRET")
        )
        checks.append(
            link_check(engine, "spawner→egress", spawner, "egress", "SPAWNER_EGRESS_GRPC", "SPAWNER_EGRESS_SECRET")
        )
    if inputs.egress_grpc:
        checks.append(egress_grpc_check(inputs.egress_grpc, _setting("EGRESS_SECRET", env_values)))
    if engine is not None:
        engine.close()
    return checks
