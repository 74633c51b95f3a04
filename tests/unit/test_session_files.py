"""A session's files read from the host without following what the sandbox
planted (services/spawner/sessions/files.py); the engine-backed attacks are
tests/integration/test_session_files_spawner.py's."""

from __future__ import annotations

import os

import pytest

from services.common.contract.errors import InvalidArgument
from services.spawner.errors import FileNotFound
from services.spawner.outputs import DropKind, OutputCaps, select
from services.spawner.sessions import files


def _write(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _read(root, path, most=1 << 30) -> bytes:
    fd, size = files.open_file(str(root), path, most)
    return b"".join(data for _, data in files.read_chunks(fd, size))


def test_a_regular_file_is_read_whole(tmp_path):
    _write(tmp_path / "code/a.txt", b"hello")
    assert _read(tmp_path, "code/a.txt") == b"hello"


def test_links_fifos_directories_and_sparse_files_are_refused(tmp_path):
    secret = tmp_path.parent / "secret"
    secret.write_text("host secret")
    (tmp_path / "code").mkdir()
    os.symlink(secret, tmp_path / "code/link")
    os.symlink(tmp_path.parent, tmp_path / "code/linkdir")
    os.mkfifo(tmp_path / "code/pipe")
    (tmp_path / "code/dir").mkdir()
    with open(tmp_path / "code/sparse", "wb") as sparse:
        sparse.truncate(10**9)
    for path in ("code/link", "code/linkdir/secret", "code/pipe", "code/dir", "code/sparse"):
        with pytest.raises(InvalidArgument) as refused:
            _read(tmp_path, path, most=10**6)
        assert refused.value.field == "path", path
    with pytest.raises(FileNotFound):
        _read(tmp_path, "code/missing")


def test_a_listing_is_sorted_bounded_and_never_enters_a_link(tmp_path):
    _write(tmp_path / "code/b.txt", b"bb")
    _write(tmp_path / "code/a/c.txt", b"c")
    _write(tmp_path / ("code/" + "d/" * 40 + "deep.txt"))
    os.symlink(tmp_path.parent, tmp_path / "code/up")
    found, truncated = files.list_files(str(tmp_path), "code", max_path_length=255)
    assert found == [("code/a/c.txt", 1), ("code/b.txt", 2)]
    assert truncated  # the deep tree
    with pytest.raises(InvalidArgument) as refused:
        files.list_files(str(tmp_path), "code/up", max_path_length=255)
    assert refused.value.field == "directory"
    with pytest.raises(FileNotFound):
        files.list_files(str(tmp_path), "nowhere", max_path_length=255)


def test_select_starts_below_a_prefix_and_stops_at_a_depth(tmp_path):
    _write(tmp_path / "top.txt")
    _write(tmp_path / "sub/one/two/three.txt")
    caps = OutputCaps(max_files=10, max_file_bytes=10, max_total_bytes=100, max_entries=100)
    harvest = select(str(tmp_path), caps, start="sub/", max_depth=1)
    assert harvest.files == []
    assert [(d.path, d.kind) for d in harvest.dropped] == [("sub/one/two", DropKind.TOO_DEEP)]
    assert select(str(tmp_path), caps, start="sub/").files == [("sub/one/two/three.txt", 1)]


def test_nothing_is_put_into_a_workspace_that_is_no_longer_mounted(tmp_path):
    """The bare mount point left while a workspace is taken away is the
    host's own directory: a put finds the workspace gone."""
    (tmp_path / "ws").mkdir()
    with pytest.raises(FileNotFound):
        files.put(str(tmp_path / "ws"), "code/x", b"x")
    assert list((tmp_path / "ws").iterdir()) == []
