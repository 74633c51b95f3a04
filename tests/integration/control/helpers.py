"""Requests to control and collected streams."""

from __future__ import annotations

import dataclasses

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb


def request(files: dict[str, str], entry: str | None = None, *, timeout_ms: int = 0, **fields) -> pb.ExecuteRequest:
    return pb.ExecuteRequest(
        language=common.LANGUAGE_PYTHON,
        files=[common.File(path=p, content=c.encode()) for p, c in files.items()],
        entry=entry if entry is not None else next(iter(files)),
        limits=common.Limits(timeout_ms=timeout_ms),
        **fields,
    )


@dataclasses.dataclass
class Stream:
    events: list

    def kinds(self) -> list[str]:
        return [e.WhichOneof("event") for e in self.events]

    @property
    def stdout(self) -> bytes:
        return b"".join(e.stdout.data for e in self.events if e.WhichOneof("event") == "stdout")

    @property
    def finished(self) -> pb.Execution:
        assert self.events[-1].WhichOneof("event") == "finished", self.kinds()
        return self.events[-1].finished

    def statuses(self) -> list[int]:
        return [e.status.status for e in self.events if e.WhichOneof("event") == "status"]


def run(stub, req, timeout: float = 60) -> Stream:
    return Stream(list(stub.Execute(req, timeout=timeout)))
