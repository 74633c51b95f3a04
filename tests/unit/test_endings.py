"""The spawner's memory of how its latest executions ended: bounded in
count and age."""

import time

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as pb
from services.spawner.endings import Endings


def result(cpu: float) -> pb.ExecuteResult:
    return pb.ExecuteResult(status=common.EXECUTION_STATUS_COMPLETED, usage=common.Usage(cpu_seconds=cpu))


def test_endings_keep_usage_and_the_newest_within_the_count():
    endings = Endings(max_endings=2)
    for i in range(3):
        endings.add(f"e{i}", "t", result(float(i)))
    recent = endings.recent()
    assert [(e.execution_id, e.usage.cpu_seconds, e.status) for e in recent] == [
        ("e1", 1.0, common.EXECUTION_STATUS_COMPLETED),
        ("e2", 2.0, common.EXECUTION_STATUS_COMPLETED),
    ]


def test_endings_older_than_the_bound_are_forgotten():
    endings = Endings(max_age_seconds=0.05)
    endings.add("old", "t", result(1.0))
    time.sleep(0.1)
    endings.add("new", "t", result(2.0))
    assert [e.execution_id for e in endings.recent()] == ["new"]
