"""Freezing a sandbox's cgroup parent, on a directory tree standing in for
the cgroup filesystem."""

from __future__ import annotations

import os
import pathlib

import pytest

from services.spawner.cgroups import CgroupLayout, CgroupParent


@pytest.mark.parametrize("unified", [True, False], ids=["v2", "v1"])
def test_a_parent_the_engine_never_made_has_nothing_to_freeze_or_thaw(tmp_path, unified):
    # A sandbox cancelled between its container's create and start: the
    # engine makes the parent only when it starts the container.
    parent = CgroupParent(
        CgroupLayout(root=tmp_path, unified=unified, systemd_driver=False),
        docker_value="/sandbox-mesh/s/x",
        relative=pathlib.PurePosixPath("sandbox-mesh/s/x"),
    )
    parent.freeze()
    parent.thaw()
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing made


def _parent(tmp_path, unified: bool) -> CgroupParent:
    return CgroupParent(
        CgroupLayout(root=tmp_path, unified=unified, systemd_driver=False),
        docker_value="/sandbox-mesh/s/x",
        relative=pathlib.PurePosixPath("sandbox-mesh/s/x"),
    )


def test_v2_ends_a_parent_through_cgroup_kill(tmp_path):
    parent = _parent(tmp_path, unified=True)
    directory = tmp_path / "sandbox-mesh/s/x"
    directory.mkdir(parents=True)
    assert not parent.end_frozen()  # no cgroup.kill (before Linux 5.14): the engine kills
    (directory / "cgroup.kill").write_text("")
    assert parent.end_frozen()
    assert (directory / "cgroup.kill").read_text() == "1"


def test_v1_signals_only_a_frozen_parents_own_processes(tmp_path):
    parent = _parent(tmp_path, unified=False)
    directory = tmp_path / "freezer/sandbox-mesh/s/x"
    (directory / "container").mkdir(parents=True)
    # This test's own process is listed, but is not in that cgroup: never signalled.
    (directory / "container/cgroup.procs").write_text(f"{os.getpid()}\n")
    (directory / "cgroup.procs").write_text("")
    (directory / "freezer.state").write_text("THAWED\n")
    assert not parent.end_frozen()  # not frozen: its processes may exit and their pids be reused
    (directory / "freezer.state").write_text("FROZEN\n")
    assert not parent.end_frozen()  # still alive, so nothing was signalled


def test_v1_a_frozen_parent_with_no_process_it_sees_is_left_to_the_engine(tmp_path):
    parent = _parent(tmp_path, unified=False)
    directory = tmp_path / "freezer/sandbox-mesh/s/x"
    directory.mkdir(parents=True)
    (directory / "cgroup.procs").write_text("")  # in another PID namespace
    (directory / "freezer.state").write_text("FROZEN\n")
    assert not parent.end_frozen()
