"""`sandboxctl doctor`'s egress checks against the suite's real egress:
its container (state, mode, allowlist), its gRPC from here, and the signed
call a service makes to it from inside a container of the services image;
each also broken for real: an egress that exited, a wrong secret, an
address where nothing listens."""

from __future__ import annotations

import secrets
import socket
import time

import pytest

from sandbox_mesh import doctor
from sandbox_mesh.doctor import FAIL, PASS, WARN
from tests.integration.egress.conftest import SERVICES_IMAGE, UPSTREAM_NAMES

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_running_egress_passes_with_its_mode_and_allowlist(mesh):
    egress = mesh.egresses[0]
    check = doctor.egress_check(mesh.client, egress.container.name)
    assert check.status == PASS, check
    assert "running" in check.detail and "passthrough mode" in check.detail
    assert f"allows {UPSTREAM_NAMES[0]}" in check.detail


def test_an_egress_that_exited_fails(mesh):
    """Started as the mesh starts it, but without its secret: it exits."""
    broken = mesh.container(
        SERVICES_IMAGE,
        ["/opt/venv/bin/python", "-m", "services.egress"],
        mesh.inner,
        user="10001",
        environment={"EGRESS_MODE": "intercept", "EGRESS_ALLOW_HOSTS": "registry.invalid"},
    )
    deadline = time.monotonic() + 60
    while broken.status != "exited" and time.monotonic() < deadline:
        time.sleep(0.5)
        broken.reload()
    check = doctor.egress_check(mesh.client, broken.name)
    assert check.status == FAIL, check
    assert "exited" in check.detail and "intercept mode" in check.detail
    assert f"docker logs {broken.name}" in check.fix
    assert doctor.egress_check(mesh.client, f"no-such-egress-{secrets.token_hex(4)}").status == WARN


def test_the_egress_rpc_accepts_its_secret_only(mesh):
    egress = mesh.egresses[0]
    assert doctor.egress_grpc_check(egress.grpc_target, mesh.secret).status == PASS
    refused = doctor.egress_grpc_check(egress.grpc_target, secrets.token_hex(32))
    assert refused.status == FAIL and "UNAUTHENTICATED" in refused.detail, refused
    assert "EGRESS_SECRET" in refused.fix
    nobody = doctor.egress_grpc_check(f"127.0.0.1:{free_port()}", mesh.secret)
    assert nobody.status == FAIL and "UNAVAILABLE" in nobody.detail


def test_a_signed_call_from_inside_a_service_container(mesh):
    """The probe the doctor runs in the spawner's container, here in the
    egress's own (the same services image), with its own settings."""
    name = mesh.egresses[0].container.name
    ok = doctor.link_check(mesh.client, "link", name, "egress", "EGRESS_GRPC_LISTEN", "EGRESS_SECRET")
    assert ok.status == PASS, ok
    wrong_secret = doctor.link_check(
        mesh.client,
        "link",
        name,
        "egress",
        "EGRESS_GRPC_LISTEN",
        "DOCTOR_SECRET",
        environment={"DOCTOR_SECRET": secrets.token_hex(32)},
    )
    assert wrong_secret.status == FAIL and "UNAUTHENTICATED" in wrong_secret.detail, wrong_secret
    assert "different secrets" in wrong_secret.fix
    unreachable = doctor.link_check(
        mesh.client,
        "link",
        name,
        "egress",
        "DOCTOR_ADDRESS",
        "EGRESS_SECRET",
        environment={"DOCTOR_ADDRESS": "127.0.0.1:1"},
    )
    assert unreachable.status == FAIL and "UNAVAILABLE" in unreachable.detail, unreachable
    assert "DOCTOR_ADDRESS" in unreachable.fix
