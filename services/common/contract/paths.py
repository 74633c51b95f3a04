"""Rules for the paths of files staged into a sandbox workspace.

Pure functions, no filesystem access: a path is judged as text before anything
is written, so a refused path never touches the disk. Paths are relative,
'/'-separated and end up under /workspace/code/ (or /workspace/output/).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

# A single name on Linux filesystems (NAME_MAX) is at most 255 bytes.
MAX_SEGMENT_BYTES = 255

# Bidi controls that reorder how text is displayed, so a listed path can read
# differently from what is on disk ("Trojan Source"). All are category Cf;
# they are named here so the reason given is specific.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_path(path: str, *, max_length: int) -> str | None:
    """Return why `path` is refused, or None when it is acceptable."""
    if not path:
        return "must not be empty"
    # surrogatepass: a lone surrogate must not crash the length check; it is
    # refused below.
    if len(path.encode("utf-8", "surrogatepass")) > max_length:
        return f"must be at most {max_length} bytes"
    reason = _check_characters(path)
    if reason:
        return reason
    if path.startswith("/"):
        return "must be relative"
    if "\\" in path:
        return "must use '/' as separator, not backslashes"
    # "C:foo" is a drive-relative path on Windows; refuse it for tools that
    # might interpret paths that way.
    if len(path) >= 2 and path[1] == ":" and path[0].isascii() and path[0].isalpha():
        return "must not start with a drive letter"
    for segment in path.split("/"):
        if not segment:
            return "must not contain empty segments ('//' or a trailing '/')"
        if segment in (".", ".."):
            return "must not contain '.' or '..' segments"
        if segment.startswith("."):
            return "must not contain hidden segments (starting with '.')"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"each segment must be at most {MAX_SEGMENT_BYTES} bytes"
    return None


def _check_characters(path: str) -> str | None:
    # NUL is checked apart from other controls: it truncates C strings, so
    # it deserves its own, exact message.
    if "\x00" in path:
        return "must not contain NUL"
    for ch in path:
        category = unicodedata.category(ch)
        if category == "Cc":  # C0, DEL and C1 controls
            return "must not contain control characters"
        if ch in BIDI_CONTROLS:
            return "must not contain bidi control characters"
        if category == "Cf":  # zero-width and other invisible characters
            return "must not contain invisible format characters"
        if category in ("Zl", "Zp"):  # U+2028/U+2029 break log lines
            return "must not contain line or paragraph separators"
        if category == "Cs":  # lone surrogate: not encodable as UTF-8
            return "must be valid Unicode text"
    return None


def path_key(path: str) -> str:
    """The form two paths are compared in: NFC, then case-folded.

    Case-insensitive or normalizing filesystems (macOS, Windows, a user's
    unzip) would put both paths in one file.
    """
    folded = unicodedata.normalize("NFC", path).casefold()
    # casefold can produce unnormalized text (U+01F0 -> "j" + U+030C), so
    # normalize again.
    return unicodedata.normalize("NFC", folded)


def find_collisions(paths: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs (earlier, later) of paths that cannot both be staged.

    Two paths collide when their keys are equal, or when one is a directory
    prefix of the other ("a" and "a/b.py": "a" would be a file and a
    directory at once). Every colliding pair is reported once, in input order.
    """
    files: dict[str, list[str]] = {}  # key -> paths with that key
    dirs: dict[str, list[str]] = {}  # directory key -> paths under it
    pairs: list[tuple[str, str]] = []
    for path in paths:
        key = path_key(path)
        parts = key.split("/")
        ancestors = ["/".join(parts[:i]) for i in range(1, len(parts))]
        pairs += [(other, path) for other in files.get(key, ())]
        pairs += [(other, path) for other in dirs.get(key, ())]
        for ancestor in ancestors:
            pairs += [(other, path) for other in files.get(ancestor, ())]
        files.setdefault(key, []).append(path)
        for ancestor in ancestors:
            dirs.setdefault(ancestor, []).append(path)
    return pairs
