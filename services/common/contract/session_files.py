"""What control and the spawner both check of a request for an open
session's files (PutSessionFile, GetSessionFile, ListSessionFiles), and how
its paths are named.

A caller names a file as the session's code does: relative to the working
directory of its calls (/workspace/code, where files given at creation
land), or absolute under /workspace for the rest of the workspace
("/workspace/output/chart.png"). Inside, paths are relative to /workspace
and judged as text by the rules of staged files
(services/common/contract/paths.py)."""

from __future__ import annotations

from services.common.contract.errors import InvalidArgument
from services.common.contract.limits import RequestLimits
from services.common.contract.paths import check_path

WORKSPACE = "/workspace"
# The calls' working directory, relative to the workspace.
WORKING_DIRECTORY = "code"


def _in_workspace(name: str, field: str) -> str:
    """`name` as the caller gave it -> the path relative to /workspace."""
    if name == WORKSPACE:
        return ""
    if name.startswith(WORKSPACE + "/"):
        return name[len(WORKSPACE) + 1 :]
    if name.startswith("/"):
        raise InvalidArgument(field, f"must be relative to the working directory, or absolute under {WORKSPACE}")
    return f"{WORKING_DIRECTORY}/{name}" if name else WORKING_DIRECTORY


def check_file_path(path: str, limits: RequestLimits) -> str:
    """A file's path, relative to /workspace: no '.' or '..' or hidden
    segments, no control or invisible characters, at most the path cap."""
    if not path:
        raise InvalidArgument("path", "must not be empty")
    relative = _in_workspace(path, "path")
    reason = check_path(relative, max_length=limits.max_path_length)
    if reason:
        raise InvalidArgument("path", reason)
    return relative


def check_directory(directory: str, limits: RequestLimits) -> str:
    """A directory to list, relative to /workspace: "" (the working
    directory) by default, "/workspace" for the whole workspace; one
    trailing "/" allowed."""
    if directory not in ("/", WORKSPACE + "/"):
        directory = directory.removesuffix("/")
    relative = _in_workspace(directory, "directory")
    if not relative:
        return ""
    reason = check_path(relative, max_length=limits.max_path_length)
    if reason:
        raise InvalidArgument("directory", reason)
    return relative


def shown_path(relative: str) -> str:
    """A path relative to /workspace, named as the caller names it."""
    prefix = WORKING_DIRECTORY + "/"
    return relative[len(prefix) :] if relative.startswith(prefix) else f"{WORKSPACE}/{relative}"


def check_content(content: bytes, limits: RequestLimits) -> bytes:
    """A put's content: at most the per-file cap of staged files."""
    if len(content) > limits.max_file_bytes:
        raise InvalidArgument("content", f"must be at most {limits.max_file_bytes} bytes")
    return bytes(content)
