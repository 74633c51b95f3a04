"""The execution state machine: the one table of allowed transitions.

queued -> installing -> running -> completed | failed | cancelled. Moves only
go forward (a phase may be skipped: a run without packages never installs);
a terminal state has no way out. The store applies every move as a
conditional UPDATE (`WHERE status IN sources(target)`), so concurrent writers
(the relay, a cancel, the watchdog) cannot move a row backwards or change a
terminal verdict: the first one wins and the others see rowcount 0.
"""

from __future__ import annotations

from typing import cast

from sandbox.common.v1 import execution_pb2 as common
from services.control.executions.models import CANCELLED, COMPLETED, FAILED, INSTALLING, QUEUED, RUNNING, ExecutionRow

ORDER = (QUEUED, INSTALLING, RUNNING)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
NONTERMINAL = frozenset(ORDER)

TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({INSTALLING, RUNNING}) | TERMINAL,
    INSTALLING: frozenset({RUNNING}) | TERMINAL,
    RUNNING: TERMINAL,
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}


def allowed(source: str, target: str) -> bool:
    return target in TRANSITIONS[source]


def sources(target: str) -> tuple[str, ...]:
    """Every status from which `target` may be reached, in table order."""
    return tuple(s for s, targets in TRANSITIONS.items() if target in targets)


_TO_PROTO: dict[str, common.ExecutionStatus] = {
    QUEUED: common.EXECUTION_STATUS_QUEUED,
    INSTALLING: common.EXECUTION_STATUS_INSTALLING,
    RUNNING: common.EXECUTION_STATUS_RUNNING,
    COMPLETED: common.EXECUTION_STATUS_COMPLETED,
    FAILED: common.EXECUTION_STATUS_FAILED,
    CANCELLED: common.EXECUTION_STATUS_CANCELLED,
}
_FROM_PROTO = {v: k for k, v in _TO_PROTO.items()}


def to_proto(status: str) -> common.ExecutionStatus:
    return _TO_PROTO[status]


def from_proto(status: common.ExecutionStatus) -> str:
    try:
        return _FROM_PROTO[status]
    except KeyError:
        raise ValueError(f"not an execution status: {status}") from None


_ERROR_PREFIX = "ERROR_CODE_"


def error_name(code: int) -> str:
    """ERROR_CODE_TIMEOUT -> "TIMEOUT"; unspecified -> ""."""
    if code == common.ERROR_CODE_UNSPECIFIED:
        return ""
    return common.ErrorCode.Name(code)[len(_ERROR_PREFIX) :]


def error_code(name: str) -> common.ErrorCode:
    if not name:
        return common.ERROR_CODE_UNSPECIFIED
    # The stubs type Value() as a plain int; it is a member of ErrorCode.
    return cast(common.ErrorCode, common.ErrorCode.Value(_ERROR_PREFIX + name))


def has_ended(row: ExecutionRow | None) -> bool:
    """True when the execution has its verdict, or is gone (discarded after
    the spawner refused it)."""
    return row is None or row.status in TERMINAL
