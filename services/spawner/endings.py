"""How the executions that ended here lately ended, for control's
reconciliation after a restart (ListExecutions, spawner.proto): a relay
that died with its control replica never saw the result, and the replica
that settles the execution records the usage measured here rather than
charge the whole pre-debit. Memory only, bounded in count and age."""

from __future__ import annotations

import collections
import threading
import time

from sandbox.spawner.v1 import spawner_pb2 as pb

# A restarted control asks within seconds; these bounds are generous.
MAX_ENDINGS = 4096
MAX_AGE_SECONDS = 3600.0


class Endings:
    def __init__(self, max_endings: int = MAX_ENDINGS, max_age_seconds: float = MAX_AGE_SECONDS):
        self.max_endings = max_endings
        self.max_age_seconds = max_age_seconds
        self._lock = threading.Lock()
        # execution id -> (monotonic time it ended, its ending); oldest first.
        self._by_id: collections.OrderedDict[str, tuple[float, pb.ExecutionEnded]] = collections.OrderedDict()

    def add(self, execution_id: str, tenant: str, result: pb.ExecuteResult) -> None:
        ending = pb.ExecutionEnded(
            execution_id=execution_id,
            tenant=tenant,
            status=result.status,
            error_code=result.error_code,
            usage=result.usage,
        )
        with self._lock:
            self._by_id.pop(execution_id, None)
            self._by_id[execution_id] = (time.monotonic(), ending)
            while len(self._by_id) > self.max_endings:
                self._by_id.popitem(last=False)

    def recent(self) -> list[pb.ExecutionEnded]:
        """The endings younger than the age bound, oldest first, each with its age."""
        now = time.monotonic()
        with self._lock:
            while self._by_id:
                oldest = next(iter(self._by_id.values()))
                if now - oldest[0] <= self.max_age_seconds:
                    break
                self._by_id.popitem(last=False)
            entries = list(self._by_id.values())
        endings = []
        for ended_at, ending in entries:
            copy = pb.ExecutionEnded()
            copy.CopyFrom(ending)
            copy.ended_ms_ago = int((now - ended_at) * 1000)
            endings.append(copy)
        return endings
