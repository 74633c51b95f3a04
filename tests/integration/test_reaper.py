"""A restarted spawner finds and removes what a previous one left behind."""

from __future__ import annotations

import secrets

import pytest

from services.spawner import sandbox
from tests.integration.conftest import RUNTIME_IMAGE, assert_nothing_left, labelled_containers, make_settings
from services.spawner.server import start

pytestmark = pytest.mark.integration


def test_restart_reaps_leftovers(docker_api, tmp_path):
    name = f"reap-{secrets.token_hex(4)}"
    root = tmp_path / "workspaces"
    root.mkdir()
    token = secrets.token_hex(8)
    workspace = root / f"orphan.{token}.ws"
    (workspace / "code").mkdir(parents=True)
    (workspace / "code" / "main.py").write_text("print(1)")
    labels = {
        sandbox.LABEL_ROLE: sandbox.ROLE_SANDBOX,
        sandbox.LABEL_SPAWNER: name,
        sandbox.LABEL_EXECUTION: "orphan",
        sandbox.LABEL_WORKSPACE: workspace.name,
    }
    created = docker_api.create_container(
        RUNTIME_IMAGE,
        command=["python3", sandbox.RUNNER, "hold"],
        labels=labels,
        host_config=docker_api.create_host_config(
            network_mode="none", cgroup_parent=f"/sandbox-mesh/{name}/{token}"
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
