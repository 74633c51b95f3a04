"""Building an ExecuteRequest from what a person has at hand: a file or a
folder of files, package names as pip and npm spell them, `K=V` pairs and
sizes such as `256m`. Pure functions: every mistake is a UsageError naming
the option, raised before anything is sent."""

from __future__ import annotations

import os
import pathlib
import re
import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb

LANGUAGES = {"python": common.LANGUAGE_PYTHON, "node": common.LANGUAGE_NODE}
EXTENSIONS = {".py": "python", ".js": "node", ".mjs": "node", ".cjs": "node"}
# Tried in order when a folder is given without an entry.
DEFAULT_ENTRIES = ("main.py", "index.js", "index.mjs")
RUNTIMES = ("runc", "gvisor")
# A folder is staged whole, up to these bounds (control refuses more anyway,
# but reading a home directory by mistake should stop early).
MAX_DIR_FILES = 1000
MAX_DIR_BYTES = 64 * 1024 * 1024
SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\Z", re.IGNORECASE)
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
PIP_SPLIT_RE = re.compile(r"[=<>!~\[;@ ]")


class UsageError(ValueError):
    """A mistake in what was asked for; `option` names it."""

    def __init__(self, option: str, description: str):
        super().__init__(f"{option}: {description}")
        self.option = option
        self.description = description


def language_of(path: str, option: str = "FILE") -> str:
    language = EXTENSIONS.get(pathlib.PurePosixPath(path).suffix.lower())
    if language is None:
        known = ", ".join(sorted(EXTENSIONS))
        raise UsageError(option, f"cannot tell the language of {path!r} (known extensions: {known})")
    return language


def read_folder(folder: pathlib.Path, *, max_files: int = MAX_DIR_FILES, max_bytes: int = MAX_DIR_BYTES):
    """Every file under `folder` by its '/'-separated relative path, skipping
    dotfiles and dot-folders (.git, .venv, .env)."""
    files: dict[str, bytes] = {}
    total = 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = pathlib.Path(root, name)
            if not path.is_file():
                continue
            if len(files) >= max_files:
                raise UsageError("DIR", f"{folder} holds more than {max_files} files")
            content = path.read_bytes()
            total += len(content)
            if total > max_bytes:
                raise UsageError("DIR", f"{folder} holds more than {max_bytes} bytes")
            files[path.relative_to(folder).as_posix()] = content
    return files


def stage(target: pathlib.Path, entry: str | None, *, steps: bool = False) -> tuple[dict[str, bytes], str]:
    """The files to send and the entry: a file alone, or a folder whole.
    With `steps` the folder needs no entry (returned as "")."""
    if target.is_file():
        if entry:
            raise UsageError("--entry", "only with a folder (a file is its own entry)")
        return {target.name: target.read_bytes()}, target.name
    if not target.is_dir():
        raise UsageError("FILE", f"{target} is neither a file nor a folder")
    files = read_folder(target)
    if entry:
        entry = pathlib.PurePosixPath(entry).as_posix()
        if entry not in files:
            raise UsageError("--entry", f"{entry!r} is not a file in {target}")
        return files, entry
    if steps:
        return files, ""
    found = [name for name in DEFAULT_ENTRIES if name in files]
    if not found:
        raise UsageError("--entry", f"{target} has no {' or '.join(DEFAULT_ENTRIES)}; name the entry")
    return files, found[0]


