"""The warm pool's bookkeeping (pure logic; the real pool runs in
tests/integration/test_warm_pool.py) and its setting."""

from __future__ import annotations

import threading
import time

import pytest

from services.spawner.config import parse_warm_pool
from services.spawner.provision import PoolKey
from services.spawner.warmpool import WarmPool

PYTHON = PoolKey("python", False)


class Box:
    def __init__(self, token: str):
        self.token = token


class Maker:
    def __init__(self, fail_first: int = 0):
        self.count = 0
        self.fail_first = fail_first
        self.destroyed: list[str] = []
        self.lock = threading.Lock()

    def plan(self, key):
        with self.lock:
            self.count += 1
            return Box(f"t{self.count}")

    def build(self, box):
        if self.fail_first > 0:
            self.fail_first -= 1
            raise RuntimeError("engine down")

    def destroy(self, box):
        self.destroyed.append(box.token)


def make_pool(maker: Maker, alive=lambda box: True, target: int = 2) -> WarmPool:
    return WarmPool({PYTHON: target}, maker.plan, maker.build, maker.destroy, alive)


def wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_fills_hands_each_sandbox_out_once_and_refills():
    maker = Maker()
    pool = make_pool(maker)
    pool.start()
    try:
        wait_until(lambda: pool.ready(PYTHON) == 2)
        first, second = pool.take(PYTHON), pool.take(PYTHON)
        assert first is not None and second is not None and first.token != second.token
        wait_until(lambda: pool.ready(PYTHON) == 2)
        assert first.token not in pool.tokens() and second.token not in pool.tokens()
        assert pool.take(PoolKey("node", False)) is None  # no pool for it
    finally:
        pool.close()
    assert sorted(maker.destroyed) == sorted(t for t in {"t3", "t4"})
    assert pool.take(PYTHON) is None  # closed


def test_a_dead_warm_sandbox_is_removed_not_used():
    maker = Maker()
    pool = make_pool(maker, alive=lambda box: box.token != "t1", target=2)
    pool.start()
    try:
        wait_until(lambda: pool.ready(PYTHON) == 2)
        taken = pool.take(PYTHON)
        assert taken is not None and taken.token == "t2"
        assert maker.destroyed == ["t1"]
    finally:
        pool.close()


def test_a_failing_refill_backs_off_and_removes_what_it_made():
    maker = Maker(fail_first=2)
    pool = make_pool(maker, target=1)
    pool.start()
    try:
        wait_until(lambda: pool.ready(PYTHON) == 1, seconds=10)
        assert maker.destroyed[:2] == ["t1", "t2"]  # each failed one taken apart
    finally:
        pool.close()


@pytest.mark.parametrize(
    "entries, expected",
    [
        (("python=2", "node+network=1"), {("python", False, "runc", False): 2, ("node", True, "runc", False): 1}),
        (("python-datascience=0",), {("python-datascience", False, "runc", False): 0}),
        (
            ("python+gvisor=1", "python+network+gvisor=2", "python+runc=3"),
            {
                ("python", False, "gvisor", False): 1,
                ("python", True, "gvisor", False): 2,
                ("python", False, "runc", False): 3,
            },
        ),
        (
            ("python=1", "python+session=2", "python-datascience+session=1"),
            {
                ("python", False, "runc", False): 1,
                ("python", False, "runc", True): 2,
                ("python-datascience", False, "runc", True): 1,
            },
        ),
        ((), {}),
    ],
)
def test_the_setting_is_read(entries, expected):
    assert parse_warm_pool(entries) == expected


def test_an_entry_naming_no_sandbox_runtime_is_the_defaults():
    assert parse_warm_pool(("node+network=1",), "gvisor") == {("node", True, "gvisor", False): 1}
    # A session's sandbox is on runc whatever the default: sessions run there only.
    assert parse_warm_pool(("python+session=1",), "gvisor") == {("python", False, "runc", True): 1}


@pytest.mark.parametrize(
    "entry",
    [
        "ruby=1",
        "python",
        "python=-1",
        "python=two",
        "python=65",
        "python+kata=1",
        "python+gvisor+runc=1",
        "python+network+network=1",
        "node+session=1",
        "python+session+network=1",
        "python+session+gvisor=1",
        "python+session+session=1",
    ],
)
def test_a_bad_setting_is_refused(entry):
    with pytest.raises(ValueError, match="warm_pool"):
        parse_warm_pool((entry,))


def test_a_runtime_given_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        parse_warm_pool(("python=1", "python=2"))
    with pytest.raises(ValueError, match="twice"):
        parse_warm_pool(("python=1", "python+runc=2"))
