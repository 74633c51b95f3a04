"""`make up` brings the spawner up with compose and `make down` removes it all."""

from __future__ import annotations

import os
import pathlib
import secrets
import socket
import subprocess

import docker
import grpc
import pytest

from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from tests.integration.helpers import execute, request

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_make_up_serves_and_make_down_removes_everything(docker_api, tmp_path):
    suffix = secrets.token_hex(4)
    project, port = f"sandbox-mesh-test-{suffix}", _free_port()
    secret = secrets.token_hex(32)
    env = dict(
        os.environ,
        COMPOSE_PROJECT_NAME=project,
        SPAWNER_PORT=str(port),
        SPAWNER_NAME=f"compose-{suffix}",
        SPAWNER_WORKSPACE_ROOT=str(tmp_path / "workspaces"),
        SANDBOX_SECRET=secret,
    )
    project_filter = {"label": [f"com.docker.compose.project={project}"]}
    try:
        up = subprocess.run(["make", "up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "is SERVING" in up.stdout
        assert "grpcurl -plaintext" in up.stdout
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            signed = grpc.intercept_channel(channel, ClientAuthInterceptor(secret.encode()))
            outcome = execute(spawner_pb2_grpc.SpawnerStub(signed), request({"main.py": "print('via compose')"}))
        assert outcome.stdout == b"via compose\n", outcome.result
    finally:
        down = subprocess.run(["make", "down"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert docker_api.containers(all=True, filters=project_filter) == []
    assert docker_api.networks(filters=project_filter) == []
    assert docker_api.containers(all=True, filters={"label": [f"sandbox-mesh.spawner=compose-{suffix}"]}) == []
    assert list((tmp_path / "workspaces").iterdir()) == []
