"""Small helpers to build requests and collect streamed events."""

from __future__ import annotations

import dataclasses
import secrets
import socket
import time

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as pb

LANGUAGES = {"python": common.LANGUAGE_PYTHON, "node": common.LANGUAGE_NODE}


def new_id(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def request(
    files: dict[str, str | bytes],
    entry: str | None = None,
    *,
    language: str = "python",
    execution_id: str | None = None,
    tenant: str = "tenant-a",
    timeout_ms: int = 0,
    memory_bytes: int = 0,
    **fields,
) -> pb.ExecuteRequest:
    return pb.ExecuteRequest(
        execution_id=execution_id or new_id(),
        tenant=tenant,
        language=LANGUAGES[language],
        files=[common.File(path=p, content=c.encode() if isinstance(c, str) else c) for p, c in files.items()],
        entry=entry if entry is not None else next(iter(files)),
        limits=common.Limits(timeout_ms=timeout_ms, memory_bytes=memory_bytes),
        **fields,
    )


@dataclasses.dataclass
class Outcome:
    events: list
    arrivals: list  # (monotonic seconds, event) for every event
    result: pb.ExecuteResult | None

    @property
    def stdout(self) -> bytes:
        return b"".join(e.stdout.data for e in self.events if e.WhichOneof("event") == "stdout")

    @property
    def stderr(self) -> bytes:
        return b"".join(e.stderr.data for e in self.events if e.WhichOneof("event") == "stderr")

    def phases(self) -> list[int]:
        return [e.phase.phase for e in self.events if e.WhichOneof("event") == "phase"]

    def first(self, kind: str, **match):
        for at, event in self.arrivals:
            if event.WhichOneof("event") == kind:
                inner = getattr(event, kind)
                if all(getattr(inner, k) == v for k, v in match.items()):
                    return at, inner
        raise AssertionError(f"no {kind} event matching {match}")


def collect(call) -> Outcome:
    events, arrivals, result = [], [], None
    for event in call:
        arrivals.append((time.monotonic(), event))
        events.append(event)
        if event.WhichOneof("event") == "result":
            result = event.result
    return Outcome(events, arrivals, result)


def execute(stub, req, timeout: float = 120) -> Outcome:
    return collect(stub.Execute(req, timeout=timeout))


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
