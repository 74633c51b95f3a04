"""Workspace removal survives what hostile code leaves: depth, links, permissions."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
import traceback

import pytest

from services.spawner.removal import MountPointInside, remove_tree
from tests.hostile_trees import make_deep_tree, mount_tmpfs, unmount

DEEP = 5_000  # far past the recursion limit, and "d/" * 5000 is past PATH_MAX
PATH_MAX = 4096
NOBODY = 65534


def test_a_tree_deeper_than_the_recursion_limit_and_path_max_is_removed(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    make_deep_tree(str(workspace), DEEP)
    assert len("d/" * DEEP) > PATH_MAX
    with pytest.raises(RecursionError):
        shutil.rmtree(workspace)  # what the spawner used to do
    remove_tree(str(workspace))
    assert not workspace.exists()


def test_links_are_removed_never_followed(tmp_path):
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "file").write_text("host data")
    workspace = tmp_path / "ws"
    (workspace / "a" / "b").mkdir(parents=True)
    (workspace / "a" / "b" / "f").write_text("x")
    os.symlink(outside, workspace / "a" / "dirlink")
    os.symlink(outside / "keep" / "file", workspace / "a" / "b" / "filelink")
    os.mkfifo(workspace / "a" / "pipe")
    remove_tree(str(workspace))
    assert not workspace.exists()
    assert (outside / "keep" / "file").read_text() == "host data"


def test_a_symlink_at_the_top_is_unlinked_not_followed(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "file").write_text("kept")
    link = tmp_path / "link"
    os.symlink(target, link)
    remove_tree(str(link))
    assert not os.path.lexists(link)
    assert (target / "file").read_text() == "kept"


def test_missing_paths_and_plain_files(tmp_path):
    remove_tree(str(tmp_path / "never-was"))
    plain = tmp_path / "plain"
    plain.write_text("x")
    remove_tree(str(plain))
    assert not plain.exists()


def test_wide_directories(tmp_path):
    workspace = tmp_path / "ws"
    for i in range(200):
        (workspace / f"d{i}" / "sub").mkdir(parents=True)
        (workspace / f"d{i}" / "sub" / "f").write_text("x")
    remove_tree(str(workspace))
    assert not workspace.exists()


def _lock_and_remove(workspace: str) -> None:
    os.makedirs(workspace + "/a/b/c/d")
    pathlib.Path(workspace, "a/b/c/d/f").write_text("x")
    pathlib.Path(workspace, "a/b/g").write_text("x")
    os.chmod(workspace + "/a/b/c/d", 0o000)  # nothing
    os.chmod(workspace + "/a/b/c", 0o100)  # search only
    os.chmod(workspace + "/a/b", 0o500)  # no write
    os.chmod(workspace + "/a", 0o600)  # no search
    remove_tree(workspace)


def _as_nobody(action, *args) -> int:
    """Runs action in a child process without root's permission override;
    returns its exit status (0: no exception)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            action(*args)
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)


def test_directories_the_sandbox_locked_are_removed_by_their_owner():
    """As the tree's owner without root's override (the sandbox's user owns
    what it made): the owner's rights are given back, then it goes."""
    base = tempfile.mkdtemp()
    try:
        os.chmod(base, 0o777)
        workspace = os.path.join(base, "ws")
        if os.geteuid() == 0:
            assert _as_nobody(_lock_and_remove, workspace) == 0
        else:
            _lock_and_remove(workspace)
        assert not os.path.exists(workspace)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_directories_locked_with_chmod_000_as_root_too(tmp_path):
    workspace = tmp_path / "ws"
    (workspace / "locked" / "inner").mkdir(parents=True)
    (workspace / "locked" / "inner" / "f").write_text("x")
    os.chmod(workspace / "locked" / "inner", 0)
    os.chmod(workspace / "locked", 0)
    remove_tree(str(workspace))
    assert not workspace.exists()


def test_another_filesystem_mounted_inside_is_left_alone_and_reported(tmp_path):
    workspace = tmp_path / "ws"
    mount_point = workspace / "a" / "mnt"
    mount_point.mkdir(parents=True)
    (workspace / "b" / "c").mkdir(parents=True)
    (workspace / "b" / "c" / "f").write_text("x")
    # The suite runs as root (it starts the Docker engine), so it can mount.
    assert mount_tmpfs(mount_point), "cannot mount a tmpfs"
    try:
        (mount_point / "kept").write_text("not ours")
        with pytest.raises(MountPointInside):
            remove_tree(str(workspace))
        assert (mount_point / "kept").read_text() == "not ours"
        assert not (workspace / "b").exists()  # the rest went
    finally:
        unmount(mount_point)
    remove_tree(str(workspace))
    assert not workspace.exists()
