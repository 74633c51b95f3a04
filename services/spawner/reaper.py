"""Finds and removes what no execution in flight owns: containers labelled
with this spawner's name, workspaces and cgroup parents. Run at start (so a
restarted spawner cleans up after a crashed one) with no age limit, and
periodically as a sweep that only touches things older than any execution
could live."""

from __future__ import annotations

import logging
import pathlib
import shutil
import time

import docker

from services.spawner import sandbox
from services.spawner.cgroups import CgroupLayout, remove_tree
from services.spawner.workspace import WORKSPACE_SUFFIX

log = logging.getLogger(__name__)

SHORT_ID_CHARS = 12  # how Docker abbreviates container ids


def reap(
    api: docker.APIClient,
    spawner_name: str,
    workspace_root: str,
    cgroups: CgroupLayout,
    owned_tokens: set[str],
    min_age_seconds: float = 0.0,
) -> int:
    """Returns the number of clean-up failures (each one is logged)."""
    failures = 0
    cutoff = time.time() - min_age_seconds
    if min_age_seconds == 0:
        reason = "left by a previous run"
    else:
        reason = f"unowned and older than {min_age_seconds:.0f} s"
    labels = [f"{sandbox.LABEL_ROLE}={sandbox.ROLE_SANDBOX}", f"{sandbox.LABEL_SPAWNER}={spawner_name}"]
    for container in api.containers(all=True, filters={"label": labels}):
        workspace = container["Labels"].get(sandbox.LABEL_WORKSPACE, "")
        if _token_of(workspace) in owned_tokens or container.get("Created", 0) > cutoff:
            continue
        log.warning(
            "reaping container %s of execution %s: %s",
            container["Id"][:SHORT_ID_CHARS],
            container["Labels"].get(sandbox.LABEL_EXECUTION),
            reason,
        )
        try:
            api.remove_container(container["Id"], force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            log.error("cannot remove container %s: %s", container["Id"][:SHORT_ID_CHARS], exc)
            failures += 1
    root = pathlib.Path(workspace_root)
    if root.is_dir():
        for path in root.iterdir():
            if not path.name.endswith(WORKSPACE_SUFFIX) or _token_of(path.name) in owned_tokens:
                continue
            if _mtime(path) > cutoff:
                continue
            log.warning("reaping workspace %s: %s", path.name, reason)
            try:
                shutil.rmtree(path)
            except OSError as exc:
                log.error("cannot remove workspace %s: %s", path, exc)
                failures += 1
    for base in cgroups.spawner_directories(spawner_name):
        for path in base.iterdir():
            if not path.is_dir() or _token_of(path.name) in owned_tokens or _mtime(path) > cutoff:
                continue
            log.warning("reaping cgroup parent %s: %s", path, reason)
            try:
                remove_tree(path)
            except OSError as exc:
                log.error("cannot remove cgroup parent %s: %s", path, exc)
                failures += 1
    return failures


def _mtime(path: pathlib.Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _token_of(name: str) -> str:
    """Workspaces are '<execution>.<token>.ws'; cgroup parents '<token>' or
    'sandboxmesh-<spawner>-<token>.slice'."""
    if name.endswith(WORKSPACE_SUFFIX):
        return name[: -len(WORKSPACE_SUFFIX)].rpartition(".")[2]
    if name.endswith(".slice"):
        return name[: -len(".slice")].rpartition("-")[2]
    return name
