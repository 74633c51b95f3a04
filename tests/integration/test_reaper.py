"""A restarted spawner finds and removes what a previous one left behind."""

from __future__ import annotations

import os
import secrets

import pytest

from services.spawner import sandbox
from services.spawner.removal import remove_tree
from services.spawner.server import start
from services.spawner.workspace import Workspace, WorkspaceLimits
from tests.hostile_trees import make_deep_tree, mount_tmpfs, unmount
from tests.integration.conftest import (
    RUNTIME_IMAGE,
    assert_nothing_left,
    labelled_containers,
    make_settings,
)

pytestmark = pytest.mark.integration


def test_restart_reaps_leftovers(docker_api, tmp_path):
    """As a crashed spawner leaves them: a running sandbox with its workspace
    mounted, a workspace still mounted whose container is gone, and a lone
    image. No mount or loop device survives the restart."""
    name = f"reap-{secrets.token_hex(4)}"
    root = tmp_path / "workspaces"
    token = secrets.token_hex(8)
    workspace = Workspace.at(str(root), "orphan", token)
    workspace.create(WorkspaceLimits(64 * 1024 * 1024, 1024))
    workspace.stage((("main.py", b"print(1)"),), b"")
    Workspace.at(str(root), "containerless", secrets.token_hex(8)).create(WorkspaceLimits(64 * 1024 * 1024, 1024))
    (root / f"lone.{secrets.token_hex(8)}.img").write_bytes(b"")
    labels = {
        sandbox.LABEL_ROLE: sandbox.ROLE_SANDBOX,
        sandbox.LABEL_SPAWNER: name,
        sandbox.LABEL_EXECUTION: "orphan",
        sandbox.LABEL_WORKSPACE: workspace.path.name,
    }
    created = docker_api.create_container(
        RUNTIME_IMAGE,
        command=[*sandbox.RUNNER_COMMAND, "hold"],
        labels=labels,
        host_config=docker_api.create_host_config(
            network_mode="none",
            cgroup_parent=f"/sandbox-mesh/{name}/{token}",
            binds={str(workspace.path): {"bind": sandbox.WORKSPACE, "mode": "rw"}},
        ),
    )
    try:
        docker_api.start(created["Id"])
        assert len(labelled_containers(docker_api, name)) == 1

        running = start(make_settings(name, root))
        try:
            assert_nothing_left(docker_api, name, root, running.spawner.cgroups)
            assert running.spawner.cleanup_failures == 0
        finally:
            running.stop(grace_seconds=1)
        assert running.spawner.cgroups.spawner_directories(name) == []
    finally:
        for leftover in labelled_containers(docker_api, name):
            docker_api.remove_container(leftover["Id"], force=True)


DEPTH = 5_000  # past the recursion limit, and past PATH_MAX


def test_restart_reaps_hostile_leftovers_and_survives_one_it_cannot_remove(docker_api, tmp_path):
    """A workspace nested thousands deep, one locked with chmod 000, and one
    that cannot be removed (another filesystem is mounted in it): the spawner
    starts, removes the first two, and counts the third."""
    name = f"reap-{secrets.token_hex(4)}"
    root = tmp_path / "workspaces"
    deep = root / f"deep.{secrets.token_hex(8)}.ws"
    locked = root / f"locked.{secrets.token_hex(8)}.ws"
    stuck = root / f"stuck.{secrets.token_hex(8)}.ws"
    for workspace in (deep, locked, stuck):
        workspace.mkdir(parents=True)
    make_deep_tree(str(deep), DEPTH)
    (locked / "box" / "inner").mkdir(parents=True)
    (locked / "box" / "inner" / "f").write_text("x")
    os.chmod(locked / "box" / "inner", 0)
    os.chmod(locked / "box", 0)
    mount_point = stuck / "mnt"
    mount_point.mkdir()
    mounted = mount_tmpfs(mount_point)
    try:
        running = start(make_settings(name, root))
        try:
            left = sorted(p.name for p in root.iterdir())
            assert left == ([stuck.name] if mounted else [])
            assert running.spawner.cleanup_failures == (1 if mounted else 0)
            counted = running.spawner.metrics.registry.get_sample_value(
                "sandbox_spawner_cleanup_failures_total", {"what": "workspace"}
            )
            assert counted == (1 if mounted else None)
        finally:
            running.stop(grace_seconds=1)
    finally:
        if mounted:
            unmount(mount_point)
        remove_tree(str(stuck))
