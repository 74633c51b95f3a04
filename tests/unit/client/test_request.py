"""sandbox_mesh.request: what a person types, as the request control gets."""

from __future__ import annotations

import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox_mesh.request import (
    UsageError,
    build_request,
    parse_env,
    parse_npm,
    parse_pip,
    parse_size,
    parse_step,
    read_folder,
    stage,
)


def test_a_file_is_its_own_entry_and_its_extension_the_language(tmp_path):
    (tmp_path / "hello.mjs").write_text("console.log(1)")
    files, entry = stage(tmp_path / "hello.mjs", None)
    request = build_request(files, entry=entry, args=["--x", "1"], npm=["lodash@^4.17"], timeout=2.5, memory="256m")
    assert request.language == common.LANGUAGE_NODE
    assert request.entry == "hello.mjs" and list(request.args) == ["--x", "1"]
    assert [(p.name, p.version) for p in request.packages] == [("lodash", "^4.17")]
    assert request.limits.timeout_ms == 2500 and request.limits.memory_bytes == 256 * 1024**2


def test_a_folder_is_staged_whole_without_dotfiles(tmp_path):
    (tmp_path / "main.py").write_text("import lib")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "lib.py").write_text("x = 1")
    (tmp_path / ".env").write_text("SECRET=1")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    files, entry = stage(tmp_path, None)
    assert sorted(files) == ["main.py", "pkg/lib.py"] and entry == "main.py"
    assert stage(tmp_path, "pkg/lib.py")[1] == "pkg/lib.py"


def test_a_folder_needs_an_entry_it_holds(tmp_path):
    (tmp_path / "app.py").write_text("")
    with pytest.raises(UsageError, match="--entry"):
        stage(tmp_path, None)
    with pytest.raises(UsageError, match="--entry"):
        stage(tmp_path, "missing.py")


def test_a_folder_is_bounded(tmp_path):
    for i in range(3):
        (tmp_path / f"f{i}.py").write_text("x" * 10)
    with pytest.raises(UsageError, match="more than 2 files"):
        read_folder(tmp_path, max_files=2)
    with pytest.raises(UsageError, match="more than 25 bytes"):
        read_folder(tmp_path, max_bytes=25)


@pytest.mark.parametrize(
    ("spec", "name", "version"),
    [("pandas", "pandas", ""), ("pandas==2.2", "pandas", "==2.2"), ("requests>=2,<3", "requests", ">=2,<3")],
)
def test_pip_specs(spec, name, version):
    package = parse_pip(spec)
    assert (package.name, package.version) == (name, version)


@pytest.mark.parametrize(
    ("spec", "name", "version"),
    [("lodash", "lodash", ""), ("@scope/pkg@1.0.0", "@scope/pkg", "1.0.0"), ("@scope/pkg", "@scope/pkg", "")],
)
def test_npm_specs(spec, name, version):
    package = parse_npm(spec)
    assert (package.name, package.version) == (name, version)


def test_env_and_sizes():
    assert parse_env(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(UsageError, match="--env"):
        parse_env(["NOVALUE"])
    assert parse_size("1g") == 1024**3 and parse_size("512MiB") == 512 * 1024**2 and parse_size("100") == 100
    with pytest.raises(UsageError, match="--memory"):
        parse_size("lots")


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"pip": ["x"], "entry": "a.js"}, "--pip"),
        ({"npm": ["x"], "entry": "a.py"}, "--npm"),
        ({"entry": "a.py", "runtime": "kata"}, "--runtime"),
        ({"entry": "a.py", "timeout": 0}, "--timeout"),
        ({"entry": "a.txt"}, "FILE"),
        ({}, "entry"),
    ],
)
def test_mistakes_name_the_option(kwargs, option):
    with pytest.raises(UsageError) as caught:
        build_request({"a.py": b"", "a.js": b"", "a.txt": b""}, **kwargs)
    assert caught.value.option == option


def test_text_sources_are_encoded():
    request = build_request({"main.py": 'print("é")'}, env={"K": "V"}, stdin=b"in", runtime="gvisor")
    assert request.files[0].content == 'print("é")'.encode()
    assert request.language == common.LANGUAGE_PYTHON
    assert dict(request.env) == {"K": "V"} and request.stdin == b"in" and request.runtime == "gvisor"


def test_steps_are_parsed_with_shell_quoting_and_must_be_staged(tmp_path):
    assert parse_step("prep.py --fast 'a b'") == ["prep.py", "--fast", "a b"]
    with pytest.raises(UsageError, match="--step"):
        parse_step("  ")
    with pytest.raises(UsageError, match="--step"):
        parse_step("'unclosed")
    files = {"prep.py": b"", "main.py": b""}
    request = build_request(files, steps=[["prep.py", "--fast"], "main.py"])
    assert [(s.path, list(s.args)) for s in request.steps] == [("prep.py", ["--fast"]), ("main.py", [])]
    assert request.entry == "" and request.language == common.LANGUAGE_PYTHON
    with pytest.raises(UsageError, match="not among the files"):
        build_request(files, steps=["other.py"])
    with pytest.raises(UsageError, match="not both"):
        build_request(files, entry="main.py", steps=["main.py"])
    with pytest.raises(UsageError, match="not both"):
        build_request(files, args=["x"], steps=["main.py"])


def test_a_folder_run_by_steps_needs_no_entry(tmp_path):
    (tmp_path / "prep.py").write_text("")
    files, entry = stage(tmp_path, None, steps=True)
    assert files == {"prep.py": b""} and entry == ""
