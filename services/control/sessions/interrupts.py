"""The calls of sessions this control process relays, and those of them a
cancel or a restart interrupted (docs/sessions.md): the relay records an
interrupted call CANCELLED whatever the sandbox reported (the kernel's
KeyboardInterrupt, a killed node program)."""

from __future__ import annotations

import threading


class RunningCalls:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, str] = {}  # session key -> key of the call (execution) it runs
        self._interrupted: dict[str, str] = {}  # key of a call -> why it was interrupted

    def started(self, session_key: str, call_key: str) -> None:
        with self._lock:
            self._calls[session_key] = call_key

    def running(self, session_key: str) -> str:
        """The key of the call the session runs through this process ("": none)."""
        with self._lock:
            return self._calls.get(session_key, "")

    def interrupt(self, call_key: str, reason: str) -> None:
        """Notes that the call is being interrupted (the first reason stays)."""
        with self._lock:
            if call_key in self._calls.values():
                self._interrupted.setdefault(call_key, reason)

    def interrupted(self, call_key: str) -> str:
        """Why the call was interrupted ("": it was not)."""
        with self._lock:
            return self._interrupted.get(call_key, "")

    def ended(self, session_key: str, call_key: str) -> None:
        with self._lock:
            if self._calls.get(session_key) == call_key:
                del self._calls[session_key]
            self._interrupted.pop(call_key, None)
