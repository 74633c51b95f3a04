"""Finds and removes what no execution in flight owns: containers labelled
with this spawner's name, workspaces and cgroup parents. Run at start (so a
restarted spawner cleans up after a crashed one) with no age limit, and
periodically as a sweep that only touches things older than any execution
could live.

Whatever an execution left can be hostile (a workspace nested thousands of
levels deep, directories locked with chmod 000), so no single item may stop
the reap: each failure, of any kind, goes to `on_failure` (which logs it with
the execution id and counts it) and the reap goes on with the next item. A
start-up reap that raised would make the spawner restart forever.
"""

from __future__ import annotations

import logging
import math
import pathlib
import time
from collections.abc import Callable

import docker

from services.spawner import loopmount, sandbox
from services.spawner.cgroups import CgroupLayout, remove_cgroup_tree
from services.spawner.workspace import IMAGE_SUFFIX, WORKSPACE_SUFFIX, Workspace

log = logging.getLogger(__name__)

SHORT_ID_CHARS = 12  # how Docker abbreviates container ids
SLICE_SUFFIX = ".slice"

# (what, error, execution id or ""): what is the metric label.
OnFailure = Callable[[str, Exception, str], None]


def reap(
    api: docker.APIClient,
    spawner_name: str,
    workspace_root: str,
    cgroups: CgroupLayout,
    owned_tokens: set[str],
    on_failure: OnFailure,
    min_age_seconds: float = 0.0,
) -> None:
    # At start (no minimum age) whatever no one owns was left by a previous
    # run, however recently it changed: a sandbox that the crashed spawner
    # started an instant before it died may still touch its workspace while
    # this reap runs (its runner binds its socket there), which must not let
    # the workspace pass for young. The periodic sweep keeps its age bound.
    cutoff = time.time() - min_age_seconds if min_age_seconds > 0 else math.inf
    reason = "left by a previous run" if min_age_seconds == 0 else f"unowned and older than {min_age_seconds:.0f} s"
    _reap_containers(api, spawner_name, owned_tokens, cutoff, reason, on_failure)
    _reap_workspaces(pathlib.Path(workspace_root), owned_tokens, cutoff, reason, on_failure)
    _reap_cgroup_parents(cgroups, spawner_name, owned_tokens, cutoff, reason, on_failure)


def _reap_containers(
    api: docker.APIClient, spawner_name: str, owned: set[str], cutoff: float, reason: str, on_failure: OnFailure
) -> None:
    labels = [f"{sandbox.LABEL_ROLE}={sandbox.ROLE_SANDBOX}", f"{sandbox.LABEL_SPAWNER}={spawner_name}"]
    try:
        containers = api.containers(all=True, filters={"label": labels})
    except Exception as exc:
        on_failure("container", exc, "")
        return
    for container in containers:
        execution_id = ""
        try:
            container_labels = container.get("Labels") or {}
            execution_id = container_labels.get(sandbox.LABEL_EXECUTION, "")
            workspace = container_labels.get(sandbox.LABEL_WORKSPACE, "")
            if _token_of(workspace) in owned or container.get("Created", 0) > cutoff:
                continue
            log.warning(
                "reaping container %s of execution %s: %s", container["Id"][:SHORT_ID_CHARS], execution_id, reason
            )
            api.remove_container(container["Id"], force=True, v=True)
        except docker.errors.NotFound:
            pass
        except Exception as exc:
            on_failure("container", exc, execution_id)


def _reap_workspaces(root: pathlib.Path, owned: set[str], cutoff: float, reason: str, on_failure: OnFailure) -> None:
    """A workspace is its image, its mount point and the filesystem mounted
    there; a crashed spawner may have left any of them. Each is found by its
    name in the root, or in the mount table."""
    try:
        names = [p.name for p in root.iterdir()] if root.is_dir() else []
        names += [p.name for p in loopmount.mount_points_under(str(root))]
    except Exception as exc:
        on_failure("workspace", exc, "")
        return
    stems = dict.fromkeys(stem for stem in map(_workspace_stem, names) if stem)
    for stem in stems:
        execution_id, _, token = stem.rpartition(".")
        if token in owned:
            continue
        workspace = Workspace(root / f"{stem}{WORKSPACE_SUFFIX}")
        try:
            if max(_mtime(workspace.path), _mtime(workspace.image)) > cutoff:
                continue
            log.warning("reaping workspace %s of execution %s: %s", stem, execution_id, reason)
            workspace.remove()
        except Exception as exc:
            on_failure("workspace", exc, execution_id)


def _reap_cgroup_parents(
    cgroups: CgroupLayout, spawner_name: str, owned: set[str], cutoff: float, reason: str, on_failure: OnFailure
) -> None:
    try:
        bases = cgroups.spawner_directories(spawner_name)
    except Exception as exc:
        on_failure("cgroup", exc, "")
        return
    for base in bases:
        try:
            paths = list(base.iterdir())
        except Exception as exc:
            on_failure("cgroup", exc, "")
            continue
        for path in paths:
            try:
                if not path.is_dir() or _token_of(path.name) in owned or _mtime(path) > cutoff:
                    continue
                log.warning("reaping cgroup parent %s: %s", path, reason)
                remove_cgroup_tree(path)
            except Exception as exc:
                on_failure("cgroup", exc, "")


def _mtime(path: pathlib.Path) -> float:
    """0 for a missing path."""
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _token_of(name: str) -> str:
    """Workspaces are '<execution>.<token>.ws' (and '.img'); cgroup parents
    '<token>' or 'sandboxmesh-<spawner>-<token>.slice'."""
    stem = _workspace_stem(name)
    if stem:
        return stem.rpartition(".")[2]
    if name.endswith(SLICE_SUFFIX):
        return name[: -len(SLICE_SUFFIX)].rpartition("-")[2]
    return name


def _workspace_stem(name: str) -> str:
    """'<execution>.<token>' of a workspace's mount point or image; empty
    for any other name."""
    for suffix in (WORKSPACE_SUFFIX, IMAGE_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return ""
