"""A session's record shows the packages installed at its creation."""

from __future__ import annotations

from sandbox.common.v1 import execution_pb2 as common
from services.control.sessions import messages
from services.control.sessions.models import OPEN, SessionRow


def test_the_packages_installed_at_creation_are_echoed():
    packages = [common.Package(name="six", version="==1.16.0"), common.Package(name="numpy")]
    row = SessionRow(
        key="k",
        tenant="t",
        session_id="s",
        language=common.LANGUAGE_PYTHON,
        status=OPEN,
        timeout_ms=1000,
        idle_seconds=60,
        lifetime_seconds=600,
        created_at_ms=1,
        last_used_at_ms=1,
        packages_json=messages.packages_json(packages),
    )
    assert list(messages.session(row).packages) == packages
    row.packages_json = "[]"
    assert list(messages.session(row).packages) == []
