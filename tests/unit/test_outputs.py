"""The harvest walks hostile directories without following or reading what it must not."""

import os

from services.spawner.outputs import DropKind, OutputCaps, read_chunks, select

CAPS = OutputCaps(max_files=5, max_file_bytes=100, max_total_bytes=250, max_entries=50)


def _write(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_regular_files_are_kept_in_name_order(tmp_path):
    """A directory's files come before its subdirectories, each in name order."""
    _write(tmp_path / "b.txt", b"bb")
    _write(tmp_path / "a/c.txt", b"c")
    harvest = select(str(tmp_path), CAPS)
    assert harvest.files == [("b.txt", 2), ("a/c.txt", 1)]
    assert harvest.dropped_count == 0
    assert b"".join(d for _, d in read_chunks(str(tmp_path), "a/c.txt", 1)) == b"c"


def test_symlinks_fifos_and_hidden_files_are_dropped(tmp_path):
    secret = tmp_path.parent / "secret"
    secret.write_text("host secret")
    os.symlink(secret, tmp_path / "link.txt")
    os.symlink(tmp_path.parent, tmp_path / "linkdir")
    os.mkfifo(tmp_path / "pipe")
    _write(tmp_path / ".hidden", b"h")
    harvest = select(str(tmp_path), CAPS)
    assert harvest.files == []
    reasons = " ".join(str(d) for d in harvest.dropped)
    assert "link.txt (symlink)" in reasons
    assert "linkdir (symlink)" in reasons
    assert "pipe (not a regular file)" in reasons
    assert ".hidden" in reasons
    assert harvest.dropped_count == 4
    assert harvest.over_cap_count == 0
    assert {d.path: d.kind for d in harvest.dropped} == {
        "link.txt": DropKind.SYMLINK,
        "linkdir": DropKind.SYMLINK,
        "pipe": DropKind.NOT_REGULAR_FILE,
        ".hidden": DropKind.PATH_REFUSED,
    }


def test_caps_drop_and_name_files(tmp_path):
    _write(tmp_path / "big.bin", b"x" * 101)
    for i in range(4):
        _write(tmp_path / f"f{i}.txt", b"y" * 80)
    harvest = select(str(tmp_path), CAPS)
    assert [p for p, _ in harvest.files] == ["f0.txt", "f1.txt", "f2.txt"]
    assert harvest.total_bytes == 240
    assert {d.path: d.kind for d in harvest.dropped} == {
        "big.bin": DropKind.OVER_FILE_SIZE,
        "f3.txt": DropKind.OVER_TOTAL_SIZE,
    }
    assert harvest.over_cap_count == 2
    reasons = " ".join(str(d) for d in harvest.dropped)
    assert "big.bin (over the per-file cap of 100 bytes)" in reasons
    assert "f3.txt (over the total cap of 250 bytes)" in reasons


def test_file_count_cap_is_a_cap(tmp_path):
    for i in range(7):
        _write(tmp_path / f"f{i}.txt")
    harvest = select(str(tmp_path), CAPS)
    assert len(harvest.files) == 5
    assert [d.kind for d in harvest.dropped] == [DropKind.OVER_FILE_COUNT] * 2
    assert all(d.kind.over_cap for d in harvest.dropped)


def test_walk_stops_after_max_entries(tmp_path):
    for i in range(60):
        _write(tmp_path / f"d{i:02}/f.txt")
    harvest = select(str(tmp_path), CAPS)
    assert harvest.dropped_count > 0
    assert any(d.kind is DropKind.TOO_MANY_ENTRIES for d in harvest.dropped)
    assert harvest.over_cap_count == harvest.dropped_count


def test_read_never_exceeds_the_selected_size(tmp_path):
    _write(tmp_path / "grows.txt", b"a" * 10)
    harvest = select(str(tmp_path), CAPS)
    (tmp_path / "grows.txt").write_bytes(b"a" * 1000)
    data = b"".join(d for _, d in read_chunks(str(tmp_path), "grows.txt", harvest.files[0][1]))
    assert data == b"a" * 10
