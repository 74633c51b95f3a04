"""The install cache's bookkeeping on a real filesystem (tmp dirs)."""

from __future__ import annotations

import os
import pathlib

from services.spawner.install_cache import InstallCache

DAY = "2026-11-29"


def make_tree(root: pathlib.Path, files: dict[str, bytes]) -> pathlib.Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def test_the_key_follows_image_language_requirements_and_day():
    base = InstallCache.key("sha256:a", "python", ["six==1"], DAY)
    assert base == InstallCache.key("sha256:a", "python", ["six==1"], DAY)
    for other in (
        InstallCache.key("sha256:b", "python", ["six==1"], DAY),
        InstallCache.key("sha256:a", "node", ["six==1"], DAY),
        InstallCache.key("sha256:a", "python", ["six==2"], DAY),
        InstallCache.key("sha256:a", "python", ["six==1"], "2026-11-30"),
    ):
        assert other != base


def test_a_kept_tree_is_restored_as_a_copy(tmp_path):
    cache = InstallCache(str(tmp_path / "cache"), max_bytes=1 << 20)
    source = make_tree(tmp_path / "installed", {"six.py": b"x = 1\n", "pkg/__init__.py": b""})
    os.symlink("six.py", source / "alias.py")
    assert not cache.restore("k", tmp_path / "nothing-yet")
    cache.store("k", source)
    (source / "six.py").write_bytes(b"changed after the copy\n")
    restored = tmp_path / "workspace" / "python"
    assert cache.restore("k", restored)
    assert (restored / "six.py").read_bytes() == b"x = 1\n"
    assert os.readlink(restored / "alias.py") == "six.py"  # a link, copied as a link
    (restored / "six.py").write_bytes(b"poisoned\n")
    again = tmp_path / "other-workspace" / "python"
    assert cache.restore("k", again) and (again / "six.py").read_bytes() == b"x = 1\n"


def test_a_tree_with_a_fifo_is_not_kept(tmp_path):
    cache = InstallCache(str(tmp_path / "cache"), max_bytes=1 << 20)
    source = make_tree(tmp_path / "installed", {"six.py": b"x = 1\n"})
    os.mkfifo(source / "pipe")
    cache.store("k", source)  # logged, not raised: the execution goes on
    assert not cache.restore("k", tmp_path / "restored")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []  # no staging left


def test_the_least_recently_used_trees_go_past_the_cap(tmp_path):
    cache = InstallCache(str(tmp_path / "cache"), max_bytes=2500)
    for name in ("old", "used", "new"):
        cache.store(name, make_tree(tmp_path / f"src-{name}", {"f": b"x" * 1000}))
        if name == "used":
            os.utime(tmp_path / "cache" / "old", (1, 1))  # long unused
    assert cache.restore("used", tmp_path / "r1")
    kept = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert kept == ["new", "used"]


def test_a_tree_larger_than_the_cap_is_not_kept(tmp_path):
    cache = InstallCache(str(tmp_path / "cache"), max_bytes=100)
    cache.store("big", make_tree(tmp_path / "src", {"f": b"x" * 1000}))
    assert not cache.restore("big", tmp_path / "restored")
