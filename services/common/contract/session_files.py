"""What control and the spawner both check of a request for an open
session's files (PutSessionFile, GetSessionFile, ListSessionFiles): paths
relative to /workspace, judged as text by the rules of staged files
(services/common/contract/paths.py), and the size of a put."""

from __future__ import annotations

from services.common.contract.errors import InvalidArgument
from services.common.contract.limits import RequestLimits
from services.common.contract.paths import check_path


def check_file_path(path: str, limits: RequestLimits) -> str:
    """A file's path: relative, no '.' or '..' or hidden segments, no
    control or invisible characters, at most the path cap."""
    reason = check_path(path, max_length=limits.max_path_length)
    if reason:
        raise InvalidArgument("path", reason)
    return path


def check_directory(directory: str, limits: RequestLimits) -> str:
    """A directory to list: "" for the whole workspace, else a path as
    above (one trailing "/" allowed); returned without the "/"."""
    if not directory:
        return ""
    if directory != "/":
        directory = directory.removesuffix("/")
    reason = check_path(directory, max_length=limits.max_path_length)
    if reason:
        raise InvalidArgument("directory", reason)
    return directory


def check_content(content: bytes, limits: RequestLimits) -> bytes:
    """A put's content: at most the per-file cap of staged files."""
    if len(content) > limits.max_file_bytes:
        raise InvalidArgument("content", f"must be at most {limits.max_file_bytes} bytes")
    return bytes(content)
