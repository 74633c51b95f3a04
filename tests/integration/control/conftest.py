"""Control fixtures: a real PostgreSQL 15 started by the suite, SQLite files,
a real in-process spawner of control's own, and control servers on both
databases.

PostgreSQL runs as the `postgres` user from a temporary directory, listens on
127.0.0.1 on a free port with its unix socket in that directory, and is
stopped and deleted at the end. Every test that asks for a database gets a
fresh one.
"""

from __future__ import annotations

import contextlib
import secrets

import grpc
import psycopg
import pytest

from sandbox.control.v1 import control_pb2_grpc
from services.control.auth import TenantClientInterceptor
from services.control.config import ControlSettings
from services.control.db import Database
from services.control.server import start as start_control
from services.spawner.server import start as start_spawner
from tests.integration.conftest import SECRET, assert_nothing_left, make_settings
from tests.postgres import Unavailable, temporary_server

TENANT_KEYS = {name: secrets.token_hex(16) for name in ("tenant-a", "tenant-b", "tenant-c")}
# tenant-c has a tiny CPU budget.
TENANT_QUOTAS = {"tenant-c": {"daily_cpu_seconds": 5}}


@pytest.fixture(scope="session")
def postgres():
    """Base URL (no database name) of a throw-away PostgreSQL server."""
    try:
        with temporary_server("control-pg-", fsync=False, max_connections=300) as base_url:
            yield base_url
    except Unavailable as exc:
        pytest.fail(str(exc))


def new_postgres_database(base_url: str) -> str:
    name = f"control_{secrets.token_hex(4)}"
    with psycopg.connect(base_url.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base_url}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/control.db"
    return new_postgres_database(request.getfixturevalue("postgres"))


@pytest.fixture
def database(database_url):
    db = Database(database_url)
    db.migrate()
    yield db
    db.dispose()


# ---- a spawner and control servers ----------------------------------------


@pytest.fixture(scope="session")
def control_spawner(docker_api, tmp_path_factory):
    name = f"ctl-{secrets.token_hex(4)}"
    root = tmp_path_factory.mktemp("control-workspaces")
    running = start_spawner(make_settings(name, root, capacity=4))
    yield running
    running.stop(grace_seconds=5)
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)
    assert running.spawner.cleanup_failures == 0


def control_settings(spawner_port: int, data_dir, database_url: str, **overrides) -> ControlSettings:
    values = dict(
        listen="127.0.0.1:0",
        metrics_listen="127.0.0.1:0",  # a free port of its own: several controls run at once
        data_dir=str(data_dir),
        database_url=database_url,
        spawners=(f"127.0.0.1:{spawner_port}",),
        spawner_secret=SECRET,
        tenant_keys=TENANT_KEYS,
        tenant_quotas=TENANT_QUOTAS,
        max_in_flight=4,
        daily_cpu_seconds=100_000,
        default_timeout_ms=20_000,
        max_timeout_ms=60_000,
        flush_interval_seconds=0.2,
        queue_timeout_seconds=20,
        # One tenant may use the whole test spawner: these tests run several
        # executions of one tenant at once. Fairness between tenants has its
        # own control and spawner (test_fair_share.py).
        slot_share=1.0,
    )
    values.update(overrides)
    return ControlSettings(**values)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def control_server(request, control_spawner, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp(f"control-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir}/control.db"
    else:
        url = new_postgres_database(request.getfixturevalue("postgres"))
    running = start_control(control_settings(control_spawner.port, data_dir, url))
    yield running
    running.stop(grace_seconds=5)


@contextlib.contextmanager
def control_channel(port: int, tenant: str, key: str | None = None):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        key = TENANT_KEYS.get(tenant) if key is None else key
        yield grpc.intercept_channel(channel, TenantClientInterceptor(tenant, key.encode()))


@pytest.fixture(scope="session")
def tenant_a(control_server):
    with control_channel(control_server.port, "tenant-a") as channel:
        yield control_pb2_grpc.ControlStub(channel)


@pytest.fixture(scope="session")
def tenant_b(control_server):
    with control_channel(control_server.port, "tenant-b") as channel:
        yield control_pb2_grpc.ControlStub(channel)
