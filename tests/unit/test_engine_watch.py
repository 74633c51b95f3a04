"""services/spawner/engine.py: when admission asks the engine."""

from __future__ import annotations

import requests

from services.spawner import engine
from services.spawner.engine import EngineUnavailable, EngineWatch


class FakeEngine:
    base_url = "http+docker://localhost"

    def __init__(self) -> None:
        self.pings = 0
        self.answers = True

    def get(self, url, timeout):
        self.pings += 1
        if not self.answers:
            raise requests.exceptions.ConnectionError("gone")
        return self

    def raise_for_status(self) -> None:
        pass


def test_a_recent_answer_stands_and_a_doubt_makes_admission_ask_again(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(engine.time, "monotonic", lambda: now[0])
    api = FakeEngine()
    watch = EngineWatch(api, on_back=lambda since: None)  # type: ignore[arg-type]
    watch.require()
    watch.require()
    assert api.pings == 1  # the second admission trusted the fresh answer
    now[0] += engine.FRESH_SECONDS
    watch.require()
    assert api.pings == 2
    api.answers = False
    watch.doubt()  # an execution failed as a gone engine would make it
    try:
        watch.require()
    except EngineUnavailable:
        pass
    else:
        raise AssertionError("admitted while the engine does not answer")
    assert api.pings == 3 and not watch.up
