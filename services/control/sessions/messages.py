"""A session's record as the API shows it."""

from __future__ import annotations

import json

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from services.common.contract.languages import as_language
from services.control.sessions.models import CLOSED, EXPIRED, FAILED, OPEN, SessionRow
from services.control.sessions.store import expires_at_ms

_STATUSES = {
    OPEN: pb.SESSION_STATUS_OPEN,
    CLOSED: pb.SESSION_STATUS_CLOSED,
    EXPIRED: pb.SESSION_STATUS_EXPIRED,
    FAILED: pb.SESSION_STATUS_FAILED,
}


def session(row: SessionRow, busy: bool = False) -> pb.Session:
    return pb.Session(
        session_id=row.session_id,
        language=as_language(row.language),
        variant=row.variant,
        status=_STATUSES.get(row.status, pb.SESSION_STATUS_UNSPECIFIED),
        end_reason=row.end_reason,
        idle_timeout_seconds=row.idle_seconds,
        max_lifetime_seconds=row.lifetime_seconds,
        created_at_ms=row.created_at_ms,
        last_used_at_ms=row.last_used_at_ms,
        ended_at_ms=row.ended_at_ms,
        expires_at_ms=expires_at_ms(row) if row.status == OPEN else 0,
        calls=row.calls,
        restarts=row.restarts,
        limits=common.Limits(timeout_ms=row.timeout_ms, memory_bytes=row.memory_bytes, cpus=row.cpus),
        busy=busy and row.status == OPEN,
        packages=[common.Package(name=name, version=version) for name, version in packages_of(row)],
    )


def packages_json(packages) -> str:
    """The packages (common.v1.Package) as the record keeps them."""
    return json.dumps([[p.name, p.version] for p in packages])


def packages_of(row: SessionRow) -> list[tuple[str, str]]:
    return [(str(name), str(version)) for name, version in json.loads(row.packages_json or "[]")]
