"""Freezing a sandbox's cgroup parent, on a directory tree standing in for
the cgroup filesystem."""

from __future__ import annotations

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
