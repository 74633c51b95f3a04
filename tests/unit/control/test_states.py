"""The transition table: forward only, terminal states final."""

from hypothesis import given
from hypothesis import strategies as st

from sandbox.common.v1 import execution_pb2 as common
from services.control.executions import states
from services.control.executions.models import CANCELLED, COMPLETED, FAILED, INSTALLING, QUEUED, RUNNING

ALL = [QUEUED, INSTALLING, RUNNING, COMPLETED, FAILED, CANCELLED]
RANK = {QUEUED: 0, INSTALLING: 1, RUNNING: 2, COMPLETED: 3, FAILED: 3, CANCELLED: 3}


def test_the_table():
    expected = {
        QUEUED: {INSTALLING, RUNNING, COMPLETED, FAILED, CANCELLED},
        INSTALLING: {RUNNING, COMPLETED, FAILED, CANCELLED},
        RUNNING: {COMPLETED, FAILED, CANCELLED},
        COMPLETED: set(),
        FAILED: set(),
        CANCELLED: set(),
    }
    assert expected == states.TRANSITIONS


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
