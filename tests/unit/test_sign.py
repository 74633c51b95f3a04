"""The grpcurl signing helpers read differently named secrets: the service
secret (SERVICE_SECRET) and a tenant's key (SANDBOX_TENANT_KEY)."""

from __future__ import annotations

import sys

import pytest

from services.common import sign as service_sign
from services.common.auth import HEADER, Verifier
from services.control import sign as tenant_sign

INFO = "sandbox.spawner.v1.Spawner/Info"
SECRET = "s" * 32


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("SERVICE_SECRET", "SPAWNER_SECRET", "SANDBOX_SECRET", "SANDBOX_TENANT_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_service_signature_uses_service_secret(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["sign", INFO, "{}"])
    monkeypatch.setenv("SERVICE_SECRET", SECRET)
    assert service_sign.main() == 0
    Verifier(SECRET.encode()).verify(f"/{INFO}", b"", capsys.readouterr().out.strip())


def test_old_name_is_not_read(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["sign", INFO, "{}"])
    monkeypatch.setenv("SANDBOX_SECRET", SECRET)
    assert service_sign.main() == 2
    assert "SERVICE_SECRET" in capsys.readouterr().err


def test_tenant_headers_use_tenant_key(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["sign", "demo", "sandbox.control.v1.Control/GetQuota", "{}"])
    assert tenant_sign.main() == 2
    monkeypatch.setenv("SANDBOX_TENANT_KEY", SECRET)
    assert tenant_sign.main() == 0
    out = capsys.readouterr().out
    assert "x-sandbox-tenant: demo" in out and HEADER in out
