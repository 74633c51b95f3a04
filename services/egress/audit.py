"""Decision records: one JSON log line each (refusals rate-limited per
source, services/egress/refusal_limit.py), and a bounded in-memory ring per
execution for the gRPC service, which keeps every decision whatever the log
wrote."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import logging
import sys
import threading
from collections.abc import Callable
from typing import IO

from services.egress.refusal_limit import DEFAULT_BURST, DEFAULT_INTERVAL_SECONDS, RefusalLimiter, Summary

ALLOW = "allow"
DENY = "deny"
SUPPRESSED = "refusals_suppressed"  # the reason of a summary line

# Decisions kept in memory per execution, and executions kept (oldest dropped).
DEFAULT_RING_SIZE = 256
DEFAULT_RING_EXECUTIONS = 4096

_log = logging.getLogger("sandbox.egress.decisions")


def _iso(unix_seconds: float) -> str:
    return datetime.datetime.fromtimestamp(unix_seconds, datetime.UTC).isoformat(timespec="milliseconds")


def _address(client: str) -> str:
    """The address of an "address:port" peer."""
    return client.rpartition(":")[0] or client


def summary_json(summary: Summary) -> dict:
    return {
        "time": _iso(summary.until),
        "since": _iso(summary.since),
        "execution_id": summary.execution_id,
        "tenant": summary.tenant,
        "client": summary.client,
        "decision": DENY,
        "reason": SUPPRESSED,
        "kind": "summary",
        "suppressed": summary.suppressed,
        "message": f"{summary.suppressed} more refusals suppressed",
    }


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
            "time": _iso(self.time),
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
    sandbox must not be able to plant decisions in another execution's record.

    Refusal lines are rate-limited per source (the verified execution id, else
    the client's address): past the burst of an interval they are counted and
    one summary line reports them when the interval is over (``flush``, which
    the addon calls every interval). Allowed decisions are always written:
    they are the record of what left."""

    def __init__(
        self,
        per_execution: int = DEFAULT_RING_SIZE,
        max_executions: int = DEFAULT_RING_EXECUTIONS,
        stream: IO[str] | None = None,
        refusal_burst: int = DEFAULT_BURST,
        refusal_interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        observer: Callable[[Record], None] | None = None,
    ):
        self.per_execution = per_execution
        self.max_executions = max_executions
        self.stream = stream if stream is not None else sys.stdout
        self._rings: collections.OrderedDict[str, tuple[collections.deque, list[int]]] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.refusals = RefusalLimiter(refusal_burst, refusal_interval_seconds, max_executions)
        # Told of every record once, whatever the rate limit writes (metrics.py counts them).
        self.observer = observer

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
        """Writes the record's JSON line, once (a refusal unless its source
        is over its burst)."""
        if record.emitted:
            return
        record.emitted = True
        if self.observer is not None:
            self.observer(record)
        write = True
        if record.decision == DENY:
            source = f"execution:{record.execution_id}" if record.execution_id else f"address:{_address(record.client)}"
            with self._lock:
                write, due = self.refusals.admit(source, record.time, record.execution_id, record.tenant, record.client)
            for summary in due:
                self._write(summary_json(summary))
        if write:
            self._write(record.as_json())

    def flush(self, now: float, everything: bool = False) -> None:
        """Writes the summary of every refusal interval over by ``now`` (or of
        every interval, at shutdown)."""
        with self._lock:
            due = self.refusals.expired(now, everything)
        for summary in due:
            self._write(summary_json(summary))

    @property
    def suppressed_total(self) -> int:
        """Refusal lines counted and not written since the start."""
        return self.refusals.suppressed_total

    def _write(self, fields: dict) -> None:
        line = json.dumps(fields, sort_keys=True, separators=(",", ":"))
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
