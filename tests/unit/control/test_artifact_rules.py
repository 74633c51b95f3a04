"""The pure rules of runnable artifacts: ids, revisions, paths, contents,
packages and their union, collisions with existing files, caps, the error
mapping."""

from __future__ import annotations

import pytest
from google.rpc import code_pb2

from sandbox.common.v1 import execution_pb2 as common
from services.common.contract.ids import ID_RE
from services.common.contract.languages import check_language
from services.control.artifacts.models import PackageSpec
from services.control.artifacts.rules import (
    check_artifact_id,
    check_content,
    check_expected_revision,
    check_packages,
    check_path,
    check_title,
    check_totals,
    colliding_path,
    collision_message,
    merge_packages,
    new_artifact_id,
    package_key,
)
from services.control.config import ArtifactLimits, ControlSettings
from services.control.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LimitExceeded,
    NotFound,
    StaleRevision,
    to_status,
)

LIMITS = ArtifactLimits(max_files=3, max_file_bytes=10, max_total_bytes=20, max_path_length=40, max_packages=2)


@pytest.mark.parametrize("value", ["a", "A-b_9", "x" * 64, "art_0123456789abcdef0123"])
def test_artifact_id_accepted(value):
    assert check_artifact_id(value) == value


@pytest.mark.parametrize("value", ["", "x" * 65, "a b", "a/b", "a.b", "ä", "a\n", "../x"])
def test_artifact_id_refused(value):
    with pytest.raises(InvalidArgument) as refused:
        check_artifact_id(value)
    assert refused.value.field == "artifact_id"


def test_generated_ids_follow_the_id_rule():
    ids = {new_artifact_id() for _ in range(100)}
    assert len(ids) == 100 and all(ID_RE.match(i) for i in ids)


def test_expected_revision_is_required():
    assert check_expected_revision(1) == 1
    with pytest.raises(InvalidArgument) as refused:
        check_expected_revision(0)
    assert refused.value.field == "expected_revision"


def test_language():
    assert check_language(common.LANGUAGE_PYTHON) == "python"
    assert check_language(common.LANGUAGE_NODE) == "node"
    for bad in (common.LANGUAGE_UNSPECIFIED, 99):
        with pytest.raises(InvalidArgument, match="language"):
            check_language(bad)


@pytest.mark.parametrize(
    "title,ok",
    [
        ("", True),
        ("My tool ✓", True),
        ("x" * 200, True),
        ("x" * 201, False),
        ("two\nlines", False),
        ("tab\there", False),
        ("rtl\u202e", False),
    ],
)
def test_title(title, ok):
    if ok:
        assert check_title(title) == title
    else:
        with pytest.raises(InvalidArgument, match="title"):
            check_title(title)


@pytest.mark.parametrize(
    "path,why",
    [
        ("", "empty"),
        ("/etc/passwd", "relative"),
        ("../x.py", "'..'"),
        ("a/../x.py", "'..'"),
        ("./x.py", "'.'"),
        ("a\x00b", "NUL"),
        ("a\x1bb", "control"),
        ("a\u202eb.py", "bidi"),
        ("a\u200bb.py", "invisible"),
        (".env", "hidden"),
        ("a/.git/config", "hidden"),
        ("a\\b.py", "backslash"),
        ("a//b.py", "empty segments"),
        ("a/", "empty segments"),
        ("C:x.py", "drive"),
        ("x" * 41, "at most 40 bytes"),
    ],
)
def test_path_refused(path, why):
    with pytest.raises(InvalidArgument, match=why) as refused:
        check_path("path", path, LIMITS)
    assert refused.value.field == "path"


@pytest.mark.parametrize("path", ["main.py", "src/app/main.py", "naïve.py", "a-b_c.d.js", "x" * 40])
def test_path_accepted(path):
    assert check_path("new_path", path, LIMITS) == path


def test_content_size():
    assert check_content("content", b"x" * 10, LIMITS) == b"x" * 10
    with pytest.raises(InvalidArgument, match="at most 10 bytes") as refused:
        check_content("content", b"x" * 11, LIMITS)
    assert refused.value.field == "content"


def P(name, version=""):
    return common.Package(name=name, version=version)


def test_packages_accepted_in_order():
    assert check_packages("python", [P("requests", "==2.31"), P("numpy")], LIMITS) == (
        PackageSpec("requests", "==2.31"),
        PackageSpec("numpy", ""),
    )
    assert check_packages("node", [P("@scope/pkg", "^1.2.0")], LIMITS) == (PackageSpec("@scope/pkg", "^1.2.0"),)


