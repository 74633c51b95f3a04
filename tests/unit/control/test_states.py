"""The state machine: forward only, terminal states final, as the store
applies it (SQLite in a temporary directory)."""

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.common.v1 import execution_pb2 as common
from services.control.config import QuotaLimits
from services.control.db import Database
from services.control.executions import states
from services.control.executions.models import CANCELLED, COMPLETED, FAILED, INSTALLING, QUEUED, RUNNING, Verdict
from services.control.executions.store import ExecutionStore

ALL = [QUEUED, INSTALLING, RUNNING, COMPLETED, FAILED, CANCELLED]
RANK = {QUEUED: 0, INSTALLING: 1, RUNNING: 2, COMPLETED: 3, FAILED: 3, CANCELLED: 3}


def forward(source: str, target: str) -> bool:
    """The rule the table must encode, stated without it: only forward, never
    out of a terminal state."""
    return source not in states.TERMINAL and RANK[target] > RANK[source]


@pytest.fixture
def store(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/control.db")
    db.migrate()
    yield ExecutionStore(db, lambda tenant: QuotaLimits(max_in_flight=1000, daily_cpu_seconds=1e9))
    db.dispose()


def _move(store: ExecutionStore, key: str, target: str) -> bool:
    if target in states.TERMINAL:
        return store.finalize(key, Verdict(target, "" if target == COMPLETED else "CANCELLED", cpu_seconds=0.0))
    return store.advance(key, target)


def test_the_store_applies_exactly_the_forward_moves(store):
    """Every (from, to) pair through the store's conditional UPDATEs: a row
    moves when the rule allows it, and otherwise keeps its state."""
    for source in ALL:
        for target in ALL:
            row = store.reserve(
                key=secrets.token_hex(16),
                tenant="t",
                execution_id=secrets.token_hex(4),
                group_id="",
                language=common.LANGUAGE_PYTHON,
                timeout_ms=1000,
            )
            if source != QUEUED:
                assert _move(store, row.key, source), source
            moved = _move(store, row.key, target)
            assert moved == forward(source, target), (source, target)
            assert store.by_key(row.key).status == (target if moved else source), (source, target)


def test_the_table_is_the_forward_rule():
    assert {(s, t) for s in ALL for t in ALL if states.allowed(s, t)} == {
        (s, t) for s in ALL for t in ALL if forward(s, t)
    }


def test_every_transition_moves_forward_and_terminal_states_are_final():
    for source in ALL:
        for target in ALL:
            if states.allowed(source, target):
                assert RANK[target] > RANK[source]
        if source in states.TERMINAL:
            assert not any(states.allowed(source, target) for target in ALL)
    assert not states.allowed(RUNNING, INSTALLING)
    assert not states.allowed(RUNNING, RUNNING)


def test_sources():
    assert states.sources(QUEUED) == ()
    assert states.sources(INSTALLING) == (QUEUED,)
    assert states.sources(RUNNING) == (QUEUED, INSTALLING)
    assert states.sources(FAILED) == (QUEUED, INSTALLING, RUNNING)


@given(st.lists(st.sampled_from(ALL), max_size=20))
def test_any_sequence_of_attempts_is_monotonic(attempts):
    status, history = QUEUED, [QUEUED]
    for target in attempts:
        if states.allowed(status, target):
            status = target
            history.append(status)
    assert [RANK[s] for s in history] == sorted(RANK[s] for s in history)
    assert sum(s in states.TERMINAL for s in history) <= 1


def test_proto_names_round_trip():
    for status in ALL:
        assert states.from_proto(states.to_proto(status)) == status
    assert states.to_proto(CANCELLED) == common.EXECUTION_STATUS_CANCELLED
    assert states.error_name(common.ERROR_CODE_TIMEOUT) == "TIMEOUT"
    assert states.error_code("SPAWNER_UNAVAILABLE") == common.ERROR_CODE_SPAWNER_UNAVAILABLE
    assert states.error_name(common.ERROR_CODE_UNSPECIFIED) == "" and states.error_code("") == 0
