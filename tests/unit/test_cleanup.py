"""An execution's clean-up: every step runs, and the usage is always read."""

from __future__ import annotations

import docker

from services.spawner.cgroups import CgroupUsage
from services.spawner.cleanup import clean_up, stop

USAGE = CgroupUsage(cpu_seconds=1.5, peak_memory_bytes=1024, oom_kills=0)


class BrokenContainer:
    def __init__(self):
        self.remove_called = False

    def kill(self) -> None:
        raise docker.errors.APIError("kill failed")

    def oom_killed(self) -> bool:
        return True

    def remove(self) -> None:
        self.remove_called = True
        raise RuntimeError("remove failed")


class Parent:
    def __init__(self, usage: CgroupUsage | Exception):
        self._usage = usage
        self.remove_called = False

    def freeze(self) -> None:
        raise OSError("no freezer here")

    def thaw(self) -> None:
        pass

    def read(self) -> CgroupUsage:
        if isinstance(self._usage, Exception):
            raise self._usage
        return self._usage

    def remove(self) -> None:
        self.remove_called = True
        raise OSError("busy")


class DeepWorkspace:
    def remove(self) -> None:
        raise RecursionError("maximum recursion depth exceeded")


def test_every_step_runs_and_the_usage_is_kept_whatever_failed():
    container, parent, failures = BrokenContainer(), Parent(USAGE), []
    report = clean_up(container, DeepWorkspace(), parent, lambda what, exc: failures.append((what, type(exc))))
    assert report.usage == USAGE
    assert container.remove_called and parent.remove_called
    assert failures == [
        ("container", docker.errors.APIError),
        ("container", RuntimeError),
        ("cgroup", OSError),
        ("workspace", RecursionError),
    ]


def test_an_unreadable_cgroup_is_charged_as_nothing_and_counted():
    failures = []
    report = clean_up(None, None, Parent(PermissionError("denied")), lambda what, exc: failures.append(what))
    assert report.usage == CgroupUsage()
    assert failures == ["cgroup", "cgroup"]


def test_the_usage_is_read_before_anything_is_removed():
    container, parent, failures = BrokenContainer(), Parent(USAGE), []
    report = stop(container, parent, lambda what, exc: failures.append(what))
    assert report.usage == USAGE and report.engine_oom is False  # the kill failed, so no flag was read
    assert not container.remove_called and not parent.remove_called
    assert failures == ["container"]


class FreezableParent(Parent):
    def __init__(self, usage: CgroupUsage):
        super().__init__(usage)
        self.frozen = False

    def freeze(self) -> None:
        self.frozen = True

    def thaw(self) -> None:
        self.frozen = False


def test_a_frozen_sandbox_is_not_killed_through_the_engine_before_its_result():
    container, parent, failures = BrokenContainer(), FreezableParent(USAGE), []
    report = stop(container, parent, lambda what, exc: failures.append(what))
    assert parent.frozen and report.usage == USAGE and report.engine_oom is False
    assert failures == []  # the engine's kill (which would fail here) was never called


class HalfFrozenParent(Parent):
    """A freeze that times out with part of the sandbox frozen."""

    def __init__(self, usage: CgroupUsage):
        super().__init__(usage)
        self.thawed = False

    def freeze(self) -> None:
        raise OSError("the cgroup parent did not freeze in 2.0 s")

    def thaw(self) -> None:
        self.thawed = True


class KillableContainer(BrokenContainer):
    def __init__(self, parent: HalfFrozenParent):
        super().__init__()
        self.parent = parent
        self.thawed_before_kill = False

    def kill(self) -> None:
        self.thawed_before_kill = self.parent.thawed


def test_a_freeze_that_fails_is_undone_before_the_engine_kills():
    # What froze cannot die, and a gVisor sandbox half frozen never ends:
    # the engine's kill would wait for an exit that does not come.
    parent = HalfFrozenParent(USAGE)
    container, failures = KillableContainer(parent), []
    report = stop(container, parent, lambda what, exc: failures.append(what))
    assert container.thawed_before_kill and report.engine_oom is True and failures == []
