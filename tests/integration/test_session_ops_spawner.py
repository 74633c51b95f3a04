"""Interrupts, restarts and the list of open sessions on the spawner itself
(docs/sessions.md): an interrupt asked for as the call is handed over still
reaches it, one asked for between calls does nothing, another tenant's
session is not found, a restart gives a fresh kernel with the files kept,
and ListSessions names the open sessions with their tenants."""

from __future__ import annotations

import time

import pytest

from sandbox.common.v1 import session_pb2 as cells
from sandbox.spawner.v1 import spawner_pb2 as pb
from services.spawner.errors import SessionNotFound
from tests.integration.test_sessions_spawner import TENANT, create, run, spawner  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration


def ref(key: str, tenant: str = TENANT) -> pb.SessionRef:
    return pb.SessionRef(session_key=key, tenant=tenant)


def test_an_interrupt_as_the_call_starts_reaches_it_and_the_session_goes_on(spawner):  # noqa: F811
    create(spawner, "interrupt")
    try:
        run(spawner, "interrupt", "x = 42")
        assert not spawner.sessions.interrupt(ref("interrupt"))  # nothing runs
        with pytest.raises(SessionNotFound):
            spawner.sessions.interrupt(ref("interrupt", "another-tenant"))
        started = time.monotonic()
        channel = spawner.sessions.run(
            pb.RunCellRequest(session_key="interrupt", tenant=TENANT, code="import time\ntime.sleep(60)")
        )
        assert spawner.sessions.interrupt(ref("interrupt"))  # at once: sent once the call is handed over
        result = first = [e for e in channel][-1].result
        assert time.monotonic() - started < 10
        assert (result.status, result.error.name) == (cells.CELL_STATUS_ERROR, "KeyboardInterrupt")
        _, result = run(spawner, "interrupt", "x")
        assert [p.data for p in result.values if p.last_value] == [b"42"], (first, result)
    finally:
        spawner.sessions.close(pb.CloseSessionRequest(session_key="interrupt", tenant=TENANT))


def test_a_restart_keeps_the_files_and_the_list_names_open_sessions(spawner):  # noqa: F811
    create(spawner, "restart")
    try:
        run(spawner, "restart", "x = 1\nopen('kept.txt', 'w').write('kept')")
        listed = spawner.sessions.listing().sessions
        assert [(s.session_key, s.tenant) for s in listed] == [("restart", TENANT)]
        with pytest.raises(SessionNotFound):
            spawner.sessions.restart(ref("restart", "another-tenant"))
        assert spawner.sessions.restart(ref("restart")).start_ms > 0
        _, result = run(spawner, "restart", "open('kept.txt').read()")
        assert next(p.data for p in result.values if p.last_value) == b"'kept'"
        _, result = run(spawner, "restart", "x")
        assert result.error.name == "NameError"
    finally:
        spawner.sessions.close(pb.CloseSessionRequest(session_key="restart", tenant=TENANT))
    assert spawner.sessions.listing().sessions == []
