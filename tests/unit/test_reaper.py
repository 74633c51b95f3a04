"""The reaper removes every leftover it can and goes on past the ones it cannot."""

from __future__ import annotations

import os
import time

import docker
import pytest

from services.spawner import loopmount, sandbox
from services.spawner.cgroups import ROOT_SEGMENT, CgroupLayout
from services.spawner.reaper import reap
from services.spawner.workspace import Workspace, WorkspaceLimits
from tests.hostile_trees import make_deep_tree
from tests.loops import loops_backed_under, mounts_under

SPAWNER = "unit"
DEEP = 5_000
OWNED_TOKEN = "0000000000000001"
LIMITS = WorkspaceLimits(bytes=16 * 1024 * 1024, inodes=1024)


class FakeEngine:
    """The slice of docker.APIClient the reaper uses; one container's removal fails."""

    def __init__(self, containers: list[dict], failing: str, gone: str):
        self._containers = containers
        self._failing = failing
        self._gone = gone
        self.removed: list[str] = []

    def containers(self, all: bool, filters: dict) -> list[dict]:
        return self._containers

    def remove_container(self, container_id: str, force: bool, v: bool) -> None:
        if container_id == self._failing:
            raise RuntimeError("the engine broke")
        if container_id == self._gone:
            raise docker.errors.NotFound("no such container")
        self.removed.append(container_id)


def _container(container_id: str, execution_id: str, token: str) -> dict:
    return {
        "Id": container_id,
        "Created": 0,
        "Labels": {
            sandbox.LABEL_EXECUTION: execution_id,
            sandbox.LABEL_WORKSPACE: f"{execution_id}.{token}.ws",
        },
    }


@pytest.fixture
def cgroups(tmp_path) -> CgroupLayout:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory\n")
    return CgroupLayout.detect(str(root), "cgroupfs")


def test_reap_goes_on_past_hostile_and_failing_leftovers(tmp_path, cgroups, monkeypatch):
    root = tmp_path / "workspaces"
    deep = root / "deep.1111111111111111.ws"
    locked = root / "locked.2222222222222222.ws"
    failing = root / "failing.3333333333333333.ws"
    owned = root / f"mine.{OWNED_TOKEN}.ws"
    for path in (deep, locked, failing, owned):
        path.mkdir(parents=True)
    make_deep_tree(str(deep), DEEP)
    (locked / "box" / "inner").mkdir(parents=True)
    os.chmod(locked / "box" / "inner", 0)
    os.chmod(locked / "box", 0)

    real_remove = Workspace.remove

    def remove(workspace: Workspace) -> None:
        if workspace.path == failing:
            raise RecursionError("as shutil.rmtree did")
        real_remove(workspace)

    monkeypatch.setattr(Workspace, "remove", remove)

    base = cgroups.root / ROOT_SEGMENT / SPAWNER
    (base / "4444444444444444" / "child").mkdir(parents=True)
    stuck = base / "5555555555555555"
    stuck.mkdir()
    (stuck / "not-a-cgroup-file").write_text("x")  # rmdir fails: not empty
    (base / OWNED_TOKEN).mkdir()

    engine = FakeEngine(
        [
            _container("c-failing", "ex-failing", "6666666666666666"),
            _container("c-gone", "ex-gone", "7777777777777777"),
            _container("c-ok", "ex-ok", "8888888888888888"),
            _container("c-mine", "ex-mine", OWNED_TOKEN),
        ],
        failing="c-failing",
        gone="c-gone",
    )
    failures: list[tuple[str, str, str]] = []
    reap(
        engine,
        SPAWNER,
        str(root),
        cgroups,
        {OWNED_TOKEN},
        on_failure=lambda what, exc, execution_id: failures.append((what, type(exc).__name__, execution_id)),
    )

    assert sorted(failures) == [
        ("cgroup", "OSError", ""),
        ("container", "RuntimeError", "ex-failing"),
        ("workspace", "RecursionError", "failing"),
    ]
    assert engine.removed == ["c-ok"]
    assert sorted(p.name for p in root.iterdir()) == [failing.name, owned.name]
    assert sorted(p.name for p in base.iterdir()) == [OWNED_TOKEN, stuck.name]


def test_reap_survives_an_engine_that_cannot_list(tmp_path, cgroups):
    class DownEngine:
        def containers(self, all: bool, filters: dict) -> list[dict]:
            raise docker.errors.DockerException("engine down")

    root = tmp_path / "workspaces"
    leftover = root / "old.9999999999999999.ws"
    leftover.mkdir(parents=True)
    failures: list[str] = []
    reap(DownEngine(), SPAWNER, str(root), cgroups, set(), on_failure=lambda what, exc, _: failures.append(what))
    assert failures == ["container"]
    assert not leftover.exists()


def test_young_leftovers_wait_for_the_sweep(tmp_path, cgroups):
    root = tmp_path / "workspaces"
    young = root / "young.aaaaaaaaaaaaaaaa.ws"
    young.mkdir(parents=True)
    failures: list[tuple] = []
    engine = FakeEngine([], failing="", gone="")
    reap(engine, SPAWNER, str(root), cgroups, set(), on_failure=lambda *f: failures.append(f), min_age_seconds=3600)
    assert young.exists() and failures == []


def test_at_start_a_leftover_touched_after_the_reap_began_is_still_reaped(tmp_path, cgroups):
    """A sandbox its crashed spawner started may still write into its
    workspace while the successor's reap runs: the start-up reap goes by
    ownership alone, not by age."""
    root = tmp_path / "workspaces"
    touched = root / "warm.ffffffffffffffff.ws"
    touched.mkdir(parents=True)
    future = time.time() + 3600
    os.utime(touched, (future, future))
    failures: list[tuple] = []
    reap(FakeEngine([], failing="", gone=""), SPAWNER, str(root), cgroups, set(), lambda *f: failures.append(f))
    assert failures == [] and not touched.exists()


def test_reap_unmounts_and_deletes_what_a_crashed_spawner_left(tmp_path, cgroups):
    """Mounted workspaces (one with a process still inside), a lone image and
    an empty mount point: all go, and no loop device or mount is left."""
    root = tmp_path / "workspaces"
    mounted = Workspace.at(str(root), "mounted", "bbbbbbbbbbbbbbbb")
    busy = Workspace.at(str(root), "busy", "cccccccccccccccc")
    for workspace in (mounted, busy):
        workspace.create(LIMITS)
    (mounted.output / "result.txt").write_text("x")
    (root / "lone.dddddddddddddddd.img").write_bytes(b"\0" * 1024)
    (root / "empty.eeeeeeeeeeeeeeee.ws").mkdir()
    mine = Workspace.at(str(root), "mine", OWNED_TOKEN)
    mine.create(LIMITS)
    inside = os.open(busy.code, os.O_RDONLY | os.O_DIRECTORY)
    try:
        failures: list[tuple] = []
        reap(FakeEngine([], "", ""), SPAWNER, str(root), cgroups, {OWNED_TOKEN}, lambda *f: failures.append(f))
        assert failures == []
        assert sorted(p.name for p in root.iterdir()) == [mine.image.name, mine.path.name]
        assert loopmount.mount_points_under(str(root)) == [mine.path]
    finally:
        os.close(inside)
        mine.remove()
    assert loops_backed_under(str(root)) == [] and mounts_under(str(root)) == []
