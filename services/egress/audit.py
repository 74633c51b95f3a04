"""Decision records: one JSON log line each, and a bounded in-memory ring per
execution for the gRPC service."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import logging
import sys
import threading
from typing import IO

ALLOW = "allow"
DENY = "deny"

# Decisions kept in memory per execution, and executions kept (oldest dropped).
DEFAULT_RING_SIZE = 256
DEFAULT_RING_EXECUTIONS = 4096

_log = logging.getLogger("sandbox.egress.decisions")


@dataclasses.dataclass
class Record:
    time: float
    kind: str  # "connect" (CONNECT tunnel), "http" (plain-HTTP request), "request" (inside an intercepted tunnel)
    host: str
    port: int = 0
    execution_id: str = ""  # set only once credentials are verified
    tenant: str = ""
    claimed_user: str = ""  # the proxy user name sent, verified or not
    client: str = ""
    sni: str = ""
    resolved_address: str = ""
    decision: str = DENY
    reason: str = ""
    bytes_up: int = 0
    bytes_down: int = 0
    url: str = ""
    method: str = ""  # of a request ("request" and "http" kinds)
    closed: bool = False
    emitted: bool = False

    def as_json(self) -> dict:
        out = {
            "time": datetime.datetime.fromtimestamp(self.time, datetime.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "execution_id": self.execution_id,
            "tenant": self.tenant,
            "host": self.host,
            "port": self.port,
            "sni": self.sni,
            "resolved_address": self.resolved_address,
            "decision": self.decision,
            "reason": self.reason,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "kind": self.kind,
            "client": self.client,
        }
        if self.claimed_user and self.claimed_user != self.execution_id:
            out["claimed_user"] = self.claimed_user
        if self.url:
            out["url"] = self.url
        if self.method:
            out["method"] = self.method
        return out


class DecisionLog:
    """Writes each decision once as a JSON line and keeps the verified ones in a
    per-execution ring. Records without a verified execution id (missing or bad
    credentials) are logged but never stored under the id they claimed: a
    sandbox must not be able to plant decisions in another execution's record."""

    def __init__(
        self,
        per_execution: int = DEFAULT_RING_SIZE,
        max_executions: int = DEFAULT_RING_EXECUTIONS,
        stream: IO[str] | None = None,
    ):
        self.per_execution = per_execution
        self.max_executions = max_executions
        self.stream = stream if stream is not None else sys.stdout
        self._rings: collections.OrderedDict[str, tuple[collections.deque, list[int]]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, record: Record) -> None:
        """Keeps a record in its execution's ring (once its identity is known)."""
        if not record.execution_id:
            return
        with self._lock:
            ring = self._rings.get(record.execution_id)
            if ring is None:
                ring = (collections.deque(), [0])
                self._rings[record.execution_id] = ring
                while len(self._rings) > self.max_executions:
                    self._rings.popitem(last=False)
            else:
                self._rings.move_to_end(record.execution_id)
            records, dropped = ring
            records.append(record)
            while len(records) > self.per_execution:
                records.popleft()
                dropped[0] += 1

    def emit(self, record: Record) -> None:
        """Writes the record's JSON line, once."""
        if record.emitted:
            return
        record.emitted = True
        line = json.dumps(record.as_json(), sort_keys=True, separators=(",", ":"))
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # closed stream: keep serving
            _log.warning("cannot write decision log line: %s", line)

    def get(self, execution_id: str) -> tuple[list[Record], int]:
        with self._lock:
            ring = self._rings.get(execution_id)
            if ring is None:
                return [], 0
            return list(ring[0]), ring[1][0]
