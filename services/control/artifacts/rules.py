"""The pure rules of runnable artifacts: no database, each judges a request
(raising InvalidArgument or LimitExceeded) or computes a new state. Ids,
paths, contents and packages follow the mesh's contract
(services/common/contract/), so an artifact within its caps can always be
staged as one request."""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Iterable, Sequence

from services.common.contract.ids import check_id
from services.common.contract.packages import package_key
from services.common.contract.paths import check_path as path_refusal
from services.common.contract.paths import find_collisions, path_key
from services.common.contract.requests import check_packages as check_requested_packages
from services.control.artifacts.models import PackageSpec
from services.control.config import ArtifactLimits
from services.control.errors import InvalidArgument, LimitExceeded

MAX_TITLE_CHARS = 200
# Random bytes of an artifact id (art_ + 20 hex).
ARTIFACT_ID_BYTES = 10
# Title characters that would break a one-line display: control, format,
# surrogate, line and paragraph separators.
INVISIBLE_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")


def check_artifact_id(value: str, field: str = "artifact_id") -> str:
    return check_id(field, value)


def check_expected_revision(value: int) -> int:
    if value <= 0:
        raise InvalidArgument(
            "expected_revision", "required: the revision this write is based on (revisions start at 1)"
        )
    return value


def check_title(title: str) -> str:
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidArgument("title", f"must be at most {MAX_TITLE_CHARS} characters")
    for ch in title:
        if unicodedata.category(ch) in INVISIBLE_CATEGORIES:
            raise InvalidArgument("title", "must be one line of visible text (no control or format characters)")
    return title


def check_path(field: str, path: str, limits: ArtifactLimits) -> str:
    """Every path rule of DESIGN.md for one path; collisions need the
    artifact's other files (`colliding_path`)."""
    reason = path_refusal(path, max_length=limits.max_path_length)
    if reason:
        raise InvalidArgument(field, reason)
    return path


def check_content(field: str, content: bytes, limits: ArtifactLimits) -> bytes:
    if len(content) > limits.max_file_bytes:
        raise InvalidArgument(field, f"must be at most {limits.max_file_bytes} bytes")
    return bytes(content)


def check_packages(
    language: str, packages: Sequence, limits: ArtifactLimits, *, required: bool = False
) -> tuple[PackageSpec, ...]:
    """`packages` are objects with `name` and `version` (common.v1.Package)."""
    if required and not packages:
        raise InvalidArgument("packages", "at least one package is required")
    checked = check_requested_packages(language, packages, limits.max_packages)
    return tuple(PackageSpec(p.name, p.version) for p in checked)


def merge_packages(
    language: str, current: Sequence[PackageSpec], added: Sequence[PackageSpec]
) -> tuple[PackageSpec, ...]:
    """The union: a package already listed under the same key is replaced in
    place by the added one (its version specifier wins); others are appended
    in the order given."""
    merged = list(current)
    position = {package_key(language, p.name): i for i, p in enumerate(merged)}
    for package in added:
        key = package_key(language, package.name)
        if key in position:
            merged[position[key]] = package
        else:
            position[key] = len(merged)
            merged.append(package)
    return tuple(merged)


def colliding_path(existing: Iterable[str], path: str, *, ignore: str | None = None) -> str | None:
    """The existing path that `path` cannot live next to: the same path, the
    same but for case or Unicode form, or one that would make either of the
    two both a file and a directory. `ignore` (a rename's source) is left out."""
    others = [p for p in existing if p != ignore]
    for earlier, later in find_collisions([*others, path]):
        if later == path and earlier in others:
            return earlier
    return None


def collision_message(field: str, path: str, other: str) -> str:
    if other == path:
        return f"{field}: {path!r} already exists"
    if path_key(other) == path_key(path):
        return (
            f"{field}: {path!r} collides with existing {other!r} (paths must differ in more than case or Unicode form)"
        )
    return f"{field}: {path!r} collides with existing {other!r} (one would be both a file and a directory)"


def check_totals(limits: ArtifactLimits, artifact_id: str, file_count: int, total_bytes: int) -> None:
    if file_count > limits.max_files:
        raise LimitExceeded(f"artifact:{artifact_id}/files", f"an artifact holds at most {limits.max_files} files")
    if total_bytes > limits.max_total_bytes:
        raise LimitExceeded(
            f"artifact:{artifact_id}/total_bytes",
            f"an artifact's files total at most {limits.max_total_bytes} bytes",
        )


def new_artifact_id() -> str:
    return "art_" + secrets.token_hex(ARTIFACT_ID_BYTES)
