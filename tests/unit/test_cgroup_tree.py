"""A v1 cgroup parent's walk (its usage and its removal), on a directory
tree standing in for the cgroup filesystem: controllers reached through a
symbolic link are not walked twice."""

from __future__ import annotations

import pathlib

from services.spawner.cgroups import CgroupLayout, CgroupParent

RELATIVE = pathlib.PurePosixPath("sandbox-mesh/s/x")


def _v1_root(tmp_path: pathlib.Path) -> pathlib.Path:
    for controller in ("memory", "cpu,cpuacct", "freezer"):
        (tmp_path / controller / RELATIVE / "container").mkdir(parents=True)
    (tmp_path / "cpu").symlink_to("cpu,cpuacct")
    (tmp_path / "release_agent").write_text("")
    return tmp_path


def _parent(root: pathlib.Path) -> CgroupParent:
    layout = CgroupLayout(root=root, unified=False, systemd_driver=False)
    return CgroupParent(layout, docker_value=f"/{RELATIVE}", relative=RELATIVE)


def test_v1_oom_kills_add_up_the_parent_and_its_children(tmp_path):
    root = _v1_root(tmp_path)
    memory = root / "memory" / RELATIVE
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    (memory / "container" / "memory.oom_control").write_text("oom_kill_disable 0\noom_kill 2\n")
    (memory / "elsewhere").symlink_to(memory / "container")  # a link is not a child cgroup
    assert _parent(root).read().oom_kills == 3


def test_v1_removal_takes_the_parent_and_its_children_in_every_controller(tmp_path):
    root = _v1_root(tmp_path)
    parent = _parent(root)
    assert sorted(p.name for p in parent.directories()) == ["x", "x", "x"]  # not "cpu" as well
    parent.remove()
    for controller in ("memory", "cpu,cpuacct", "freezer"):
        assert list((root / controller / RELATIVE.parent).iterdir()) == []
    assert (root / "cpu").is_symlink()
    parent.remove()  # gone already: fine
