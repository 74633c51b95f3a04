"""The services' periodic background work (services/common/periodic.py):
the first run right away, a run that raises is logged and the next one still
comes, and stop() ends the thread."""

from __future__ import annotations

import logging
import threading

from services.common.periodic import Periodic


def test_a_failed_run_is_logged_and_the_next_one_comes(caplog):
    runs: list[int] = []
    third = threading.Event()

    def work() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("the first run broke")
        if len(runs) == 3:
            third.set()

    periodic = Periodic("test-periodic", 0.01, work, logging.getLogger("test.periodic"))
    with caplog.at_level(logging.ERROR, logger="test.periodic"):
        periodic.start()
        assert third.wait(5)
        periodic.stop()
    assert periodic._thread is not None and not periodic._thread.is_alive()
    assert [r.getMessage() for r in caplog.records] == ["test-periodic failed"]


def test_the_first_run_comes_at_once_and_stop_ends_the_wait():
    ran = threading.Event()
    periodic = Periodic("test-periodic", 3600, ran.set, logging.getLogger("test.periodic"))
    periodic.start()
    assert ran.wait(5)  # not an hour later
    periodic.stop()  # wakes the hour-long wait
    assert periodic._thread is not None and not periodic._thread.is_alive()
