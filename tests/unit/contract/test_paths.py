"""Path rules for staged files (services/common/contract/paths.py)."""

from __future__ import annotations

import os.path
import pathlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.common.contract.paths import check_path, find_collisions

MAX = 255


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("main.py", id="plain"),
        pytest.param("pkg/sub/mod.py", id="nested"),
        pytest.param("ab:c.py", id="colon-not-drive"),
        pytest.param("données/ü.py", id="non-ascii"),
        pytest.param("a..b", id="dots-inside-name"),
        pytest.param("x" * MAX, id="exactly-max-length"),
        pytest.param("with space.py", id="space"),
    ],
)
def test_accepted(path: str) -> None:
    assert check_path(path, max_length=MAX) is None


@pytest.mark.parametrize(
    ("path", "max_length", "reason_part"),
    [
        pytest.param("", MAX, "empty", id="empty"),
        pytest.param("x" * 256, MAX, "at most 255 bytes", id="too-long"),
        pytest.param("é" * 128, MAX, "at most 255 bytes", id="too-long-in-utf8-bytes"),
        pytest.param("/etc/passwd", MAX, "relative", id="absolute"),
        pytest.param("a\\b.py", MAX, "backslash", id="backslash"),
        pytest.param("C:evil.py", MAX, "drive", id="drive-prefix"),
        pytest.param("c:/x.py", MAX, "drive", id="drive-prefix-lower"),
        pytest.param("a\x00.py", MAX, "NUL", id="nul"),
        pytest.param("a\n.py", MAX, "control", id="c0-newline"),
        pytest.param("a\x7f.py", MAX, "control", id="del"),
        pytest.param("a\x85.py", MAX, "control", id="c1"),
        pytest.param("a\u202egp.py", MAX, "bidi", id="bidi-rlo"),
        pytest.param("a\u2066.py", MAX, "bidi", id="bidi-isolate"),
        pytest.param("a\u061c.py", MAX, "bidi", id="arabic-letter-mark"),
        pytest.param("a\u200b.py", MAX, "format", id="zero-width-space"),
        pytest.param("a\ufeff.py", MAX, "format", id="bom"),
        pytest.param("a\u2028.py", MAX, "separator", id="line-separator"),
        pytest.param("a\ud800.py", MAX, "Unicode", id="lone-surrogate"),
        pytest.param("a//b.py", MAX, "empty segments", id="double-slash"),
        pytest.param("a/", MAX, "empty segments", id="trailing-slash"),
        pytest.param("./a.py", MAX, "'.'", id="dot-segment"),
        pytest.param("a/../../b.py", MAX, "'..'", id="dotdot-segment"),
        pytest.param("..", MAX, "'..'", id="dotdot-alone"),
        pytest.param(".env", MAX, "hidden", id="hidden-file"),
        pytest.param("a/.git/config", MAX, "hidden", id="hidden-dir"),
        pytest.param("a/" + "x" * 256, 1000, "segment", id="segment-too-long"),
    ],
)
def test_refused(path: str, max_length: int, reason_part: str) -> None:
    reason = check_path(path, max_length=max_length)
    assert reason is not None
    assert reason_part in reason


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        pytest.param(["a.py", "b.py", "pkg/a.py"], [], id="distinct"),
        pytest.param(["a.py", "a.py"], [("a.py", "a.py")], id="duplicate"),
        pytest.param(["Main.py", "main.py"], [("Main.py", "main.py")], id="case"),
        pytest.param(["STRASSE.py", "straße.py"], [("STRASSE.py", "straße.py")], id="casefold"),
        pytest.param(["\u00e9.py", "e\u0301.py"], [("\u00e9.py", "e\u0301.py")], id="nfc"),
        pytest.param(["a", "a/b.py"], [("a", "a/b.py")], id="file-then-dir"),
        pytest.param(["a/b/c.py", "A/b"], [("a/b/c.py", "A/b")], id="dir-then-file-case"),
        pytest.param(["ab", "a/b"], [], id="string-prefix-not-dir-prefix"),
        pytest.param(["x", "x/1", "X/2"], [("x", "x/1"), ("x", "X/2")], id="every-pair-reported"),
    ],
)
def test_find_collisions(paths: list[str], expected: list[tuple[str, str]]) -> None:
    assert find_collisions(paths) == expected


NASTY = st.sampled_from([".", "/", "\\", "\x00", "\u202e", "A", "a", ":"])
PATHS = st.text(alphabet=st.one_of(NASTY, NASTY, st.characters()), max_size=40)


@given(PATHS)
@example("a/b")
@example("..")
@example("a/./b")
@example("A:/x")
def test_accepted_paths_stay_inside_the_workspace(path: str) -> None:
    if check_path(path, max_length=MAX) is not None:
        return
    root = "/workspace/code"
    joined = os.path.join(root, path)
    normalized = os.path.normpath(joined)
    assert normalized.startswith(root + "/")
    assert ".." not in normalized.split("/")
    assert normalized == joined  # nothing to normalize: no '.', '..' or '//'
    assert not any(part.startswith(".") for part in pathlib.PurePosixPath(path).parts)
