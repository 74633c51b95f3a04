"""The pure rules of the session sweeper and of interrupted calls
(services/control/sessions/sweeper.py, interrupts.py)."""

from __future__ import annotations

from services.control.sessions.interrupts import RunningCalls
from services.control.sessions.models import OPEN, SessionRow
from services.control.sessions.sweeper import IDLE_SLACK_MS, LIFETIME_SLACK_MS, due, near_expiry


def row(created: int = 0, last_used: int = 0, idle: int = 60, lifetime: int = 3600) -> SessionRow:
    return SessionRow(
        key="k",
        tenant="t",
        session_id="s",
        language=1,
        status=OPEN,
        timeout_ms=1000,
        idle_seconds=idle,
        lifetime_seconds=lifetime,
        created_at_ms=created,
        last_used_at_ms=last_used,
    )


def test_an_idle_session_expires_at_its_idle_timeout_unless_a_call_runs():
    session = row(last_used=1000)
    assert due(session, 60_999, busy=False) is None
    assert due(session, 61_000, busy=False) == (61_000, "idle timeout reached")
    assert due(session, 61_000, busy=True) is None


def test_the_maximum_lifetime_ends_even_a_busy_session():
    session = row(last_used=3_599_000)
    assert due(session, 3_600_000, busy=True) == (3_600_000, "maximum lifetime reached")


def test_a_session_missing_from_its_spawner_near_its_expiry_is_left_to_expire():
    session = row(last_used=0)
    assert not near_expiry(session, 60_000 - IDLE_SLACK_MS - 1)
    assert near_expiry(session, 60_000 - IDLE_SLACK_MS)
    long_idle = row(idle=3600)
    assert not near_expiry(long_idle, 3_600_000 - LIFETIME_SLACK_MS - 1)
    assert near_expiry(long_idle, 3_600_000 - LIFETIME_SLACK_MS)


def test_only_a_call_being_relayed_is_marked_interrupted_and_the_mark_goes_with_it():
    calls = RunningCalls()
    calls.interrupt("c1", "cancelled by the caller")
    assert calls.interrupted("c1") == ""  # not relayed here
    calls.started("s1", "c1")
    assert calls.running("s1") == "c1"
    calls.interrupt("c1", "cancelled by the caller")
    calls.interrupt("c1", "the session was restarted")
    assert calls.interrupted("c1") == "cancelled by the caller"
    calls.ended("s1", "c1")
    assert calls.running("s1") == "" and calls.interrupted("c1") == ""
