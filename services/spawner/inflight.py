"""The executions in flight on this spawner: admission, capacity, lookup."""

from __future__ import annotations

import threading

from services.spawner.errors import CapacityExhausted, DuplicateExecution, ShuttingDown
from services.spawner.execution import Execution


class InFlight:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._executions: dict[str, Execution] = {}
        self._closed = False
        self._held = 0  # slots held by open sessions (docs/sessions.md)

    def hold(self) -> None:
        """Holds one slot for a session, or refuses at once."""
        with self._lock:
            if self._closed:
                raise ShuttingDown()
            if len(self._executions) + self._held >= self.capacity:
                raise CapacityExhausted(self.capacity)
            self._held += 1

    def unhold(self) -> None:
        with self._lock:
            self._held = max(0, self._held - 1)

    def admit(self, execution: Execution) -> None:
        """Admits at once or refuses at once: there is no queue to grow."""
        execution_id = execution.spec.execution_id
        with self._lock:
            if self._closed:
                raise ShuttingDown()
            if execution_id in self._executions:
                raise DuplicateExecution(execution_id)
            if len(self._executions) + self._held >= self.capacity:
                raise CapacityExhausted(self.capacity)
            self._executions[execution_id] = execution

    def release(self, execution: Execution) -> None:
        with self._lock:
            if self._executions.get(execution.spec.execution_id) is execution:
                del self._executions[execution.spec.execution_id]

    def get(self, execution_id: str) -> Execution | None:
        with self._lock:
            return self._executions.get(execution_id)

    def all(self) -> list[Execution]:
        with self._lock:
            return list(self._executions.values())

    def close(self) -> None:
        """Stops admitting; executions in flight go on."""
        with self._lock:
            self._closed = True

    @property
    def free_slots(self) -> int:
        with self._lock:
            return max(0, self.capacity - len(self._executions) - self._held)