def parse_step(text: str) -> list[str]:
    """`--step 'prep.py --fast'` -> ["prep.py", "--fast"] (shell quoting)."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UsageError("--step", f"{text!r}: {exc}") from None
    if not words:
        raise UsageError("--step", "names no file")
    return words


def step_messages(steps: Sequence[str | Sequence[str]], files: Collection[str] | None) -> list[common.Step]:
    """Each step a file's path (str) or [path, *args], among `files` unless
    None (an artifact's files are control's to check)."""
    messages = []
    for step in steps:
        path, *args = [step] if isinstance(step, str) else list(step)
        if files is not None and path not in files:
            raise UsageError("--step", f"{path!r} is not among the files")
        messages.append(common.Step(path=path, args=args))
    return messages


def parse_pip(spec: str) -> common.Package:
    """`pandas`, `pandas==2.2`, `requests>=2,<3` -> name and version specifier."""
    spec = spec.strip()
    match = PIP_SPLIT_RE.search(spec)
    name, version = (spec[: match.start()], spec[match.start() :]) if match else (spec, "")
    if not name:
        raise UsageError("--pip", f"{spec!r} names no package")
    return common.Package(name=name, version=version.strip())


def parse_npm(spec: str) -> common.Package:
    """`lodash`, `lodash@^4.17`, `@scope/pkg@1.0` -> name and version range."""
    spec = spec.strip()
    at = spec.rfind("@")
    name, version = (spec[:at], spec[at + 1 :]) if at > 0 else (spec, "")
    if not name:
        raise UsageError("--npm", f"{spec!r} names no package")
    return common.Package(name=name, version=version)


def parse_env(pairs: Iterable[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError("--env", f"{pair!r} is not NAME=VALUE")
        env[name] = value
    return env


def parse_size(text: str) -> int:
    """Bytes from `268435456`, `256m`, `256MiB`, `1g`, `1.5G`."""
    match = SIZE_RE.match(text.strip())
    if not match:
        raise UsageError("--memory", f"{text!r} is not a size (e.g. 256m, 1g)")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()])


def build_request(
    files: Mapping[str, bytes | str],
    *,
    entry: str | None = None,
    steps: Sequence[str | Sequence[str]] = (),
    language: str | None = None,
    args: Sequence[str] = (),
    pip: Sequence[str] = (),
    npm: Sequence[str] = (),
    timeout: float | None = None,
    memory: int | str | None = None,
    cpus: float | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes = b"",
    runtime: str = "",
    variant: str = "",
    group_id: str = "",
    execution_id: str = "",
) -> pb.ExecuteRequest:
    """`timeout` in seconds, `memory` in bytes (or a size such as "256m");
    either `entry` (with `args`) or `steps` (each a path or [path, *args]).
    The entry defaults to the one file given, the language to the entry's
    (or the first step's)."""
    if not files:
        raise UsageError("files", "nothing to run")
    step_list = step_messages(steps, files)
    if step_list:
        if entry or args:
            raise UsageError("--step", "either steps or an entry with arguments, not both")
        entry = ""
    elif entry is None:
        if len(files) != 1:
            raise UsageError("entry", "several files: name the entry")
        entry = next(iter(files))
    if not step_list and entry not in files:
        raise UsageError("entry", f"{entry!r} is not among the files")
    language = language or language_of(step_list[0].path if step_list else entry)
    if language not in LANGUAGES:
        raise UsageError("language", f"{language!r} is not one of {', '.join(LANGUAGES)}")
    if pip and language != "python":
        raise UsageError("--pip", f"pip packages need a Python program, not {language}")
    if npm and language != "node":
        raise UsageError("--npm", f"npm packages need a Node program, not {language}")
    if runtime and runtime not in RUNTIMES:
        raise UsageError("--runtime", f"{runtime!r} is not one of {', '.join(RUNTIMES)}")
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout", "must be positive (seconds)")
    memory_bytes = parse_size(memory) if isinstance(memory, str) else (memory or 0)
    limits = common.Limits(
        timeout_ms=round(timeout * 1000) if timeout else 0, memory_bytes=memory_bytes, cpus=cpus or 0.0
    )
    return pb.ExecuteRequest(
        execution_id=execution_id,
        group_id=group_id,
        language=LANGUAGES[language],
        files=[
            common.File(path=path, content=content.encode() if isinstance(content, str) else content)
            for path, content in files.items()
        ],
        entry=entry,
        steps=step_list,
        args=list(args),
        packages=[parse_pip(p) for p in pip] + [parse_npm(p) for p in npm],
        limits=limits,
        env=dict(env or {}),
        stdin=stdin,
        runtime=runtime,
        variant=variant,
    )