@pytest.mark.parametrize(
    "language,packages,field",
    [
        ("python", [P("-e git+https")], "packages[0].name"),
        ("python", [P("ok"), P("requests", "; rm -rf")], "packages[1].version"),
        ("node", [P("Upper")], "packages[0].name"),
        ("python", [P("Foo_Bar"), P("foo.bar")], "packages[1].name"),  # the same project
        ("python", [P("a"), P("b"), P("c")], "packages"),  # over max_packages
    ],
)
def test_packages_refused(language, packages, field):
    with pytest.raises(InvalidArgument) as refused:
        check_packages(language, packages, LIMITS)
    assert refused.value.field == field


def test_packages_required_when_adding():
    with pytest.raises(InvalidArgument, match="at least one"):
        check_packages("python", [], LIMITS, required=True)


@pytest.mark.parametrize(
    "language,name,key",
    [
        ("python", "Foo_Bar", "foo-bar"),
        ("python", "foo..bar", "foo-bar"),
        ("python", "requests[socks]", "requests"),
        ("node", "lodash", "lodash"),
        ("node", "@a/b", "@a/b"),
    ],
)
def test_package_key(language, name, key):
    assert package_key(language, name) == key


def test_merge_replaces_in_place_and_appends():
    current = (PackageSpec("requests", "==2.0"), PackageSpec("numpy", ">=1"))
    added = (PackageSpec("pandas"), PackageSpec("Requests", ">=2.31"), PackageSpec("attrs", "==23.1"))
    assert merge_packages("python", current, added) == (
        PackageSpec("Requests", ">=2.31"),  # the new specifier wins, in its old place
        PackageSpec("numpy", ">=1"),
        PackageSpec("pandas"),
        PackageSpec("attrs", "==23.1"),
    )
    # A specifier can also be dropped: the new (empty) version wins.
    assert merge_packages("python", current, [PackageSpec("numpy")]) == (current[0], PackageSpec("numpy"))
    assert merge_packages("node", (PackageSpec("a", "^1"),), [PackageSpec("a", "^2")]) == (PackageSpec("a", "^2"),)


EXISTING = ["main.py", "lib/util.py", "README.md"]


@pytest.mark.parametrize(
    "path,ignore,other",
    [
        ("main.py", None, "main.py"),
        ("MAIN.PY", None, "main.py"),
        ("readme.md", None, "README.md"),
        ("main.py/x.py", None, "main.py"),  # under a file
        ("lib", None, "lib/util.py"),  # a file where a directory is
        ("LIB/util.py", None, "lib/util.py"),
        ("new.py", None, None),
        ("lib/other.py", None, None),
        ("Main.py", "main.py", None),  # a case-only rename of the file itself
        ("lib", "lib/util.py", None),  # the only file under lib/ is the one renamed
    ],
)
def test_colliding_path(path, ignore, other):
    assert colliding_path(EXISTING, path, ignore=ignore) == other


def test_unicode_forms_collide():
    nfc, nfd = "caf\u00e9.py", "cafe\u0301.py"
    assert colliding_path([nfc], nfd) == nfc


def test_collision_messages_name_both_paths():
    assert "already exists" in collision_message("path", "a.py", "a.py")
    assert "case" in collision_message("path", "A.py", "a.py")
    assert "directory" in collision_message("new_path", "a", "a/b.py")
    assert collision_message("new_path", "a", "a/b.py").startswith("new_path:")


def test_totals():
    check_totals(LIMITS, "x", 3, 20)
    with pytest.raises(LimitExceeded) as files:
        check_totals(LIMITS, "x", 4, 0)
    assert files.value.subject == "artifact:x/files"
    with pytest.raises(LimitExceeded) as total:
        check_totals(LIMITS, "x", 1, 21)
    assert total.value.subject == "artifact:x/total_bytes"


def test_limits_from_the_environment(monkeypatch):
    # The mesh's one set of request limits, the same variables the spawner reads.
    monkeypatch.setenv("MESH_MAX_FILES", "7")
    monkeypatch.setenv("MESH_MAX_TOTAL_FILE_BYTES", "1000")
    limits = ControlSettings().artifact_limits()
    assert (limits.max_files, limits.max_total_bytes, limits.max_file_bytes) == (7, 1000, 1024 * 1024)


@pytest.mark.parametrize(
    "exc,code",
    [
        (StaleRevision("a", 1, 2), "ABORTED"),
        (FailedPrecondition("path", "entry"), "FAILED_PRECONDITION"),
        (LimitExceeded("artifact:a/files", "too many"), "RESOURCE_EXHAUSTED"),
        (InvalidArgument("path", "bad"), "INVALID_ARGUMENT"),
        (NotFound("x"), "NOT_FOUND"),
        (AlreadyExists("x"), "ALREADY_EXISTS"),
    ],
)
def test_one_mapping_to_statuses(exc, code):
    assert to_status(exc).code == getattr(code_pb2, code)
    assert to_status(RuntimeError("x")) is None
